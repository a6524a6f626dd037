#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# baic-agent end to end: heartbeats on Redis, signed RPCs, allocation, destroy, kill -9 recovery.
#
#   test_agent.sh BUILD_DIR
#
# Starts a private redis-server and baic-agent with runtime/dummy + compute/{cpu,mem,mock};
# then, when root with runtime/oci, crun and a busybox image, the same with real
# containers. Exit 0 pass, 1 fail, 77 skip (no redis-server).
set -u
BUILD=$(cd "${1:?usage: test_agent.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
AGENT=$BUILD/core/agent/baic-agent
export BAIC_PLUGIN_DIR=$BUILD/plugins-out
. "$HERE/services.sh"

[ -x "$BAIC_REDIS_SERVER" ] || { echo "SKIP: redis-server not found"; exit 77; }
[ -x "$AGENT" ] || { echo "FAIL: $AGENT not built"; exit 1; }

TMP=$(mktemp -d /tmp/baic-agent-test.XXXXXX)
SECRET=test-cluster-secret-0123456789
AGENT_PID=
FAILS=0
cleanup() {
    [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    stop_redis "$TMP/redis"
    if [ "$FAILS" = 0 ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT

ok() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

read -r RHOST RPORT < <(start_redis "$TMP/redis") || { echo "FAIL: redis"; exit 1; }
R() { redis-cli -h "$RHOST" -p "$RPORT" --raw "$@"; }

# ---- signer and RPC helpers ----

# rpc METHOD PATH BODY [SECRET [DATE]] -> prints the status; the body lands in $TMP/out
rpc() {
    local method=$1 path=$2 body=$3 secret=${4:-$SECRET} date=${5:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
    local bh mac
    bh=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
    mac=$(printf '%s\n%s\n%s\n%s' "$method" "$path" "$date" "$bh" |
        openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
    curl -s -o "$TMP/out" -w '%{http_code}' -X "$method" -H "Date: $date" \
        -H "X-BaiC-Cluster-Auth: $mac" -H 'Content-Type: application/json' \
        ${body:+--data-binary "$body"} "http://127.0.0.1:$APORT$path"
}

# Waits up to $2 seconds (default 10) for command $1 to succeed.
wait_for() {
    local cond=$1 limit=${2:-10} end
    end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
    while [ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do
        eval "$cond" && return 0
        sleep 0.05
    done
    return 1
}

events() { R XRANGE baic:agent-events - +; }
# event_seen NAME JQ-FILTER: an entry named NAME whose body matches the filter
event_seen() {
    R XRANGE baic:agent-events - + | awk -v n="$1" 'p && /^\{/ {print; p=0} $0 == "name" {getline; q=($0 == n)} $0 == "body" {p=q}' |
        jq -e -s "map(select($2)) | length > 0" >/dev/null 2>&1
}

APORT=$(_baic_free_port)

write_config() {   # write_config FILE RUNTIME
    cat >"$1" <<CFG
[agent]
id = "test-agent"
listen = "127.0.0.1:$APORT"
cluster_secret = "$SECRET"
data_dir = "$TMP/data-$2"
heartbeat_interval_ms = 300

[redis]
host = "$RHOST"
port = $RPORT

[plugins]
load = ["compute/cpu", "compute/mem", "compute/mock", "runtime/$2"]

[plugin."compute/mock"]
count = 2

[plugin."compute/mem"]
reserve = "10%"
CFG
    if [ "$2" = oci ]; then
        cat >>"$1" <<CFG

[plugin."runtime/oci"]
state_dir = "$TMP/oci-state"
image_dir = "$TMP/oci-images"
registry_insecure = true
CFG
    fi
}

start_agent() {   # start_agent CONFIG LOG
    "$AGENT" -c "$1" >>"$2" 2>&1 &
    AGENT_PID=$!
    wait_for "grep -q event=agent_ready '$2'" 20 || { fail "agent did not become ready"; cat "$2"; exit 1; }
}

create_body() {   # create_body SESSION KERNEL SLOTS-JSON [ENVIRON-JSON] [IMAGE]
    printf '{"session_id":"%s","session_name":"s-%s","access_key":"AKTEST","kernels":[{"kernel_id":"%s","image":{"canonical":"%s","registry":"local","labels":{}},"resource_slots":%s,"environ":%s,"cluster_role":"main","cluster_idx":1,"cluster_hostname":"main1"}]}' \
        "$1" "$1" "$2" "${5:-cr.backend.ai/stable/busybox:latest}" "$3" "${4:-{\}}"
}

kernel_listed() { rpc GET /rpc/kernels "" >/dev/null; jq -e --arg k "$1" --arg s "${2:-RUNNING}" '.kernels | map(select(.kernel_id == $k and .status == $s)) | length == 1' "$TMP/out" >/dev/null; }
kernel_absent() { rpc GET /rpc/kernels "" >/dev/null; jq -e --arg k "$1" '.kernels | map(select(.kernel_id == $k)) | length == 0' "$TMP/out" >/dev/null; }

# ======================= runtime/dummy =======================
LOG=$TMP/agent-dummy.log
write_config "$TMP/agent-dummy.toml" dummy
start_agent "$TMP/agent-dummy.toml" "$LOG"

check "heartbeat on baic:agent-events with slots" wait_for \
    "event_seen agent_heartbeat '.agent_id == \"test-agent\" and .available_slots[\"mock.device\"] == \"2\" and (.available_slots.cpu | test(\"^[0-9.]+$\")) and .slot_types.mem == \"bytes\"'" 5

st=$(rpc GET /rpc/health "")
check "health signed -> 200" [ "$st" = 200 ]
check "health names the agent" jq -e '.agent_id == "test-agent"' "$TMP/out"
st=$(rpc GET /rpc/health "" wrong-secret-wrong-secret)
check "wrong HMAC -> 401 auth-failed" [ "$st" = 401 ]
check "401 is problem JSON" jq -e '.type | endswith("auth-failed")' "$TMP/out"
st=$(rpc GET /rpc/health "" "$SECRET" "$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%SZ)")
check "stale Date -> 401" [ "$st" = 401 ]
st=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/rpc/kernels")
check "unsigned -> 401" [ "$st" = 401 ]

st=$(rpc POST /rpc/create_kernels '{"session_id": ')
check "bad JSON -> 400" [ "$st" = 400 ]
check "400 is invalid-api-params" jq -e '.type | endswith("invalid-api-params")' "$TMP/out"
st=$(rpc POST /rpc/create_kernels '{"session_id":"s","session_name":"n","access_key":"a","kernels":[{"kernel_id":7}]}')
check "wrong type -> 400" [ "$st" = 400 ]
st=$(rpc POST /rpc/create_kernels '{"session_id":"s","session_name":"n","access_key":"a"}')
check "missing kernels -> 400" [ "$st" = 400 ]
st=$(rpc POST /rpc/create_kernels "$(create_body s0 ../etc '{"cpu":"1"}')")
check "unsafe kernel id -> 400" [ "$st" = 400 ]

st=$(rpc POST /rpc/create_kernels "$(create_body sess1 k1 '{"cpu":"0.5","mem":"67108864","mock.device":"1"}')")
check "create_kernels -> 202" [ "$st" = 202 ]
check "202 lists the kernel" jq -e '.accepted == ["k1"]' "$TMP/out"
check "kernel_pulling, kernel_creating, kernel_started published" wait_for \
    "event_seen kernel_pulling '.kernel_id == \"k1\"' && event_seen kernel_creating '.kernel_id == \"k1\"' && event_seen kernel_started '.kernel_id == \"k1\" and .session_id == \"sess1\" and .container_id == \"k1\"'" 5
check "kernels lists k1 RUNNING" kernel_listed k1
check "k1 slots as decimal strings" jq -e '.kernels[0].resource_slots == {"cpu":"0.5","mem":"67108864","mock.device":"1"}' "$TMP/out"
check "record on disk" [ -f "$TMP/data-dummy/kernels/k1.json" ]
st=$(rpc GET /rpc/kernels/k1/stats "")
check "stats -> 200" [ "$st" = 200 ]

# Over-allocation: two kernels want one mock device each, one is left: 409 and nothing kept.
two='{"session_id":"sess2","session_name":"two","access_key":"AK","kernels":[
 {"kernel_id":"k2","image":{"canonical":"x"},"resource_slots":{"cpu":"0.1","mock.device":"1"},"cluster_role":"main","cluster_idx":1,"cluster_hostname":"main1"},
 {"kernel_id":"k3","image":{"canonical":"x"},"resource_slots":{"cpu":"0.1","mock.device":"1"},"cluster_role":"sub","cluster_idx":1,"cluster_hostname":"sub1"}]}'
st=$(rpc POST /rpc/create_kernels "$two")
check "over-allocation -> 409 instance-not-available" [ "$st" = 409 ]
check "409 slug" jq -e '.type | endswith("instance-not-available")' "$TMP/out"
st=$(rpc POST /rpc/create_kernels "$(create_body sess9 k9 '{"cpu":"100000"}')")
check "too many cpus -> 409" [ "$st" = 409 ]
st=$(rpc POST /rpc/create_kernels "$(create_body sess9 k9 '{"cuda.device":"1"}')")
check "slot not offered -> 409" [ "$st" = 409 ]
check "nothing left of refused kernels" kernel_absent k2
check "no record of refused kernels" [ ! -e "$TMP/data-dummy/kernels/k2.json" ]
st=$(rpc POST /rpc/create_kernels "$(create_body sess4 k4 '{"cpu":"0.1","mock.device":"1"}')")
check "the freed device can be taken -> 202" [ "$st" = 202 ]
check "k4 running" wait_for "kernel_listed k4" 5

st=$(rpc POST /rpc/destroy_kernel '{"kernel_id":"k4","reason":"user-requested"}')
check "destroy_kernel -> 202" [ "$st" = 202 ]
check "kernel_terminated user-requested" wait_for \
    "event_seen kernel_terminated '.kernel_id == \"k4\" and .reason == \"user-requested\"'" 10
check "k4 gone from kernels" kernel_absent k4
check "k4 record removed" [ ! -e "$TMP/data-dummy/kernels/k4.json" ]
st=$(rpc POST /rpc/destroy_kernel '{"kernel_id":"nope"}')
check "destroy unknown -> 404" [ "$st" = 404 ]

st=$(rpc POST /rpc/create_kernels "$(create_body sess5 k5 '{"cpu":"0.1"}' '{"BAIC_DUMMY_RUN_MS":"100","BAIC_DUMMY_EXIT_CODE":"3"}')")
check "self-exiting kernel -> 202" [ "$st" = 202 ]
check "kernel_terminated self-terminated exit 3" wait_for \
    "event_seen kernel_terminated '.kernel_id == \"k5\" and .reason == \"self-terminated\" and .exit_code == 3'" 10
check "k5 gone" kernel_absent k5

# kill -9 with k1 running. runtime/dummy keeps containers in the agent's memory, so
# they die with it: the restarted agent must report k1 lost and hold nothing for it.
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
check "record survives kill -9" [ -f "$TMP/data-dummy/kernels/k1.json" ]
start_agent "$TMP/agent-dummy.toml" "$LOG"
check "lost kernel reported agent-lost" wait_for \
    "event_seen kernel_terminated '.kernel_id == \"k1\" and .reason == \"agent-lost\"'" 5
check "k1 record removed" [ ! -e "$TMP/data-dummy/kernels/k1.json" ]
st=$(rpc POST /rpc/create_kernels "$(create_body sess6 k6 '{"mock.device":"2"}')")
check "both devices free after recovery -> 202" [ "$st" = 202 ]
check "k6 running" wait_for "kernel_listed k6" 5

kill -TERM "$AGENT_PID"
check "agent_terminated on SIGTERM" wait_for "event_seen agent_terminated '.agent_id == \"test-agent\"'" 5
wait_for "! kill -0 $AGENT_PID 2>/dev/null" 5 && AGENT_PID=
check "agent exits on SIGTERM" [ -z "$AGENT_PID" ]
check "no secret in logs" bash -c "! grep -q '$SECRET' '$LOG'"

# ======================= runtime/oci =======================
oci_skip=
[ "$(id -u)" = 0 ] || oci_skip="not root"
[ -z "$oci_skip" ] && [ ! -f "$BUILD/plugins-out/runtime_oci.so" ] && oci_skip="runtime/oci not built"
[ -z "$oci_skip" ] && ! command -v crun >/dev/null && oci_skip="crun missing"
[ -z "$oci_skip" ] && [ ! -f "$HERE/images.sh" ] && oci_skip="tests/integration/images.sh missing"
if [ -z "$oci_skip" ]; then
    . "$HERE/images.sh"
    REG=$(start_registry "$TMP/registry") || oci_skip="no registry"
    if [ -z "$oci_skip" ]; then
        ensure_images "${BAIC_IMAGE_CACHE:-/var/tmp/baic-images}" "$REG" busybox >"$TMP/images.log" 2>&1 ||
            oci_skip="busybox image unavailable (see $TMP/images.log)"
    fi
fi
if [ -n "$oci_skip" ]; then
    echo "SKIP - runtime/oci part: $oci_skip"
else
    # push.sh names what it pushed: "push.sh: REG/stable/busybox:TAG".
    IMG=$(sed -n 's/^push.sh: \(.*\/stable\/busybox:.*\)$/\1/p' "$TMP/images.log" | head -n1)
    LOG=$TMP/agent-oci.log
    write_config "$TMP/agent-oci.toml" oci
    start_agent "$TMP/agent-oci.toml" "$LOG"
    st=$(rpc POST /rpc/create_kernels "$(create_body osess ok1 '{"cpu":"0.5","mem":"67108864"}' '{}' "$IMG")")
    check "oci: create_kernels -> 202" [ "$st" = 202 ]
    wait_for "event_seen kernel_started '.kernel_id == \"ok1\"' || event_seen kernel_terminated '.kernel_id == \"ok1\"'" 60
    check "oci: kernel_started" event_seen kernel_started '.kernel_id == "ok1"'
    check "oci: container runs busybox" kernel_listed ok1
    kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
    start_agent "$TMP/agent-oci.toml" "$LOG"
    check "oci: kernel still listed after kill -9" kernel_listed ok1
    st=$(rpc POST /rpc/destroy_kernel '{"kernel_id":"ok1"}')
    check "oci: destroy after restart -> 202" [ "$st" = 202 ]
    check "oci: kernel_terminated" wait_for \
        "event_seen kernel_terminated '.kernel_id == \"ok1\" and .reason == \"user-requested\"'" 20
    kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
    stop_registry "$TMP/registry"
fi

# Under -DBAIC_SANITIZE=ON the agents that exited cleanly ran LeakSanitizer too.
check "no sanitizer reports" bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' '$TMP'/agent-*.log"

if [ "$FAILS" != 0 ]; then
    echo "$FAILS check(s) failed"; tail -n 40 "$TMP"/agent-*.log
    exit 1
fi
echo "all checks passed"
