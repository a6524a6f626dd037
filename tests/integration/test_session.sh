#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Kernel lifecycle end to end: image rescan from a local registry, POST/GET/DELETE /session
# through the scheduler and selector plugins, concurrency limits, enqueueOnly, maxWaitSeconds,
# bad input, and agent LOST detection. Runs the real baic-agent (runtime/dummy) when built,
# else a fake agent written below (heartbeats with redis-cli, RPC with python3's http.server).
#
#   tests/integration/test_session.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] || skip "baic / baic-manager not built"
command -v redis-server >/dev/null || skip "redis-server not installed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
for t in curl python3 redis-cli psql; do command -v $t >/dev/null || skip "$t not installed"; done
PY=$(command -v /usr/bin/python3 || command -v python3)

T=$(mktemp -d) && chmod 711 "$T" || exit 1
D=$T/data
failures=0
. "$SRC/tests/integration/lib.sh"
AGENT_PID=
. "$SRC/tests/integration/images.sh"
cleanup() {
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
    stop_registry "$T/reg"
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT


"$BAIC" up --no-agent --data-dir "$D" >"$T/up.log" 2>&1 || { cat "$T/up.log"; tail -30 "$D"/log/*.log; exit 1; }
# Lifecycle settings: a cluster secret for the agent RPC, and short LOST timers so the
# test need not wait the production 15 s / 60 s.
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed -i "/^\[manager\]/a cluster_secret = \"$SECRET\"\nagent_lost_after_s = 5\nagent_lost_kernels_after_s = 3" "$D/etc/manager.toml"
kill "$(cat "$D/run/manager.pid")"
for i in $(seq 1 100); do kill -0 "$(cat "$D/run/manager.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
"$BAIC" up --no-agent --data-dir "$D" >"$T/up2.log" 2>&1 || { cat "$T/up2.log"; tail -30 "$D"/log/manager.log; exit 1; }
stack_env "$D"

agent_is() { [ "$(sql "SELECT status FROM agents WHERE id = 'i-test'")" = "$1" ]; }
session_status() { call "$USER_AK" "$USER_SK" GET "/session/$1"; [ "$(field "$BODY" "['status']")" = "$2" ]; }

# --- images: a registry with the stock busybox image, rescanned into the images table ---
REG=$(start_registry "$T/reg") || { rc=$?; [ $rc = 77 ] && skip "no docker-registry"; exit 1; }
ensure_images "${BAIC_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baic/images}" "$REG" busybox >"$T/images.log" 2>&1
rc=$?
[ $rc = 77 ] && skip "cannot build the busybox image here: $(tail -1 "$T/images.log")"
[ $rc = 0 ] || { cat "$T/images.log"; exit 1; }
call "$USER_AK" "$USER_SK" POST /admin/rest/images/rescan "{\"registry\": \"$REG\"}"
expect 403 insufficient-privilege "rescan is for administrators"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/images/rescan "{\"registry\": \"$REG\"}"
expect 200 "" "image rescan"
printf '%s' "$BODY" | grep -q "$REG/stable/busybox:" && ok "rescan found stable/busybox" || bad "rescan body: $BODY"
call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/images
printf '%s' "$BODY" | grep -q '"busybox"' && printf '%s' "$BODY" | grep -q 'ai.backend.resource.min.cpu' \
    && ok "images list carries the busybox alias and labels" || bad "images list: $BODY"

# --- an agent ---
AGENT_PORT=$(( (RANDOM % 12000) + 20000 ))
STOP=$T/agent.stop
if [ -x "$BUILD/core/agent/baic-agent" ] && [ -z "${BAIC_TEST_FAKE_AGENT:-}" ]; then
    cat >"$T/agent.toml" <<TOML
[agent]
id = "i-test"
listen = "127.0.0.1:$AGENT_PORT"
cluster_secret = "$SECRET"
scaling_group = "default"
data_dir = "$T/agent"
heartbeat_interval_ms = 1000

[redis]
host = "127.0.0.1"
port = $REDIS_PORT

[plugins]
load = ["compute/cpu", "compute/mem", "runtime/dummy"]

[plugin."compute/mem"]
reserve = "256m"

[plugin."runtime/dummy"]
create_delay_ms = 50
start_delay_ms = 50
TOML
    "$BUILD/core/agent/baic-agent" -c "$T/agent.toml" >"$T/agent.log" 2>&1 &
    AGENT_PID=$! AGENT_KIND=real
else
    cat >"$T/fake_agent.py" <<'PYEOF'
#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A stand-in agent for manager tests: heartbeats and kernel events on the Redis stream, and the
# RPC endpoints of docs/agent-protocol.md with the cluster HMAC checked; kernels start at once.
#
#   fake_agent.py --redis-port P --port N --secret S [--id ID] [--stop-file F]
# Heartbeats stop while the stop file exists (to test LOST detection).
import argparse, hashlib, hmac, json, os, subprocess, threading, time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--redis-port", type=int, required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--secret", required=True)
ap.add_argument("--id", default="i-fake")
ap.add_argument("--stop-file", default="")
a = ap.parse_args()
kernels = {}  # kernel_id -> {"session_id", "status"}
lock = threading.Lock()


def publish(name, body):
    body = dict(body, agent_id=a.id, ts=int(time.time() * 1000))
    subprocess.run(["redis-cli", "-p", str(a.redis_port), "XADD", "baic:agent-events", "*",
                    "name", name, "body", json.dumps(body)], stdout=subprocess.DEVNULL, check=False)


def heartbeat():
    while True:
        if not (a.stop_file and os.path.exists(a.stop_file)):
            with lock:
                ks = [{"kernel_id": k, "status": v["status"]} for k, v in kernels.items()]
            publish("agent_heartbeat", {
                "addr": "http://127.0.0.1:%d" % a.port, "region": "local", "scaling_group": "default",
                "architecture": "x86_64", "version": "fake", "available_slots": {"cpu": "4", "mem": "8589934592"},
                "slot_types": {"cpu": "count", "mem": "bytes"}, "compute_plugins": {}, "images": [], "kernels": ks})
        time.sleep(1)


def start_kernel(kid, sid, image):
    publish("kernel_pulling", {"kernel_id": kid, "session_id": sid, "image": image})
    publish("kernel_creating", {"kernel_id": kid, "session_id": sid})
    with lock:
        kernels[kid]["status"] = "RUNNING"
    publish("kernel_started", {"kernel_id": kid, "session_id": sid, "container_id": "fake-" + kid[:8],
                               "service_ports": []})


class H(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self, body):
        date = self.headers.get("Date", "")
        sts = "%s\n%s\n%s\n%s" % (self.command, self.path, date, hashlib.sha256(body).hexdigest())
        want = hmac.new(a.secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
        try:
            skew = abs(time.time() - datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
        except ValueError:
            skew = 1e9
        if skew > 300 or not hmac.compare_digest(want, self.headers.get("X-BaiC-Cluster-Auth", "")):
            self.reply(401, {"type": "https://api.backend.ai/probs/auth-failed", "title": "Bad cluster auth"})
            return False
        return True

    def do_GET(self):
        if not self.authorised(b""):
            return
        with lock:
            self.reply(200, {"kernels": [{"kernel_id": k, **v} for k, v in kernels.items()]})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.authorised(body):
            return
        req = json.loads(body or b"{}")
        if self.path == "/rpc/create_kernels":
            ids = []
            for k in req["kernels"]:
                with lock:
                    kernels[k["kernel_id"]] = {"session_id": req["session_id"], "status": "PREPARING"}
                ids.append(k["kernel_id"])
                threading.Timer(0.2, start_kernel, (k["kernel_id"], req["session_id"], k["image"]["canonical"])).start()
            self.reply(202, {"accepted": ids})
        elif self.path == "/rpc/destroy_kernel":
            kid = req["kernel_id"]
            with lock:
                k = kernels.pop(kid, None)
            if k is None:
                self.reply(404, {"type": "https://api.backend.ai/probs/object-not-found", "title": "No such kernel."})
                return
            self.reply(202, {})
            threading.Timer(0.1, publish, ("kernel_terminated", {"kernel_id": kid, "session_id": k["session_id"],
                                           "exit_code": 0, "reason": req.get("reason", "user-requested"), "msg": ""})).start()
        else:
            self.reply(404, {"type": "https://api.backend.ai/probs/url-not-found", "title": "Not found"})


threading.Thread(target=heartbeat, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
PYEOF
    "$PY" "$T/fake_agent.py" --redis-port "$REDIS_PORT" --port "$AGENT_PORT" --secret "$SECRET" \
        --id i-test --stop-file "$STOP" >"$T/agent.log" 2>&1 &
    AGENT_PID=$! AGENT_KIND=fake
fi
until_ok 20 agent_is ALIVE \
    && ok "$AGENT_KIND agent registered ALIVE" || { bad "agent never registered"; cat "$T/agent.log"; exit 1; }
sql "SELECT value FROM shared_config WHERE key = 'config/resource_slots'" | grep -q '"cpu"' \
    && ok "slot types merged into config/resource_slots" || bad "resource_slots not merged"

# --- create, inspect, destroy ---
call "$USER_AK" "$USER_SK" POST /session '{"name": "sess-one", "image": "busybox", "config": {"resources": {"cpu": "1", "mem": "256m"}}, "maxWaitSeconds": 30}'
expect 201 "" "create a session and wait"
[ "$(field "$BODY" "['status']")" = RUNNING ] && [ "$(field "$BODY" "['created']")" = True ] \
    && ok "answer says RUNNING, created" || bad "create answer: $BODY"
SID=$(field "$BODY" "['sessionId']")
redis-cli -p "$REDIS_PORT" XRANGE baic:session-events - + | grep -q session_started \
    && ok "session_started on the bus" || bad "no session_started event"
for ev in session_enqueued session_scheduled kernel_started; do
    redis-cli -p "$REDIS_PORT" XRANGE baic:session-events - + | grep -q "$ev" && ok "$ev on the bus" || bad "no $ev"
done
call "$USER_AK" "$USER_SK" GET /session/sess-one
expect 200 "" "GET by name"
[ "$(field "$BODY" "['status']")" = RUNNING ] && printf '%s' "$(field "$BODY" "['occupiedSlots']")" | grep -q "'cpu': '1'" \
    && ok "GET shows RUNNING and str()-ed occupiedSlots" || bad "GET body: $BODY"
for k in domainName groupId userId lang image architecture registry tag containerId occupyingSlots requestedSlots \
    occupiedShares environ resourceOpts statusInfo statusData age creationTime terminationTime numQueriesExecuted lastStat idleChecks; do
    printf '%s' "$BODY" | grep -q "\"$k\"" || bad "GET lacks $k"
done
call "$USER_AK" "$USER_SK" GET "/session/$SID"
expect 200 "" "GET by UUID"
call "$ADMIN_AK" "$ADMIN_SK" GET /session/sess-one
expect 404 object-not-found "another user's session is not found"
call "$ADMIN_AK" "$ADMIN_SK" GET "/session/sess-one?owner_access_key=$USER_AK"
expect 200 "" "admin with owner_access_key"
call "$USER_AK" "$USER_SK" POST /session '{"name": "sess-one", "image": "busybox", "reuseIfExists": true}'
expect 201 "" "same name and image with reuse"
[ "$(field "$BODY" "['created']")" = False ] && [ "$(field "$BODY" "['sessionId']")" = "$SID" ] \
    && ok "reused, created false" || bad "reuse body: $BODY"
call "$USER_AK" "$USER_SK" POST /session '{"name": "sess-one", "image": "busybox", "reuseIfExists": false}'
expect 400 session-already-exists "same name without reuse"
[ "$(field "$BODY" "['data']['existingSessionId']")" = "$SID" ] && ok "existingSessionId given" || bad "data: $BODY"

# --- bad input ---
call "$USER_AK" "$USER_SK" POST /session '{"name": "ab", "image": "busybox"}'
expect 400 invalid-api-params "name too short"
call "$USER_AK" "$USER_SK" POST /session '{"name": "-bad-name", "image": "busybox"}'
expect 400 invalid-api-params "name starting with -"
call "$USER_AK" "$USER_SK" POST /session '{"name": "no-image"}'
expect 400 invalid-api-params "image missing"
call "$USER_AK" "$USER_SK" POST /session '{"name": "bad-type", "image": "busybox", "type": "weird"}'
expect 400 invalid-api-params "unknown session type"
call "$USER_AK" "$USER_SK" POST /session '{"name": "bad-size", "image": "busybox", "clusterSize": 2}'
expect 412 quota-exceeded "cluster_size 2 over the policy's max_containers_per_session 1"
call "$USER_AK" "$USER_SK" POST /session '{"name": "bad-size", "image": "busybox", "clusterSize": 2, "clusterMode": 7}'
expect 400 invalid-api-params "clusterMode of the wrong type"
call "$USER_AK" "$USER_SK" POST /session '{"name": "bad-wait", "image": "busybox", "maxWaitSeconds": "x"}'
expect 400 invalid-api-params "maxWaitSeconds of the wrong type"
call "$USER_AK" "$USER_SK" POST /session '{"name": "too-small", "image": "busybox", "config": {"resources": {"cpu": "0.5"}}}'
expect 400 invalid-api-params "resources below the image minimum"
call "$USER_AK" "$USER_SK" POST /session '{"name": "bad-slot", "image": "busybox", "config": {"resources": {"nope.device": "1"}}}'
expect 400 invalid-api-params "unknown resource slot"
call "$USER_AK" "$USER_SK" POST /session '{"name": "no-such", "image": "nonexistent:1.0"}'
expect 404 object-not-found "unknown image"
printf '%s' "$BODY" | grep -q 'No such environment image' && ok "unknown image message" || bad "message: $BODY"

call "$USER_AK" "$USER_SK" DELETE /session/sess-one
expect 200 "" "DELETE a running session"
[ "$(field "$BODY" "['stats']")" = "{}" ] && ok "answer has empty stats" || bad "delete body: $BODY"
until_ok 10 session_status sess-one TERMINATED && ok "session TERMINATED" || bad "not terminated: $BODY"
call "$USER_AK" "$USER_SK" POST /resource/check-presets '{}'
[ "$(field "$BODY" "['keypair_using']['cpu']")" = 0 ] && ok "occupancy back to 0" || bad "using: $BODY"
call "$USER_AK" "$USER_SK" DELETE /session/sess-one
expect 404 object-not-found "DELETE of an ended session"

# --- per-keypair concurrency: the second session waits with a reason, then runs ---
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/keypair-resource-policies '{"name": "one-at-a-time", "default_for_unspecified": "UNLIMITED", "max_concurrent_sessions": 1}'
expect 201 "" "policy with max_concurrent_sessions 1"
call "$ADMIN_AK" "$ADMIN_SK" PATCH "/admin/rest/keypairs/$USER_AK" '{"resource_policy": "one-at-a-time"}'
expect 200 "" "policy given to the user's key"
call "$USER_AK" "$USER_SK" POST /session '{"name": "conc-one", "image": "busybox", "maxWaitSeconds": 30}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "first session runs" || bad "first: $BODY"
call "$USER_AK" "$USER_SK" POST /session '{"name": "conc-two", "image": "busybox", "enqueueOnly": true}'
expect 201 "" "second session, enqueueOnly"
[ "$(field "$BODY" "['status']")" = PENDING ] && ok "enqueueOnly answers PENDING" || bad "second: $BODY"
has_reason() { call "$USER_AK" "$USER_SK" GET /session/conc-two; [ "$(field "$BODY" "['statusInfo']")" = predicate-checks-failed ]; }
until_ok 10 has_reason && ok "second stays PENDING with status_info predicate-checks-failed" || bad "reason: $BODY"
[ "$(field "$BODY" "['status']")" = PENDING ] || bad "second not pending: $BODY"
printf '%s' "$BODY" | grep -q 'concurrent sessions' && ok "status_data names the concurrency limit" || bad "statusData: $BODY"
call "$USER_AK" "$USER_SK" DELETE /session/conc-one
expect 200 "" "delete the first"
until_ok 15 session_status conc-two RUNNING && ok "second scheduled after the first ended" || bad "second: $BODY"
call "$USER_AK" "$USER_SK" DELETE /session/conc-two
call "$ADMIN_AK" "$ADMIN_SK" PATCH "/admin/rest/keypairs/$USER_AK" '{"resource_policy": "default"}'

# --- maxWaitSeconds with no agent in the resource group: TIMEOUT, still queued; cancel ---
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/scaling-groups '{"name": "empty"}'
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/scaling-groups/empty/domains/default
call "$USER_AK" "$USER_SK" POST /session '{"name": "no-agents", "image": "busybox", "maxWaitSeconds": 2, "config": {"scalingGroup": "empty"}}'
expect 201 "" "wait with maxWaitSeconds 2"
[ "$(field "$BODY" "['status']")" = TIMEOUT ] && ok "answer TIMEOUT" || bad "timeout: $BODY"
session_status no-agents PENDING && ok "still PENDING after the timeout" || bad "after timeout: $BODY"
call "$USER_AK" "$USER_SK" DELETE /session/no-agents
expect 200 "" "cancel a pending session"
session_status no-agents CANCELLED && ok "PENDING -> CANCELLED at once" || bad "cancel: $BODY"

# --- agent stops heart-beating: LOST, and its kernels end with agent-lost ---
call "$USER_AK" "$USER_SK" POST /session '{"name": "lost-one", "image": "busybox", "maxWaitSeconds": 30}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "session before agent loss runs" || bad "lost-one: $BODY"
if [ "$AGENT_KIND" = fake ]; then touch "$STOP"; else kill -STOP "$AGENT_PID"; fi
until_ok 20 agent_is LOST \
    && ok "agent LOST after heartbeats stop" || bad "agent status: $(sql "SELECT status FROM agents")"
until_ok 20 session_status lost-one TERMINATED && ok "its session TERMINATED" || bad "lost-one: $BODY"
[ "$(field "$BODY" "['statusInfo']")" = agent-lost ] && ok "statusInfo agent-lost" || bad "lost-one: $BODY"
if [ "$AGENT_KIND" = fake ]; then rm -f "$STOP"; else kill -CONT "$AGENT_PID"; fi
until_ok 20 agent_is ALIVE \
    && ok "agent ALIVE again on its next heartbeat" || bad "agent did not come back"

grep -q "$SECRET" "$D"/log/*.log && bad "cluster secret found in logs" || ok "cluster secret not in logs"
# Stop everything first, so a sanitizer build's leak report at exit is in the log too.
kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
"$BAIC" down --data-dir "$D" >/dev/null 2>&1
if grep -qE "Sanitizer|runtime error" "$D/log/manager.log" "$T/agent.log"; then
    bad "sanitizer report"; grep -E -A20 "Sanitizer|runtime error" "$D/log/manager.log" "$T/agent.log" | head -60
else
    ok "no sanitizer report from the manager or agent"
fi

[ $failures = 0 ] && echo "PASS" || { echo "$failures failure(s)"; tail -40 "$D/log/manager.log"; }
[ $failures = 0 ]
