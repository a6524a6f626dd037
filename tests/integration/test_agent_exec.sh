#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's execution relay end to end: a busybox kernel run by baic-kernel-runner under crun, driven through the agent's RPCs.
#
#   test_agent_exec.sh BUILD_DIR
#
# Needs root, crun, redis-server, python3 and the busybox image helpers (images.sh);
# exit 77 (skipped) otherwise. The runner must be static (it runs inside busybox): a
# -DBAIC_SANITIZE=ON build has a dynamic one, so point BAIC_KERNEL_RUNNER at a static
# runner from another build (else the test is skipped). Exit 0 pass, 1 fail.
set -u
BUILD=$(cd "${1:?usage: test_agent_exec.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
AGENT=$BUILD/core/agent/baic-agent
RUNNER=${BAIC_KERNEL_RUNNER:-$BUILD/core/kernel-runner/baic-kernel-runner}
export BAIC_PLUGIN_DIR=$BUILD/plugins-out
. "$HERE/services.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x "$BAIC_REDIS_SERVER" ] || { echo "SKIP: redis-server not found"; exit 77; }
command -v crun >/dev/null || { echo "SKIP: crun missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
[ -f "$HERE/images.sh" ] || { echo "SKIP: tests/integration/images.sh missing"; exit 77; }
[ -x "$AGENT" ] || { echo "FAIL: $AGENT not built"; exit 1; }
[ -f "$BUILD/plugins-out/runtime_oci.so" ] || { echo "FAIL: runtime/oci not built"; exit 1; }
[ -x "$RUNNER" ] || { echo "FAIL: $RUNNER not built"; exit 1; }
if ! file -L "$RUNNER" | grep -q 'statically linked'; then
    echo "SKIP: $RUNNER is dynamic (sanitizer build); set BAIC_KERNEL_RUNNER to a static one"
    exit 77
fi

TMP=$(mktemp -d /tmp/baic-agent-exec.XXXXXX)
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

# rpc METHOD PATH BODY -> prints the status; the body lands in $TMP/out
rpc() {
    local method=$1 path=$2 body=$3 date bh mac
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    bh=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
    mac=$(printf '%s\n%s\n%s\n%s' "$method" "$path" "$date" "$bh" |
        openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    curl -s -m "${RPC_MAX_TIME:-70}" -o "$TMP/out" -w '%{http_code}' -X "$method" -H "Date: $date" \
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
event_seen() {
    R XRANGE baic:agent-events - + | awk -v n="$1" 'p && /^\{/ {print; p=0} $0 == "name" {getline; q=($0 == n)} $0 == "body" {p=q}' |
        jq -e -s "map(select($2)) | length > 0" >/dev/null 2>&1
}
# exec_rpc KERNEL MODE CODE RUNID [WAIT_MS] -> status; result in $TMP/out
exec_rpc() {
    rpc POST "/rpc/kernels/$1/execute" "$(jq -cn --arg m "$2" --arg c "$3" --arg r "$4" --argjson w "${5:-5000}" \
        '{mode: $m, code: $c, runId: $r, options: {wait_ms: $w}}')"
}
j() { jq -e "$1" "$TMP/out" >/dev/null; }

cat >"$TMP/agent.toml" <<CFG
[agent]
id = "exec-agent"
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
LOG=$TMP/agent-exec.log
start_agent() {
    "$AGENT" -c "$TMP/agent.toml" >>"$LOG" 2>&1 &
    AGENT_PID=$!
    wait_for "grep -q event=agent_ready '$LOG'" 20 || { fail "agent did not become ready"; cat "$LOG"; exit 1; }
}
create_body() {   # create_body SESSION KERNEL [EXTRA-KERNEL-FIELDS-JSON]
    jq -cn --arg s "$1" --arg k "$2" --arg img "$IMG" --argjson x "${3:-{\}}" \
        '{session_id: $s, session_name: ("s-" + $s), access_key: "AKTEST", kernels: [{kernel_id: $k,
          image: {canonical: $img, registry: "local", labels: {"ai.backend.runtime-type": "app",
          "ai.backend.runtime-path": "/bin/sh"}}, resource_slots: {cpu: "0.5", mem: "134217728"},
          environ: {}, cluster_role: "main", cluster_idx: 1, cluster_hostname: "main1"} + $x]}'
}

start_agent
check "agent uses the configured runner" grep -q "kernel_runner=$RUNNER" "$LOG"

# The bootstrap script delays the runner's socket: the agent has to retry its connect.
st=$(rpc POST /rpc/create_kernels "$(create_body es1 ek1 '{"bootstrap_script":"echo booted > /home/work/boot.txt; sleep 1.5"}')")
check "create_kernels -> 202" [ "$st" = 202 ]
wait_for "event_seen kernel_started '.kernel_id == \"ek1\"' || event_seen kernel_terminated '.kernel_id == \"ek1\"'" 60
check "kernel_started" event_seen kernel_started '.kernel_id == "ek1"'
check "hello logged before kernel_started" bash -c \
    "grep -nE 'event=(runner_hello|kernel_started) .*kernel=ek1' '$LOG' | head -1 | grep -q runner_hello"
check "socket directory on the host" [ -S "$TMP/data/kernels/ek1/sock/runner.sock" ]

st=$(exec_rpc ek1 query 'cat boot.txt; echo $BACKENDAI_RUNTIME_TYPE' r0)
check "bootstrap ran, runtime type from the label" j '.console == [["stdout","booted\napp\n"]]'
st=$(exec_rpc nope query 'echo hi' r0)
check "execute on an unknown kernel -> 404" [ "$st" = 404 ]

st=$(exec_rpc ek1 query 'echo hi; exit 3' r1)
check "execute -> 200" [ "$st" = 200 ]
check "stdout hi, exitCode 3, finished" j '.runId == "r1" and .status == "finished" and .exitCode == 3 and .console == [["stdout","hi\n"]]'
check "no id/final fields leak" j '(has("id") or has("final")) | not'

# A run that outlives the wait: continued parts, then the end.
st=$(exec_rpc ek1 query 'for i in 1 2 3 4 5 6; do echo line$i; sleep 0.4; done' r2 1300)
check "long run -> 200 continued" bash -c "[ $st = 200 ] && jq -e '.status == \"continued\"' '$TMP/out' >/dev/null"
out=$(jq -r '[.console[]? | select(.[0] == "stdout") | .[1]] | join("")' "$TMP/out")
st=$(exec_rpc ek1 query 'echo other' r3 200)
check "second query while running -> 409 run-in-progress" bash -c \
    "[ $st = 409 ] && jq -e '.type | endswith(\"run-in-progress\")' '$TMP/out' >/dev/null"
status=continued
for _ in $(seq 20); do
    st=$(exec_rpc ek1 continue '' r2 2000)
    [ "$st" = 200 ] || break
    out+=$(jq -r '[.console[]? | select(.[0] == "stdout") | .[1]] | join("")' "$TMP/out")
    status=$(jq -r .status "$TMP/out")
    [ "$status" = continued ] || break
done
check "long run ends finished with every line" bash -c \
    "[ '$status' = finished ] && [ \"\$(printf '%s' '$out' | tr -d '\n')\" = line1line2line3line4line5line6 ]"

# Interrupt a sleeping shell.
st=$(exec_rpc ek1 query 'sleep 30' r4 300)
check "sleep run continued" bash -c "[ $st = 200 ] && jq -e '.status == \"continued\"' '$TMP/out' >/dev/null"
st=$(rpc POST /rpc/kernels/ek1/interrupt '{}')
check "interrupt -> 204" [ "$st" = 204 ]
st=$(exec_rpc ek1 continue '' r4 5000)
check "interrupted run finished with a signal status" j '.status == "finished" and .exitCode >= 128'

# A caller that goes away while it waits leaves the run to the next one.
st=$(exec_rpc ek1 query 'sleep 1.5; echo done' r10 100)
check "short wait -> continued" j '.status == "continued"'
( RPC_MAX_TIME=0.3; export RPC_MAX_TIME; exec_rpc ek1 continue '' r10 5000 >/dev/null )
st=$(exec_rpc ek1 continue '' r10 5000)
check "after an aborted wait the run still finishes" j '.status == "finished" and .console == [["stdout","done\n"]]'

st=$(rpc POST /rpc/kernels/ek1/complete '{"code":"pri","options":{}}')
check "complete -> 200 result" bash -c "[ $st = 200 ] && jq -e '.result | type == \"array\"' '$TMP/out' >/dev/null"

# Files.
st=$(rpc POST /rpc/kernels/ek1/files/upload "{\"path\":\"d/up.txt\",\"data_b64\":\"$(printf 'hello file' | base64)\"}")
check "upload -> 200" bash -c "[ $st = 200 ] && jq -e '.size == 10' '$TMP/out' >/dev/null"
st=$(rpc POST /rpc/kernels/ek1/files/list '{"path":"d"}')
check "list shows the file" bash -c "[ $st = 200 ] && jq -e '.files | map(.filename) == [\"up.txt\"]' '$TMP/out' >/dev/null"
st=$(rpc POST /rpc/kernels/ek1/files/download '{"path":"d/up.txt"}')
check "download round trip" bash -c "[ $st = 200 ] && [ \"\$(jq -r .data_b64 '$TMP/out' | base64 -d)\" = 'hello file' ]"
st=$(exec_rpc ek1 query 'cat /home/work/d/up.txt' r5)
check "the file is in the container's home" j '.console == [["stdout","hello file"]]'
st=$(rpc POST /rpc/kernels/ek1/files/download '{"path":"../etc/passwd"}')
check "../etc/passwd refused -> 400 with the runner's message" bash -c \
    "[ $st = 400 ] && jq -e '.type | endswith(\"refused\")' '$TMP/out' >/dev/null && jq -e '.msg | length > 0' '$TMP/out' >/dev/null"

# The terminal over a WebSocket.
cat >"$TMP/ws.py" <<'PYEOF'
import base64, hashlib, hmac, json, os, socket, struct, sys, time
port, kernel, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
path = '/rpc/kernels/%s/pty' % kernel
date = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
mac = hmac.new(secret, ('GET\n%s\n%s\n%s' % (path, date, hashlib.sha256(b'').hexdigest())).encode(),
               hashlib.sha256).hexdigest()
s = socket.create_connection(('127.0.0.1', port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(('GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
           'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nDate: %s\r\n'
           'X-BaiC-Cluster-Auth: %s\r\n\r\n' % (path, key, date, mac)).encode())
buf = b''
while b'\r\n\r\n' not in buf:
    d = s.recv(4096)
    if not d: break
    buf += d
head, _, buf = buf.partition(b'\r\n\r\n')
if b' 101 ' not in head.split(b'\r\n')[0]:
    print('no upgrade:', head[:200]); sys.exit(1)
def send(op, data):
    m = os.urandom(4)
    n = len(data)
    hdr = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack('>H', n))
    s.sendall(hdr + m + bytes(b ^ m[i % 4] for i, b in enumerate(data)))
def recv():
    global buf
    def need(n):
        global buf
        while len(buf) < n:
            d = s.recv(65536)
            if not d: raise EOFError
            buf += d
    need(2)
    op, n = buf[0] & 15, buf[1] & 127
    off = 2
    if n == 126: need(4); n = struct.unpack('>H', buf[2:4])[0]; off = 4
    elif n == 127: need(10); n = struct.unpack('>Q', buf[2:10])[0]; off = 10
    need(off + n)
    data, buf = buf[off:off + n], buf[off + n:]
    return op, data
send(1, json.dumps({'type': 'resize', 'rows': 30, 'cols': 100}).encode())
send(2, b'echo pty-$((6*7)); stty size\n')
out = b''
deadline = time.time() + 10
ok = False
while time.time() < deadline:
    op, data = recv()
    if op == 8: break
    out += data
    if b'pty-42' in out and b'30 100' in out:
        ok = True; break
send(2, b'exit 5\n')
closed = False
try:
    while time.time() < deadline + 5:
        op, data = recv()
        if op == 8:
            closed = True; break
except (EOFError, socket.timeout):
    pass
print('pty output:', out[-200:], 'closed by exit:', closed)
sys.exit(0 if ok and closed else 1)
PYEOF
check "pty websocket: echo, resize, close on exit" python3 "$TMP/ws.py" "$APORT" ek1 "$SECRET"

# A runner that never says hello (its bootstrap outlasts the 10 s wait): failed-to-start.
st=$(rpc POST /rpc/create_kernels "$(create_body es2 ek2 '{"bootstrap_script":"sleep 30"}')")
check "create slow kernel -> 202" [ "$st" = 202 ]
check "no hello -> kernel_terminated failed-to-start" wait_for \
    "event_seen kernel_terminated '.kernel_id == \"ek2\" and .reason == \"failed-to-start\"'" 60
not_seen() { ! event_seen "$@"; }
check "no kernel_started for it" not_seen kernel_started '.kernel_id == "ek2"'
check "its container is gone" bash -c "! crun --root '$TMP/crun-root' list -q 2>/dev/null | grep -qx ek2"
check "its socket directory is gone" [ ! -e "$TMP/data/kernels/ek2" ]

# The runner dies (SIGTERM to PID 1) while a caller waits: an answer, then the kernel ends.
st=$(rpc POST /rpc/create_kernels "$(create_body es3 ek3)")
check "create third kernel -> 202" [ "$st" = 202 ]
check "third kernel started" wait_for "event_seen kernel_started '.kernel_id == \"ek3\"'" 60
st=$(exec_rpc ek3 query 'kill -TERM 1; sleep 5' r8 15000)
check "execute whose runner dies -> 409/502 problem JSON" bash -c \
    "[ $st = 502 ] || [ $st = 409 ] && jq -e '.type' '$TMP/out' >/dev/null"
check "kernel with a dead runner self-terminated" wait_for \
    "event_seen kernel_terminated '.kernel_id == \"ek3\" and .reason == \"self-terminated\"'" 20
st=$(exec_rpc ek3 query 'echo x' r9)
check "its RPCs answer 404 afterwards" [ "$st" = 404 ]

# kill -9, restart: the adopted kernel's runner is connected again.
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
start_agent
check "runner connected again after restart" wait_for "grep -q 'event=runner_hello.*kernel=ek1.*first=1' <(grep -A1000 'kernel_adopted.*kernel=ek1' '$LOG')" 15
st=$(exec_rpc ek1 query 'echo again' r6)
check "execute after restart" bash -c "[ $st = 200 ] && jq -e '.console == [[\"stdout\",\"again\\n\"]]' '$TMP/out' >/dev/null"

# A run in flight when the kernel goes: its caller gets an answer, not a hang.
exec_rpc ek1 query 'sleep 30' r7 200 >/dev/null
( st=$(exec_rpc ek1 continue '' r7 20000); echo "$st" >"$TMP/pending.st" ) &
WAITER=$!
sleep 0.5
st=$(rpc POST /rpc/destroy_kernel '{"kernel_id":"ek1"}')
check "destroy -> 202" [ "$st" = 202 ]
wait "$WAITER"
check "pending execute answered on destroy (409/502)" grep -qE '^(409|502)$' "$TMP/pending.st"
check "kernel_terminated user-requested" wait_for \
    "event_seen kernel_terminated '.kernel_id == \"ek1\" and .reason == \"user-requested\"'" 20
check "socket directory removed" [ ! -e "$TMP/data/kernels/ek1" ]

kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
check "no sanitizer reports" bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' '$LOG'"

if [ "$FAILS" != 0 ]; then
    echo "$FAILS check(s) failed"; tail -n 60 "$LOG"
    exit 1
fi
echo "all checks passed"
