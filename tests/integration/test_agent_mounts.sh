#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Vfolder mounts on the agent: kernel.mounts of create_kernels as bind mounts in a busybox kernel under crun, read-only ones refusing writes, bad entries failing the start.
#
#   test_agent_mounts.sh BUILD_DIR
#
# Needs root, crun, redis-server, python3 and the busybox image helpers (images.sh), and a
# static kernel runner (as test_agent_exec.sh); exit 77 (skipped) otherwise. 0 pass, 1 fail.
set -u
BUILD=$(cd "${1:?usage: test_agent_mounts.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
AGENT=$BUILD/core/agent/baic-agent
RUNNER=${BAIC_KERNEL_RUNNER:-$BUILD/core/kernel-runner/baic-kernel-runner}
export BAIC_PLUGIN_DIR=$BUILD/plugins-out
. "$HERE/services.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x "$BAIC_REDIS_SERVER" ] || { echo "SKIP: redis-server not found"; exit 77; }
command -v crun >/dev/null || { echo "SKIP: crun missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
[ -x "$AGENT" ] || { echo "FAIL: $AGENT not built"; exit 1; }
[ -f "$BUILD/plugins-out/runtime_oci.so" ] || { echo "FAIL: runtime/oci not built"; exit 1; }
[ -x "$RUNNER" ] || { echo "FAIL: $RUNNER not built"; exit 1; }
if ! file -L "$RUNNER" | grep -q 'statically linked'; then
    echo "SKIP: $RUNNER is dynamic (sanitizer build); set BAIC_KERNEL_RUNNER to a static one"
    exit 77
fi

TMP=$(mktemp -d /tmp/baic-agent-mounts.XXXXXX)
SECRET=test-cluster-secret-0123456789
AGENT_PID=
FAILS=0
cleanup() {
    [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    for id in $(crun --root "$TMP/crun-root" list -q 2>/dev/null); do
        crun --root "$TMP/crun-root" delete -f "$id" >/dev/null 2>&1
    done
    [ -n "${REG_STARTED:-}" ] && stop_registry "$TMP/registry"
    stop_redis "$TMP/redis"
    if [ "$FAILS" = 0 ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT

ok() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

. "$HERE/images.sh"
REG=$(start_registry "$TMP/registry") || { echo "SKIP: no registry"; exit 77; }
REG_STARTED=1
ensure_images "${BAIC_IMAGE_CACHE:-/var/tmp/baic-images}" "$REG" busybox >"$TMP/images.log" 2>&1 ||
    { echo "SKIP: busybox image unavailable"; tail -5 "$TMP/images.log"; exit 77; }
IMG=$(sed -n 's/^push.sh: \(.*\/stable\/busybox:.*\)$/\1/p' "$TMP/images.log" | head -n1)
[ -n "$IMG" ] || { echo "FAIL: no busybox image pushed"; cat "$TMP/images.log"; exit 1; }

read -r RHOST RPORT < <(start_redis "$TMP/redis") || { echo "FAIL: redis"; exit 1; }
R() { redis-cli -h "$RHOST" -p "$RPORT" --raw "$@"; }
APORT=$(_baic_free_port)

rpc() {
    local method=$1 path=$2 body=$3 date bh mac
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    bh=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
    mac=$(printf '%s\n%s\n%s\n%s' "$method" "$path" "$date" "$bh" |
        openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    curl -s -m 70 -o "$TMP/out" -w '%{http_code}' -X "$method" -H "Date: $date" \
        -H "X-BaiC-Cluster-Auth: $mac" -H 'Content-Type: application/json' \
        ${body:+--data-binary "$body"} "http://127.0.0.1:$APORT$path"
}
wait_for() {
    local cond=$1 limit=${2:-10} end
    end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
    while [ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do
        eval "$cond" && return 0
        sleep 0.05
    done
    return 1
}
events() {   # events NAME -> the bodies of that event, one JSON per line
    R XRANGE baic:agent-events - + | awk -v n="$1" 'p && /^\{/ {print; p=0} $0 == "name" {getline; q=($0 == n)} $0 == "body" {p=q}'
}
event_seen() { events "$1" | jq -e -s "map(select($2)) | length > 0" >/dev/null 2>&1; }
exec_rpc() {   # exec_rpc KERNEL CODE RUNID -> status; result in $TMP/out
    rpc POST "/rpc/kernels/$1/execute" "$(jq -cn --arg c "$2" --arg r "$3" \
        '{mode: "query", code: $c, runId: $r, options: {wait_ms: 10000}}')"
}
j() { jq -e "$1" "$TMP/out" >/dev/null; }

cat >"$TMP/agent.toml" <<CFG
[agent]
id = "mounts-agent"
listen = "127.0.0.1:$APORT"
cluster_secret = "$SECRET"
data_dir = "$TMP/data"
heartbeat_interval_ms = 300
kernel_runner = "$RUNNER"

[redis]
host = "$RHOST"
port = $RPORT

[plugins]
load = ["compute/cpu", "compute/mem", "runtime/oci"]

[plugin."compute/mem"]
reserve = "10%"

[plugin."runtime/oci"]
state_dir = "$TMP/oci-state"
image_dir = "$TMP/oci-images"
registry_insecure = true
runtime_root = "$TMP/crun-root"
CFG
LOG=$TMP/agent.log
"$AGENT" -c "$TMP/agent.toml" >>"$LOG" 2>&1 &
AGENT_PID=$!
wait_for "grep -q event=agent_ready '$LOG'" 20 || { fail "agent did not become ready"; cat "$LOG"; exit 1; }

create_body() {   # create_body SESSION KERNEL MOUNTS-JSON
    jq -cn --arg s "$1" --arg k "$2" --arg img "$IMG" --argjson m "$3" \
        '{session_id: $s, session_name: ("s-" + $s), access_key: "AKTEST", kernels: [{kernel_id: $k,
          image: {canonical: $img, registry: "local", labels: {"ai.backend.runtime-type": "app",
          "ai.backend.runtime-path": "/bin/sh"}}, resource_slots: {cpu: "0.5", mem: "134217728"},
          environ: {}, cluster_role: "main", cluster_idx: 1, cluster_hostname: "main1",
          mounts: $m}]}'
}

# Two folders as the storage proxy lays them out (the agent only sees host paths).
RO=$TMP/vol/user:1/aaaa
RW=$TMP/vol/user:1/bbbb
mkdir -p "$RO" "$RW"
printf 'from the host\n' >"$RO/hello.txt"
MOUNTS=$(jq -cn --arg ro "$RO" --arg rw "$RW" '[
  {name: "rofolder", vfid: "user:1/aaaa", host_path: $ro, kernel_path: "/home/work/ro", permission: "ro"},
  {name: "rwfolder", vfid: "user:1/bbbb", host_path: $rw, kernel_path: "rw/nested", permission: "rw"}]')
st=$(rpc POST /rpc/create_kernels "$(create_body ms1 mk1 "$MOUNTS")")
check "create_kernels with two mounts -> 202" [ "$st" = 202 ]
wait_for "event_seen kernel_started '.kernel_id == \"mk1\"' || event_seen kernel_terminated '.kernel_id == \"mk1\"'" 60
check "kernel with mounts started" event_seen kernel_started '.kernel_id == "mk1"'
check "mounts logged" grep -q 'event=vfolder_mount .*name=rofolder target=/home/work/ro permission=ro' "$LOG"

st=$(exec_rpc mk1 'cat /home/work/ro/hello.txt' r1)
check "the ro folder's file reads in the container" j '.exitCode == 0 and .console == [["stdout","from the host\n"]]'
st=$(exec_rpc mk1 'grep " /home/work/ro " /proc/mounts' r2)
check "/home/work/ro is mounted ro" j '.exitCode == 0 and (.console[0][1] | test(" ro[, ]"))'
st=$(exec_rpc mk1 'echo nope > /home/work/ro/new.txt' r3)
check "writing into the ro mount fails" j '.exitCode != 0'
check "nothing appeared on the host" [ ! -e "$RO/new.txt" ]
st=$(exec_rpc mk1 'rm /home/work/ro/hello.txt' r4)
check "deleting in the ro mount fails" bash -c "jq -e '.exitCode != 0' '$TMP/out' >/dev/null && [ -f '$RO/hello.txt' ]"
st=$(exec_rpc mk1 'echo written > /home/work/rw/nested/out.txt && mkdir /home/work/rw/nested/d' r5)
check "writing into the rw mount (relative kernel_path) works" j '.exitCode == 0'
check "the write is on the host" bash -c "[ \"\$(cat '$RW/out.txt')\" = written ] && [ -d '$RW/d' ]"
st=$(exec_rpc mk1 'grep " /home/work/rw/nested " /proc/mounts' r6)
check "/home/work/rw/nested is mounted rw" j '.exitCode == 0 and (.console[0][1] | test(" rw[, ]"))'
st=$(exec_rpc mk1 'echo home > /home/work/h.txt' r7)
check "the work directory itself stays writable" j '.exitCode == 0'

st=$(rpc POST /rpc/destroy_kernel '{"kernel_id":"mk1"}')
check "destroy -> 202" [ "$st" = 202 ]
check "kernel_terminated" wait_for "event_seen kernel_terminated '.kernel_id == \"mk1\"'" 30
check "the folders' data outlives the kernel" bash -c "[ -f '$RO/hello.txt' ] && [ -f '$RW/out.txt' ]"

# Bad entries: the kernel fails to start, saying why, and no container is left.
n=0
bad() {   # bad WHAT EXPECTED-MSG-REGEX MOUNTS-JSON
    n=$((n + 1))
    local k=bk$n
    st=$(rpc POST /rpc/create_kernels "$(create_body bs$n $k "$3")")
    if [ "$st" != 202 ]; then fail "$1: create -> $st"; return; fi
    if ! wait_for "event_seen kernel_terminated '.kernel_id == \"$k\"'" 30; then
        fail "$1: no kernel_terminated"; return
    fi
    check "$1 -> failed-to-start ($2)" event_seen kernel_terminated \
        ".kernel_id == \"$k\" and .reason == \"failed-to-start\" and (.msg | test(\"$2\"))"
    if event_seen kernel_started ".kernel_id == \"$k\""; then fail "$1: it started"; else ok "$1: never started"; fi
    check "$1: no container" bash -c "! crun --root '$TMP/crun-root' list -q 2>/dev/null | grep -qx $k"
}
m() { jq -cn --arg h "$1" --arg k "$2" --arg p "${3:-rw}" '[{name: "f", vfid: "x", host_path: $h, kernel_path: $k, permission: $p}]'; }
bad "relative host_path" "host_path must be a clean absolute path" "$(m vol/x /home/work/x)"
bad "host_path with .." "host_path must be a clean absolute path" "$(m "$RO/../bbbb" /home/work/x)"
bad "missing host_path" "not a directory" "$(m "$TMP/nope" /home/work/x)"
bad "host_path a file" "not a directory" "$(m "$RO/hello.txt" /home/work/x)"
bad "kernel_path /etc" "is not below /home/work" "$(m "$RO" /etc)"
bad "kernel_path the work dir itself" "is not below /home/work" "$(m "$RO" /home/work)"
bad "kernel_path /home/workx" "is not below /home/work" "$(m "$RO" /home/workx/a)"
bad "kernel_path with .." "is not below /home/work" "$(m "$RO" /home/work/../../etc)"
bad "relative kernel_path with .." "is not below /home/work" "$(m "$RO" ../etc)"
bad "permission xx" "permission must be ro, rw or wd" "$(m "$RO" /home/work/x xx)"
bad "mounts not an array" "must be an array" '{"a": 1}'
bad "entry not an object" "not an object" '["x"]'
bad "same kernel_path twice" "used twice" "$(jq -cn --arg h "$RO" '[{name:"a",host_path:$h,kernel_path:"/home/work/d"},{name:"b",host_path:$h,kernel_path:"d"}]')"
bad "host_path a number" "host_path must be" "$(jq -cn '[{name:"a",host_path:5,kernel_path:"/home/work/d"}]')"

# An empty list and null are no mounts at all.
st=$(rpc POST /rpc/create_kernels "$(create_body es1 ek1 '[]')")
check "empty mounts -> 202" [ "$st" = 202 ]
check "empty mounts: kernel_started" wait_for "event_seen kernel_started '.kernel_id == \"ek1\"'" 60
rpc POST /rpc/destroy_kernel '{"kernel_id":"ek1"}' >/dev/null
wait_for "event_seen kernel_terminated '.kernel_id == \"ek1\"'" 30

kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
check "no sanitizer reports" bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' '$LOG'"

if [ "$FAILS" != 0 ]; then
    echo "$FAILS check(s) failed"; tail -n 40 "$LOG"
    exit 1
fi
echo "all checks passed"
