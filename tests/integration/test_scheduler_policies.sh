#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Scheduling policies end to end: keypair, main-keypair (user), project and domain limits,
# pending limits at enqueue, container counts, starts_at, dependencies (chains that succeed,
# failures that cancel their dependants), agent drain and undrain, private resource groups,
# check-presets following occupancy, and launches held while a round's page is full. A fake
# agent (heartbeats with redis-cli, RPC with python3's http.server) runs batch kernels whose
# startupCommand is "sleep S; exit N".
#
#   tests/integration/test_scheduler_policies.sh BUILD_DIR
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

T=$(mktemp -d "${TMPDIR:-/tmp}/baic-sched.XXXXXX") && chmod 711 "$T" || exit 1
D=$T/data
failures=0
. "$SRC/tests/integration/lib.sh"
AGENT_PIDS=
cleanup() {
    for p in $AGENT_PIDS; do kill "$p" 2>/dev/null; done
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT


export BAIC_NO_AGENT=1
"$BAIC" up --no-agent --data-dir "$D" >"$T/up.log" 2>&1 || { cat "$T/up.log"; tail -30 "$D"/log/*.log; exit 1; }
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed -i "/^\[manager\]/a cluster_secret = \"$SECRET\"\nscheduler_tick_ms = 500\nscheduler_page = 1000" "$D/etc/manager.toml"
kill "$(cat "$D/run/manager.pid")"
for i in $(seq 1 100); do kill -0 "$(cat "$D/run/manager.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
"$BAIC" up --no-agent --data-dir "$D" >"$T/up2.log" 2>&1 || { cat "$T/up2.log"; tail -30 "$D"/log/manager.log; exit 1; }
stack_env "$D"

ucall() { call "$USER_AK" "$USER_SK" "$@"; }
acall() { call "$ADMIN_AK" "$ADMIN_SK" "$@"; }
session_status() { ucall GET "/session/$1"; [ "$(field "$BODY" "['status']")" = "$2" ]; }
# failed_pred NAME PREDICATE: the session waits and status_data names PREDICATE among the failed.
failed_pred() {
    ucall GET "/session/$1"
    [ "$(field "$BODY" "['status']")" = PENDING ] && [ "$(field "$BODY" "['statusInfo']")" = predicate-checks-failed ] &&
        field "$BODY" "['statusData']['scheduler']['failed_predicates']" | grep -q "'name': '$2'"
}
expect_denied() {
    local name=$1 pred=$2 what=$3
    if until_ok 10 failed_pred "$name" "$pred"; then
        ok "$what: PENDING, predicate-checks-failed, failed $pred"
    else
        bad "$what: $BODY"
    fi
}
create() { ucall POST /session "$1"; }

# --- an image, straight into the catalogue (no registry needed: the agent is fake) ---
sql "INSERT INTO images (name, image, tag, registry, architecture, resources) VALUES
     ('local.test/stable/busybox:latest', 'stable/busybox', 'latest', 'local.test', 'x86_64',
      '{\"cpu\": {\"min\": \"1\"}, \"mem\": {\"min\": \"64m\"}}');
     INSERT INTO image_aliases (alias, image_id) SELECT 'busybox', id FROM images
      WHERE name = 'local.test/stable/busybox:latest'" >/dev/null

# --- fake agents ---
cat >"$T/fake_agent.py" <<'PYEOF'
#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A stand-in agent: heartbeats and kernel events on the Redis stream, the RPC endpoints of
# docs/agent-protocol.md with the cluster HMAC checked. Kernels start at once; a kernel with a
# startup_command "sleep S; exit N" ends S seconds later with exit code N.
import argparse, hashlib, hmac, json, re, subprocess, threading, time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--redis-port", type=int, required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--secret", required=True)
ap.add_argument("--id", required=True)
ap.add_argument("--sgroup", default="default")
a = ap.parse_args()
kernels = {}
lock = threading.Lock()


def publish(name, body):
    body = dict(body, agent_id=a.id, ts=int(time.time() * 1000))
    subprocess.run(["redis-cli", "-p", str(a.redis_port), "XADD", "baic:agent-events", "*",
                    "name", name, "body", json.dumps(body)], stdout=subprocess.DEVNULL, check=False)


def heartbeat():
    while True:
        with lock:
            ks = [{"kernel_id": k, "status": v["status"]} for k, v in kernels.items()]
        publish("agent_heartbeat", {
            "addr": "http://127.0.0.1:%d" % a.port, "region": "local", "scaling_group": a.sgroup,
            "architecture": "x86_64", "version": "fake", "available_slots": {"cpu": "4", "mem": "8589934592"},
            "slot_types": {"cpu": "count", "mem": "bytes"}, "compute_plugins": {}, "images": [], "kernels": ks})
        time.sleep(1)


def finish(kid, sid, code):
    with lock:
        if kernels.pop(kid, None) is None:
            return
    publish("kernel_terminated", {"kernel_id": kid, "session_id": sid, "exit_code": code,
                                  "reason": "task-finished" if code == 0 else "task-failed", "msg": ""})


def start_kernel(kid, sid, cmd):
    publish("kernel_creating", {"kernel_id": kid, "session_id": sid})
    with lock:
        kernels[kid]["status"] = "RUNNING"
    publish("kernel_started", {"kernel_id": kid, "session_id": sid, "container_id": "fake-" + kid[:8],
                               "service_ports": []})
    if cmd:
        m = re.search(r"sleep\s+([0-9.]+)", cmd)
        e = re.search(r"exit\s+(\d+)", cmd)
        threading.Timer(float(m.group(1)) if m else 0.1, finish,
                        (kid, sid, int(e.group(1)) if e else 0)).start()


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
                threading.Timer(0.1, start_kernel, (k["kernel_id"], req["session_id"], k.get("startup_command"))).start()
            self.reply(202, {"accepted": ids})
        elif self.path == "/rpc/destroy_kernel":
            kid = req["kernel_id"]
            with lock:
                k = kernels.get(kid)
            if k is None:
                self.reply(404, {"type": "https://api.backend.ai/probs/object-not-found", "title": "No such kernel."})
                return
            self.reply(202, {})
            threading.Timer(0.1, finish, (kid, k["session_id"], 137)).start()
        else:
            self.reply(404, {"type": "https://api.backend.ai/probs/url-not-found", "title": "Not found"})


threading.Thread(target=heartbeat, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
PYEOF
start_agent() { # ID SGROUP
    local port=$(( (RANDOM % 12000) + 20000 ))
    "$PY" "$T/fake_agent.py" --redis-port "$REDIS_PORT" --port "$port" --secret "$SECRET" \
        --id "$1" --sgroup "$2" >"$T/agent-$1.log" 2>&1 &
    AGENT_PIDS="$AGENT_PIDS $!"
}
agent_alive() { [ "$(sql "SELECT status FROM agents WHERE id = '$1'")" = ALIVE ]; }
start_agent i-one default
until_ok 20 agent_alive i-one && ok "fake agent i-one ALIVE" || { bad "agent never registered"; cat "$T"/agent-*.log; exit 1; }

SMALL='"config": {"resources": {"cpu": "1", "mem": "256m"}}'

# --- check-presets before anything runs ---
acall POST /admin/rest/resource-presets '{"name": "p-small", "resource_slots": {"cpu": "1", "mem": "1073741824"}}'
expect 201 "" "preset p-small"
acall POST /admin/rest/resource-presets '{"name": "p-big", "resource_slots": {"cpu": "3", "mem": "1073741824"}}'
expect 201 "" "preset p-big"
alloc() { printf '%s' "$BODY" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print([p['allocatable'] for p in d['presets'] if p['name'] == '$1'][0])" 2>/dev/null; }
ucall POST /resource/check-presets '{}'
expect 200 "" "check-presets"
[ "$(alloc p-small)" = True ] && [ "$(alloc p-big)" = True ] && ok "both presets allocatable on an idle agent" || bad "presets: $BODY"
for k in keypair_limits keypair_using keypair_remaining group_limits group_using group_remaining scaling_group_remaining scaling_groups presets; do
    printf '%s' "$BODY" | grep -q "\"$k\"" || bad "check-presets lacks $k"
done
[ "$(field "$BODY" "['scaling_groups']['default']['remaining']['cpu']")" = 4 ] && ok "default group has 4 cpu remaining" || bad "sgroups: $BODY"
ucall POST /resource/check-presets '{"scaling_group": "nope"}'
expect 400 invalid-api-params "check-presets with an unknown resource group"
ucall POST /resource/check-presets '{"group": null, "scaling_group": null}'
expect 200 "" "check-presets with nulls for defaults"
ucall POST /resource/check-presets '{"group": "no-such-project"}'
expect 400 invalid-api-params "check-presets for a project the user is not in"
ucall POST /resource/check-presets '{"group": 5}'
expect 400 invalid-api-params "check-presets with a group of the wrong type"

deps65=$("$PY" -c "import json; print(json.dumps(['s%d' % i for i in range(65)]))")
create "{\"name\": \"too-many\", \"image\": \"busybox\", \"dependencies\": $deps65}"
expect 400 invalid-api-params "65 dependencies"

create '{"name": "hold-two", "image": "busybox", "config": {"resources": {"cpu": "2", "mem": "256m"}}, "maxWaitSeconds": 20}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "a 2-cpu session runs" || bad "hold-two: $BODY"
ucall POST /resource/check-presets '{}'
[ "$(alloc p-small)" = True ] && [ "$(alloc p-big)" = False ] && ok "p-big no longer allocatable, p-small still" || bad "presets: $BODY"
[ "$(field "$BODY" "['keypair_using']['cpu']")" = 2 ] && [ "$(field "$BODY" "['scaling_groups']['default']['using']['cpu']")" = 2 ] &&
    [ "$(field "$BODY" "['scaling_group_remaining']['cpu']")" = 2 ] && ok "using and remaining follow the session" || bad "check-presets: $BODY"
acall POST /admin/rest/agents/i-one/drain
ucall POST /resource/check-presets '{}'
[ "$(alloc p-small)" = False ] && ok "nothing allocatable on a drained agent" || bad "presets while drained: $BODY"
acall POST /admin/rest/agents/i-one/undrain
ucall DELETE /session/hold-two
until_ok 10 session_status hold-two TERMINATED || bad "hold-two not terminated"

# --- keypair limit ---
acall POST /admin/rest/keypair-resource-policies '{"name": "two-cpu", "default_for_unspecified": "UNLIMITED", "total_resource_slots": {"cpu": "2"}}'
expect 201 "" "policy two-cpu"
acall PATCH "/admin/rest/keypairs/$USER_AK" '{"resource_policy": "two-cpu"}'
expect 200 "" "two-cpu given to the user's key"
create '{"name": "kp-a", "image": "busybox", "config": {"resources": {"cpu": "2", "mem": "256m"}}, "maxWaitSeconds": 20}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "2 cpu within the keypair limit" || bad "kp-a: $BODY"
create "{\"name\": \"kp-b\", \"image\": \"busybox\", $SMALL, \"enqueueOnly\": true}"
expect 201 "" "a third cpu is queued"
expect_denied kp-b keypair_resource_limit "over the keypair limit"
field "$BODY" "['statusData']['scheduler']['failed_predicates']" | grep -q "quota is exceeded" && ok "failure message names the quota" || bad "msg: $BODY"
[ "$(field "$BODY" "['statusData']['scheduler']['retries'] >= 1")" = True ] && [ -n "$(field "$BODY" "['statusData']['scheduler']['last_try']")" ] &&
    field "$BODY" "['statusData']['scheduler']['passed_predicates']" | grep -q "'concurrency'" &&
    ok "status_data has retries, last_try and passed_predicates" || bad "status_data: $BODY"
[ -n "$(field "$BODY" "['statusData']['scheduler']['msg']")" ] && ok "status_data msg" || bad "msg: $BODY"
ucall DELETE /session/kp-a
until_ok 15 session_status kp-b RUNNING && ok "kp-b runs once kp-a ended" || bad "kp-b: $BODY"
ucall DELETE /session/kp-b
until_ok 10 session_status kp-b TERMINATED

# --- user limit: the main keypair's policy covers the user's other keys ---
EMAIL=$(sql "SELECT email FROM users u JOIN keypairs k ON k.\"user\" = u.uuid WHERE k.access_key = '$USER_AK'")
[ "$(sql "SELECT main_access_key FROM users WHERE email = '$EMAIL'")" = "$USER_AK" ] || sql "UPDATE users SET main_access_key = '$USER_AK' WHERE email = '$EMAIL'" >/dev/null
acall POST /admin/rest/keypairs "{\"user_id\": \"$EMAIL\", \"resource_policy\": \"default\"}"
K2_AK=$(field "$BODY" "['access_key']") K2_SK=$(field "$BODY" "['secret_key']")
[ -n "$K2_AK" ] && [ -n "$K2_SK" ] && ok "second keypair for the user" || bad "keypair create: $STATUS $BODY"
call "$K2_AK" "$K2_SK" POST /session '{"name": "user-a", "image": "busybox", "config": {"resources": {"cpu": "2", "mem": "256m"}}, "maxWaitSeconds": 20}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "2 cpu on the second key" || bad "user-a: $BODY"
call "$K2_AK" "$K2_SK" POST /session "{\"name\": \"user-b\", \"image\": \"busybox\", $SMALL, \"enqueueOnly\": true}"
k2_denied() {
    call "$K2_AK" "$K2_SK" GET /session/user-b
    field "$BODY" "['statusData']['scheduler']['failed_predicates']" | grep -q "'user_resource_limit'" &&
        ! field "$BODY" "['statusData']['scheduler']['failed_predicates']" | grep -q "'keypair_resource_limit'"
}
until_ok 10 k2_denied && ok "second key: user_resource_limit from the main key's policy, keypair passes" || bad "user-b: $BODY"
call "$K2_AK" "$K2_SK" DELETE /session/user-b
call "$K2_AK" "$K2_SK" DELETE /session/user-a
acall PATCH "/admin/rest/keypairs/$USER_AK" '{"resource_policy": "default"}'

# --- project and domain limits ---
GID=$(sql "SELECT id FROM groups WHERE name = 'default' AND domain_name = 'default'")
acall PATCH "/admin/rest/groups/$GID" '{"total_resource_slots": {"cpu": "1"}}'
expect 200 "" "project limited to 1 cpu"
create '{"name": "grp-a", "image": "busybox", "config": {"resources": {"cpu": "2", "mem": "256m"}}, "enqueueOnly": true}'
expect_denied grp-a user_group_resource_limit "over the project limit"
acall PATCH "/admin/rest/groups/$GID" '{"total_resource_slots": {}}'
until_ok 10 session_status grp-a RUNNING && ok "runs once the project limit is lifted" || bad "grp-a: $BODY"
ucall DELETE /session/grp-a
acall PATCH /admin/rest/domains/default '{"total_resource_slots": {"cpu": "1"}}'
expect 200 "" "domain limited to 1 cpu"
create '{"name": "dom-a", "image": "busybox", "config": {"resources": {"cpu": "2", "mem": "256m"}}, "enqueueOnly": true}'
expect_denied dom-a domain_resource_limit "over the domain limit"
ucall POST /resource/check-presets '{}'
[ "$(field "$BODY" "['keypair_remaining']['cpu']")" = 1 ] && [ "$(alloc p-big)" = False ] && ok "check-presets: domain limit caps keypair_remaining" || bad "check-presets: $BODY"
acall PATCH /admin/rest/domains/default '{"total_resource_slots": {}}'
until_ok 10 session_status dom-a RUNNING && ok "runs once the domain limit is lifted" || bad "dom-a: $BODY"
ucall DELETE /session/dom-a
until_ok 10 session_status dom-a TERMINATED

# --- starts_at ---
create '{"name": "later-one", "image": "busybox", "type": "batch", "startupCommand": "sleep 0.2; exit 0", "starts_at": "1h", "enqueueOnly": true}'
expect 201 "" "batch session starting in 1h"
expect_denied later-one reserved_time "before its start time"
create '{"name": "past-one", "image": "busybox", "type": "batch", "startupCommand": "sleep 5; exit 0", "starts_at": "2020-01-02T03:04:05+09:00", "maxWaitSeconds": 20}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "start time in the past runs at once" || bad "past-one: $BODY"
[ "$(sql "SELECT starts_at AT TIME ZONE 'UTC' FROM sessions WHERE name = 'past-one'")" = "2020-01-01 18:04:05" ] && ok "ISO 8601 with offset stored in UTC" || bad "starts_at: $(sql "SELECT starts_at FROM sessions WHERE name = 'past-one'")"
create '{"name": "bad-start", "image": "busybox", "type": "batch", "startupCommand": "exit 0", "starts_at": "tomorrow"}'
expect 400 invalid-api-params "unreadable starts_at"
create '{"name": "bad-start", "image": "busybox", "type": "batch", "startupCommand": "exit 0", "starts_at": 5}'
expect 400 invalid-api-params "starts_at of the wrong type"
create '{"name": "bad-start", "image": "busybox", "starts_at": "1h"}'
expect 400 invalid-api-params "starts_at on an interactive session"
# container_count: the held session grows to 2 containers (API allows 1 today).
sql "UPDATE sessions SET cluster_size = 2, starts_at = NULL WHERE name = 'later-one'" >/dev/null
expect_denied later-one container_count "2 containers over max_containers_per_session 1"
ucall DELETE /session/later-one
expect 200 "" "cancel the held session"

# --- dependencies: A -> B -> C succeed in order ---
create '{"name": "dep-a", "image": "busybox", "type": "batch", "startupCommand": "sleep 8; exit 0", "enqueueOnly": true}'
A_ID=$(field "$BODY" "['sessionId']")
create '{"name": "dep-b", "image": "busybox", "type": "batch", "startupCommand": "sleep 0.5; exit 0", "dependencies": ["dep-a"], "enqueueOnly": true}'
expect 201 "" "B depends on A by name"
b_waits() {
    local row
    row=$(sql "SELECT status, status_info, status_data->'scheduler'->>'failed_predicates' FROM sessions WHERE name = 'dep-b'")
    case "$row" in PENDING\|predicate-checks-failed\|*'"dependencies"'*) ;; *) return 1 ;; esac
    printf '%s' "$row" | grep -q 'dep-a'
}
until_ok 8 b_waits && ok "B waits for A (dependencies, naming dep-a)" || bad "B: $(sql "SELECT status, status_info, status_data FROM sessions WHERE name = 'dep-b'")"
create "{\"name\": \"dep-c\", \"image\": \"busybox\", \"type\": \"batch\", \"startupCommand\": \"sleep 0.5; exit 0\", \"dependencies\": [\"dep-b\", \"$A_ID\"], \"enqueueOnly\": true}"
expect 201 "" "C depends on B by name and A by id"
[ "$(sql "SELECT count(*) FROM session_dependencies d JOIN sessions s ON s.id = d.session_id WHERE s.name = 'dep-c'")" = 2 ] && ok "two dependency rows for C" || bad "dependency rows"
all_done() { [ "$(sql "SELECT string_agg(status || '/' || result, ',' ORDER BY name) FROM sessions WHERE name IN ('dep-a','dep-b','dep-c')")" = "TERMINATED/SUCCESS,TERMINATED/SUCCESS,TERMINATED/SUCCESS" ]; }
until_ok 40 all_done && ok "A, B and C all TERMINATED with SUCCESS" || bad "chain: $(sql "SELECT name, status, result FROM sessions WHERE name LIKE 'dep-%'")"
order=$(sql "SELECT (SELECT terminated_at FROM sessions WHERE name = 'dep-a') <= (SELECT (status_history->>'SCHEDULED')::timestamptz FROM sessions WHERE name = 'dep-b')
           AND (SELECT terminated_at FROM sessions WHERE name = 'dep-b') <= (SELECT (status_history->>'SCHEDULED')::timestamptz FROM sessions WHERE name = 'dep-c')")
[ "$order" = t ] && ok "each was scheduled only after its dependency ended" || bad "order: $(sql "SELECT name, terminated_at, status_history FROM sessions WHERE name LIKE 'dep-%'")"

# --- a failed dependency cancels its dependants (and theirs) ---
create '{"name": "fail-a", "image": "busybox", "type": "batch", "startupCommand": "sleep 1; exit 3", "enqueueOnly": true}'
create '{"name": "fail-b", "image": "busybox", "type": "batch", "startupCommand": "exit 0", "dependencies": ["fail-a"], "enqueueOnly": true}'
create '{"name": "fail-c", "image": "busybox", "type": "batch", "startupCommand": "exit 0", "dependencies": ["fail-b"], "enqueueOnly": true}'
cancelled() { [ "$(sql "SELECT string_agg(status || '/' || COALESCE(status_info, ''), ',' ORDER BY name) FROM sessions WHERE name IN ('fail-b','fail-c')")" = "CANCELLED/dependency-failed,CANCELLED/dependency-failed" ]; }
until_ok 20 cancelled && ok "B and C CANCELLED with dependency-failed" || bad "failed chain: $(sql "SELECT name, status, status_info, result FROM sessions WHERE name LIKE 'fail-%'")"
[ "$(sql "SELECT status || '/' || result FROM sessions WHERE name = 'fail-a'")" = TERMINATED/FAILURE ] && ok "A TERMINATED with result FAILURE (exit 3)" || bad "fail-a: $(sql "SELECT status, result FROM sessions WHERE name = 'fail-a'")"
ucall GET /session/fail-b
field "$BODY" "['statusData']['scheduler']['msg']" | grep -q "fail-a" && ok "B's status_data names fail-a" || bad "fail-b: $BODY"
[ "$(sql "SELECT status FROM kernels WHERE session_name = 'fail-c'")" = CANCELLED ] && ok "C's kernel CANCELLED too" || bad "fail-c kernel"
redis-cli -p "$REDIS_PORT" XRANGE baic:session-events - + | grep -q dependency-failed && ok "session_cancelled events with reason dependency-failed" || bad "no cancel events"
# A user-cancelled dependency cancels its dependants as well.
create '{"name": "wait-x", "image": "busybox", "type": "batch", "startupCommand": "exit 0", "starts_at": "1h", "enqueueOnly": true}'
create '{"name": "wait-y", "image": "busybox", "type": "batch", "startupCommand": "exit 0", "dependencies": ["wait-x"], "enqueueOnly": true}'
ucall DELETE /session/wait-x
until_ok 10 session_status wait-y CANCELLED && ok "dependant of a cancelled session CANCELLED" || bad "wait-y: $BODY"

# --- dependency input ---
create '{"name": "dep-bad", "image": "busybox", "dependencies": ["no-such-session"]}'
expect 404 object-not-found "unknown dependency"
create '{"name": "dep-bad", "image": "busybox", "dependencies": "dep-a"}'
expect 400 invalid-api-params "dependencies not a list"
create '{"name": "dep-bad", "image": "busybox", "dependencies": [42]}'
expect 400 invalid-api-params "dependency of the wrong type"
acall POST /session "{\"name\": \"admin-own\", \"image\": \"busybox\", $SMALL, \"enqueueOnly\": true}"
create '{"name": "dep-bad", "image": "busybox", "dependencies": ["admin-own"]}'
expect 404 object-not-found "another user's session as a dependency"
acall DELETE /session/admin-own
[ "$(sql "SELECT count(*) FROM sessions WHERE name = 'dep-bad'")" = 0 ] && ok "refused creations stored nothing" || bad "dep-bad stored"

# --- drain and undrain ---
ucall POST /admin/rest/agents/i-one/drain
expect 403 "" "drain is for superadmins"
acall POST /admin/rest/agents/i-nope/drain
expect 404 object-not-found "drain an unknown agent"
acall POST /admin/rest/agents/i-one/drain
expect 200 "" "drain i-one"
[ "$(field "$BODY" "['schedulable']")" = False ] && [ "$(sql "SELECT schedulable FROM agents WHERE id = 'i-one'")" = f ] && ok "i-one not schedulable" || bad "drain: $BODY"
create "{\"name\": \"drained\", \"image\": \"busybox\", $SMALL, \"enqueueOnly\": true}"
no_instances() { ucall GET /session/drained; [ "$(field "$BODY" "['status']")" = PENDING ] && [ "$(field "$BODY" "['statusInfo']")" = no-available-instances ]; }
until_ok 10 no_instances && ok "no placement on a drained agent (no-available-instances)" || bad "drained: $BODY"
sleep 1
session_status drained PENDING && ok "still PENDING a second later" || bad "drained: $BODY"
acall GET /admin/rest/agents
expect 200 "" "list agents"
[ "$(printf '%s' "$BODY" | "$PY" -c "import json,sys; print([x['schedulable'] for x in json.load(sys.stdin)['items'] if x['id'] == 'i-one'][0])")" = False ] && ok "list shows the drain" || bad "agents: $BODY"
acall POST /admin/rest/agents/i-one/undrain
expect 200 "" "undrain i-one"
until_ok 10 session_status drained RUNNING && ok "scheduled after undrain" || bad "drained: $BODY"
ucall DELETE /session/drained
# The agent container limit (shared config) holds placements too.
sql "INSERT INTO shared_config (key, value) VALUES ('config/agent/max-container-count', '1')" >/dev/null
create "{\"name\": \"cnt-a\", \"image\": \"busybox\", $SMALL, \"maxWaitSeconds\": 20}"
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "first container on the agent" || bad "cnt-a: $BODY"
create "{\"name\": \"cnt-b\", \"image\": \"busybox\", $SMALL, \"enqueueOnly\": true}"
cnt_wait() { ucall GET /session/cnt-b; [ "$(field "$BODY" "['statusInfo']")" = no-available-instances ]; }
until_ok 10 cnt_wait && ok "max-container-count 1 keeps the second waiting" || bad "cnt-b: $BODY"
sql "DELETE FROM shared_config WHERE key = 'config/agent/max-container-count'" >/dev/null
until_ok 10 session_status cnt-b RUNNING && ok "runs once the limit is gone" || bad "cnt-b: $BODY"
ucall DELETE /session/cnt-a; ucall DELETE /session/cnt-b

# --- private resource group: only through a project or keypair association ---
acall POST /admin/rest/scaling-groups '{"name": "priv", "is_public": false}'
expect 201 "" "private resource group priv"
acall POST /admin/rest/scaling-groups/priv/domains/default
start_agent i-priv priv
until_ok 20 agent_alive i-priv && ok "agent i-priv in priv" || bad "i-priv not alive"
create "{\"name\": \"priv-a\", \"image\": \"busybox\", \"config\": {\"scalingGroup\": \"priv\", \"resources\": {\"cpu\": \"1\"}}}"
expect 400 invalid-api-params "private group refused to a keypair without association"
ucall POST /resource/check-presets '{"scaling_group": "priv"}'
expect 400 invalid-api-params "check-presets does not offer the private group"
acall POST "/admin/rest/scaling-groups/priv/keypairs/$USER_AK"
expect 201 "" "associate the user's key with priv"
create '{"name": "priv-a", "image": "busybox", "config": {"scalingGroup": "priv", "resources": {"cpu": "1", "mem": "256m"}}, "maxWaitSeconds": 20}'
[ "$(field "$BODY" "['status']")" = RUNNING ] && ok "private group usable with a keypair association" || bad "priv-a: $BODY"
[ "$(sql "SELECT agent FROM kernels WHERE session_name = 'priv-a' ORDER BY created_at DESC LIMIT 1")" = i-priv ] && ok "placed on i-priv" || bad "agent of priv-a"
# The scheduler re-checks: association removed after enqueue.
acall POST /admin/rest/agents/i-priv/drain
create '{"name": "priv-b", "image": "busybox", "config": {"scalingGroup": "priv", "resources": {"cpu": "1", "mem": "256m"}}, "enqueueOnly": true}'
expect 201 "" "priv-b queued"
acall DELETE "/admin/rest/scaling-groups/priv/keypairs/$USER_AK"
acall POST /admin/rest/agents/i-priv/undrain
expect_denied priv-b scaling_group "association removed after enqueue"
ucall DELETE /session/priv-b
ucall DELETE /session/priv-a

# insert_pending PREFIX N STARTS_AT STARTUP: N batch sessions PREFIX1..N of the user (cpu 1,
# 256 MiB), PENDING, inserted by one statement as POST /session enqueueOnly writes them (so
# they share priority, enqueued_at and created_at); STARTS_AT and STARTUP are SQL values.
insert_pending() {
    sql "WITH u AS (SELECT k.access_key, u.uuid, u.domain_name,
       (SELECT id FROM groups WHERE name = 'default' AND domain_name = u.domain_name) AS gid
     FROM keypairs k JOIN users u ON u.uuid = k.\"user\" WHERE k.access_key = '$USER_AK'),
 s AS (INSERT INTO sessions (name, session_type, priority, cluster_mode, cluster_size, domain_name,
         group_id, user_uuid, access_key, scaling_group_name, target_sgroup_names, images,
         architecture, requested_slots, resource_opts, status, status_changed, enqueued_at,
         starts_at, status_history, startup_command)
       SELECT '$1' || g, 'batch', 10, 'single-node', 1, domain_name, gid, uuid, access_key, 'default',
         ARRAY['default']::varchar(64)[], ARRAY['local.test/stable/busybox:latest']::varchar(512)[],
         'x86_64', '{\"cpu\": \"1\", \"mem\": \"268435456\"}', '{}', 'PENDING', now(), now(),
         $3, jsonb_build_object('PENDING', now()::text), $4
       FROM u, generate_series(1, $2) g RETURNING id, name, access_key, user_uuid, domain_name, group_id, requested_slots)
 INSERT INTO kernels (session_id, session_name, session_type, cluster_mode, cluster_size, cluster_role,
   cluster_idx, cluster_hostname, scaling_group, domain_name, group_id, user_uuid, access_key, image,
   architecture, registry, tag, requested_slots, resource_opts, environ, status, status_changed, status_history)
 SELECT s.id, s.name, 'batch', 'single-node', 1, 'main', 0, 'main1', 'default', s.domain_name, s.group_id,
   s.user_uuid, s.access_key, 'local.test/stable/busybox:latest', 'x86_64', 'local.test', 'latest',
   s.requested_slots, '{}', '{}', 'PENDING', now(), jsonb_build_object('PENDING', now()::text) FROM s" >/dev/null
}

# --- a queue deeper than one round's page, every session tied in the queue's order ---
# 1,200 sessions inserted by one statement (as POST /session enqueueOnly writes them) share
# priority, enqueued_at and created_at, and start in an hour. The predicates must judge
# exactly the sessions the round places from: none runs, the page waits denied.
insert_pending tie- 1200 "now() + interval '1 hour'" NULL
tie_judged() { [ "$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'tie-%' AND status = 'PENDING'
    AND status_data #>> '{scheduler,failed_predicates}' LIKE '%reserved_time%'")" -ge 1000 ]; }
until_ok 30 tie_judged || bad "the tied page was not judged: $(sql "SELECT status, status_info, count(*) FROM sessions WHERE name LIKE 'tie-%' GROUP BY 1, 2")"
sleep 2 # more rounds over the same page
n=$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'tie-%' AND status <> 'PENDING'")
[ "$n" = 0 ] && ok "1,200 tied sessions starting in an hour: none placed, the page denied (reserved_time)" ||
    bad "tied sessions placed before their start: $n"
# Those 1,200 held back by their own start time do not hide a session queued behind them.
acall POST /session "{\"name\": \"behind-ties\", \"image\": \"busybox\", $SMALL, \"enqueueOnly\": true}"
expect 201 "" "a session of another user queued behind 1,200 waiting ones"
behind_runs() { acall GET /session/behind-ties; [ "$(field "$BODY" "['status']")" = RUNNING ]; }
until_ok 20 behind_runs && ok "it runs: the page moves past sessions their own policies hold back" ||
    bad "behind-ties: $BODY"
acall DELETE /session/behind-ties
sql "WITH c AS (UPDATE sessions SET status = 'CANCELLED', status_changed = now(), terminated_at = now()
       WHERE name LIKE 'tie-%' AND status = 'PENDING' RETURNING id)
     UPDATE kernels SET status = 'CANCELLED', status_changed = now(), terminated_at = now()
       WHERE session_id IN (SELECT id FROM c)" >/dev/null
for t in $(sql "SELECT name FROM sessions WHERE name LIKE 'tie-%' AND status <> 'CANCELLED'"); do
    ucall DELETE "/session/$t"
done

# --- launches wait while a round's page is full ---
# The manager again with pages of 2, and a second agent: five sessions released at once are
# placed 2 + 2 + 1 (the second and third rounds read their pages ahead: prefetched),
# each exactly once, and no create_kernels goes out (session_scheduled in the manager's log)
# before the third round (schedule_round) placed the fifth. With scheduler_launch_defer_ms
# = 0 the first round's two go out before the second round ends.
sed -i "s/^scheduler_page = .*/scheduler_page = 2/" "$D/etc/manager.toml"
kill "$(cat "$D/run/manager.pid")"
for i in $(seq 1 100); do kill -0 "$(cat "$D/run/manager.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
"$BAIC" up --no-agent --data-dir "$D" >"$T/up3.log" 2>&1 || { cat "$T/up3.log"; tail -30 "$D"/log/manager.log; exit 1; }
until_ok 20 agent_alive i-one || bad "i-one not ALIVE after the manager restart"
start_agent i-two default
until_ok 20 agent_alive i-two || bad "i-two not ALIVE"
sql "UPDATE scaling_groups SET is_active = false WHERE name = 'default'" >/dev/null
L0=$(wc -l <"$D/log/manager.log")
insert_pending lq- 5 NULL "'sleep 30; exit 0'"
sql "UPDATE scaling_groups SET is_active = true WHERE name = 'default'" >/dev/null
lq_running() { [ "$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'lq-%' AND status = 'RUNNING'")" = 5 ]; }
if until_ok 30 lq_running; then
    rounds=$(sql "SELECT count(DISTINCT status_history->>'SCHEDULED') FROM sessions WHERE name LIKE 'lq-%'")
    ids=$(sql "SELECT id FROM sessions WHERE name LIKE 'lq-%'" | paste -sd'|')
    tail -n +$((L0 + 1)) "$D/log/manager.log" >"$T/lq.log"
    first=$(grep -n -m1 -E "event=session_scheduled session=($ids)" "$T/lq.log" | cut -d: -f1)
    before=$(head -n "${first:-0}" "$T/lq.log" | grep -cE "event=schedule_round .* placed=[1-9]")
    once=$(sql "SELECT count(*) FROM kernels k JOIN sessions s ON s.id = k.session_id WHERE s.name LIKE 'lq-%'
        AND k.agent IS NOT NULL AND k.status_history ? 'SCHEDULED'")
    pref=$(head -n "${first:-0}" "$T/lq.log" | grep -cE "event=schedule_round .* placed=[1-9] .*prefetched=1")
    [ "$rounds" = 3 ] && [ "$before" = 3 ] && [ "$pref" = 2 ] && [ "$once" = 5 ] &&
        ok "five sessions, pages of 2: placed once each in 3 rounds, none sent to an agent before the third" ||
        bad "launch hold: $rounds rounds ($pref prefetched), $once kernels placed, $before placing rounds before the first launch: $(grep -E "schedule_round|session_scheduled" "$T/lq.log")"
else
    bad "lq-*: $(sql "SELECT name, status, status_info, status_data FROM sessions WHERE name LIKE 'lq-%' ORDER BY name")"
fi
for t in 1 2 3 4 5; do ucall DELETE "/session/lq-$t"; done

# --- another manager places between two rounds ---
# Pages of 2 still, two agents of 4 CPUs, twelve 1-CPU sessions released at once while
# something else writes the scheduler's stamp every 20 ms (as another manager's rounds
# would): a round that decided early on the round before's placements must drop that
# decision and decide again on fresh numbers. Eight are placed, once each, no agent past
# its 4 CPUs, four wait (the head of them with a reason).
lq_gone() { [ "$(sql "SELECT count(*) FROM kernels WHERE session_name LIKE 'lq-%' AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')")" = 0 ]; }
until_ok 30 lq_gone || bad "lq-* still live: $(sql "SELECT session_name, status FROM kernels WHERE session_name LIKE 'lq-%'")"
sql "UPDATE scaling_groups SET is_active = false WHERE name = 'default'" >/dev/null
L0=$(wc -l <"$D/log/manager.log")
insert_pending st- 12 NULL "'sleep 30; exit 0'"
( while :; do psql "$DSN" -qAt -c "INSERT INTO shared_config (key, value) VALUES ('scheduler/stamp',
      jsonb_build_object('by', 'another-manager', 'seq', (random() * 1e9)::bigint))
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value" >/dev/null 2>&1; sleep 0.02; done ) &
STAMPER=$!
sql "UPDATE scaling_groups SET is_active = true WHERE name = 'default'" >/dev/null
st_settled() { [ "$(sql "SELECT count(*) FILTER (WHERE status_history ? 'SCHEDULED') = 8 AND count(*) FILTER (WHERE status = 'PENDING' AND status_info IS NOT NULL) > 0 FROM sessions WHERE name LIKE 'st-%'")" = t ]; }
until_ok 30 st_settled
sleep 1 # a round more, in case one were still to place past the capacity
kill "$STAMPER"; wait "$STAMPER" 2>/dev/null
placed=$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'st-%' AND status_history ? 'SCHEDULED'")
kernels=$(sql "SELECT count(*) FROM kernels WHERE session_name LIKE 'st-%' AND agent IS NOT NULL")
over=$(sql "SELECT count(*) FROM (SELECT agent, sum((occupied_slots->>'cpu')::numeric) AS cpu FROM kernels
        WHERE status IN ('SCHEDULED','PREPARING','PULLING','PREPARED','CREATING','RUNNING') AND agent IS NOT NULL
        GROUP BY agent) x WHERE cpu > 4")
waiting=$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'st-%' AND status = 'PENDING'")
dropped=$(tail -n +$((L0 + 1)) "$D/log/manager.log" | grep -c "event=schedule_early_dropped")
[ "$placed" = 8 ] && [ "$kernels" = 8 ] && [ "$over" = 0 ] && [ "$waiting" = 4 ] &&
    ok "a foreign stamp between rounds: 8 of 12 placed once each, no agent past 4 CPUs, 4 waiting ($dropped early decisions dropped)" ||
    bad "foreign stamp: placed $placed, kernels $kernels, agents over $over, waiting $waiting: $(tail -n +$((L0 + 1)) "$D/log/manager.log" | grep -E "schedule_")"
for t in $(seq 1 12); do ucall DELETE "/session/st-$t"; done
sql "WITH c AS (UPDATE sessions SET status = 'CANCELLED', status_changed = now(), terminated_at = now()
       WHERE name LIKE 'st-%' AND status = 'PENDING' RETURNING id)
     UPDATE kernels SET status = 'CANCELLED', status_changed = now(), terminated_at = now()
       WHERE session_id IN (SELECT id FROM c)" >/dev/null

# --- pending limits at enqueue ---
acall POST /admin/rest/scaling-groups '{"name": "empty"}'
acall POST /admin/rest/scaling-groups/empty/domains/default
acall POST /admin/rest/keypair-resource-policies '{"name": "pend-1cpu", "default_for_unspecified": "UNLIMITED", "max_pending_session_resource_slots": {"cpu": "1"}}'
acall PATCH "/admin/rest/keypairs/$USER_AK" '{"resource_policy": "pend-1cpu"}'
create '{"name": "pend-a", "image": "busybox", "config": {"scalingGroup": "empty", "resources": {"cpu": "1", "mem": "256m"}}, "enqueueOnly": true}'
expect 201 "" "one pending cpu"
create '{"name": "pend-b", "image": "busybox", "config": {"scalingGroup": "empty", "resources": {"cpu": "1", "mem": "256m"}}, "enqueueOnly": true}'
expect 412 quota-exceeded "a second pending cpu over max_pending_session_resource_slots"
ucall DELETE /session/pend-a
create '{"name": "pend-b", "image": "busybox", "config": {"scalingGroup": "empty", "resources": {"cpu": "1", "mem": "256m"}}, "enqueueOnly": true}'
expect 201 "" "accepted once the first left the queue"
ucall DELETE /session/pend-b
acall PATCH "/admin/rest/keypairs/$USER_AK" '{"resource_policy": "default"}'

kill $AGENT_PIDS 2>/dev/null; wait 2>/dev/null; AGENT_PIDS=
"$BAIC" down --data-dir "$D" >/dev/null 2>&1
if grep -qE "Sanitizer|runtime error" "$D/log/manager.log"; then
    bad "sanitizer report"; grep -E -A20 "Sanitizer|runtime error" "$D/log/manager.log" | head -60
else
    ok "no sanitizer report from the manager"
fi
[ $failures = 0 ] && echo "PASS" || { echo "$failures failure(s)"; tail -40 "$D/log/manager.log"; }
[ $failures = 0 ]
