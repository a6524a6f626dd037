#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The session API beyond create/execute, on the system `baic up` starts (agent on runtime/oci,
# real containers): batch sessions (session_success / session_failure with the exit code),
# restart (PATCH), rename, owner_access_key, logs (live and after the end), another key's
# sessions (404 on every new route), background-task SSE, and the CLI verbs that use them.
#
#   tests/integration/test_session_api.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip (not root; crun/skopeo/umoci/docker-registry missing; or the
# kernel runner never reaches the agent).
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root"
for t in crun skopeo umoci docker-registry redis-server curl python3 openssl psql; do
    command -v $t >/dev/null || skip "$t not installed"
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] && [ -x "$BUILD/core/agent/baic-agent" ] \
    || skip "baic, baic-manager or baic-agent not built"
[ -f "$BUILD/plugins-out/runtime_oci.so" ] || skip "runtime/oci not built"
# Sessions run code through the static kernel runner; a sanitizer build's runner is dynamic
# and cannot start inside a container (test_kernel_runner_container skips likewise).
file -L "$BUILD/core/kernel-runner/baic-kernel-runner" 2>/dev/null | grep -q 'statically linked' \
    || skip "the kernel runner is dynamic (sanitizer build): sessions cannot run code"
PY=/usr/bin/python3

T=$(mktemp -d /tmp/baic-sapi.XXXXXX) && chmod 711 "$T" || exit 1
D=$T/data
failures=0
. "$SRC/tests/integration/lib.sh"
CALL_MAX_TIME=180
cleanup() {
    stack_down "$D"
    if [ $failures = 0 ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

CACHE=${BAIC_E2E_CACHE:-/var/tmp/baic-e2e-cache}
mkdir -p "$CACHE" "$D" && ln -s "$CACHE" "$D/cache"
export BAIC_NO_PYTHON=1
if ! "$BAIC" up --data-dir "$D" >"$T/up.log" 2>&1; then
    cat "$T/up.log"; tail -20 "$D"/log/*.log; failures=1; exit 1
fi
grep -q "agent: started" "$T/up.log" || { bad "no agent: $(cat "$T/up.log")"; exit 1; }
# The test-only background task route: the manager again with test_routes on.
sed -i '/^\[manager\]/a test_routes = true' "$D/etc/manager.toml"
kill "$(cat "$D/run/manager.pid")"
for _ in $(seq 1 100); do kill -0 "$(cat "$D/run/manager.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
"$BAIC" up --data-dir "$D" >"$T/up2.log" 2>&1 || { cat "$T/up2.log"; tail -20 "$D/log/manager.log"; failures=1; exit 1; }

stack_env "$D"

ucall() { call "$USER_AK" "$USER_SK" "$@"; }
acall() { call "$ADMIN_AK" "$ADMIN_SK" "$@"; }
status_is() { ucall GET "/session/$1"; [ "$(field "$BODY" "['status']")" = "$2" ]; }
# curl_sse AK SK PATH OUT [curl args]: the SSE stream into OUT until it ends or SSE_TIME s.
curl_sse() {
    local ak=$1 sk=$2 path=$3 out=$4; shift 4
    local args=(-s -N --max-time "${SSE_TIME:-10}")
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" GET "$path" "$HP" "$ak" "$sk")
    curl "${args[@]}" "$@" "$EP$path" > "$out"
}
# create BODY: POST /session, once more when the kernel failed to start (a slow runner hello).
create() {
    local try
    for try in 1 2; do
        ucall POST /session "$1"
        [ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = ERROR ] || return 0
        echo "note: session creation ended in ERROR; retrying"
    done
}

# ---------------------------------------------------------------- an interactive session
create '{"image": "busybox", "name": "sapi-1", "startupCommand": "echo console-hello; echo console-err >&2", "config": {"resources": {"cpu": "1", "mem": "128m"}}}'
if [ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = ERROR ] && ! grep -q runner_hello "$D/log/agent.log"; then
    skip "the kernel runner never said hello to the agent"
fi
[ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = RUNNING ] && ok "interactive session with a startup command RUNNING" \
    || { bad "create sapi-1: $STATUS $BODY"; tail -20 "$D/log/agent.log"; exit 1; }
SID=$(field "$BODY" "['sessionId']")

# --- logs: what the container printed ---
logs_have() { ucall GET "/session/$1/logs"; printf '%s' "$(field "$BODY" "['result']['logs']")" | grep -q "$2"; }
until_ok 20 logs_have sapi-1 console-hello && ok "GET logs -> result.logs has the startup command's stdout" \
    || bad "logs: $STATUS $BODY"
logs_have sapi-1 console-err && ok "logs have its stderr too" || bad "logs stderr: $BODY"
ucall GET "/session/sapi-1/logs?kernel_id=not-a-uuid"
expect 400 invalid-api-params "logs with a malformed kernel_id"
ucall GET "/session/sapi-1/logs?kernel_id=00000000-0000-0000-0000-000000000000"
expect 404 object-not-found "logs of a kernel not in the session"
KID=$(sql "SELECT id FROM kernels WHERE session_id = '$SID'")
ucall GET "/session/sapi-1/logs?kernel_id=$KID"
[ "$STATUS" = 200 ] && printf '%s' "$BODY" | grep -q console-hello && ok "logs?kernel_id= of the main kernel" || bad "logs kernel_id: $STATUS $BODY"
OUT=$("$BAIC" session logs sapi-1 2>&1)
printf '%s' "$OUT" | grep -q console-hello && ok "baic session logs" || bad "baic session logs: $OUT"

# --- restart keeps the id, runs the container again ---
ucall POST /session/sapi-1 '{"mode":"query","code":"echo before > /tmp/mark; echo ok","runId":null,"options":{}}'
[ "$STATUS" = 200 ] || bad "execute before restart: $STATUS $BODY"
t0=$(date +%s)
ucall PATCH /session/sapi-1
expect 204 "" "PATCH /session/{ref} (restart)"
status_is sapi-1 RUNNING && [ "$(field "$BODY" "['sessionId']")" = "$SID" ] && ok "RUNNING again with the same session id ($(($(date +%s) - t0)) s)" \
    || bad "after restart: $BODY"
[ "$(sql "SELECT status_history ? 'RESTARTING' FROM sessions WHERE id = '$SID'")" = t ] && ok "status history has RESTARTING" \
    || bad "history: $(sql "SELECT status_history FROM sessions WHERE id = '$SID'")"
[ "$(sql "SELECT count(*) FROM kernels WHERE session_id = '$SID'")" = 1 ] && [ "$(sql "SELECT id FROM kernels WHERE session_id = '$SID'")" = "$KID" ] \
    && ok "the same kernel id after restart" || bad "kernels after restart"
ucall POST /session/sapi-1 '{"mode":"query","code":"cat /tmp/mark 2>/dev/null || echo fresh","runId":null,"options":{}}'
for _ in $(seq 1 10); do
    [ "$(field "$BODY" "['result']['status']")" = finished ] && break
    RID=$(field "$BODY" "['result']['runId']")
    ucall POST /session/sapi-1 "{\"mode\":\"continue\",\"code\":\"\",\"runId\":\"$RID\",\"options\":{}}"
done
printf '%s' "$BODY" | grep -q fresh && ok "a new container runs after restart (its /tmp is fresh) and executes" \
    || bad "execute after restart: $BODY"
ucall GET /session/sapi-1/logs
N=$(printf '%s' "$(field "$BODY" "['result']['logs']")" | grep -c console-hello)
[ "$N" = 2 ] && ok "the startup command ran again (twice in the logs)" || bad "logs after restart: count=$N"
grep -q kernel_restarted "$D/log/agent.log" && ok "agent logged kernel_restarted" || bad "no kernel_restarted in agent.log"

# --- rename ---
ucall POST "/session/sapi-1/rename?name=sapi-renamed"
expect 204 "" "rename sapi-1 -> sapi-renamed"
ucall GET /session/sapi-renamed
[ "$STATUS" = 200 ] && [ "$(field "$BODY" "['sessionId']")" = "$SID" ] && ok "the new name finds the same session" || bad "get renamed: $STATUS"
ucall GET /session/sapi-1
expect 404 object-not-found "the old name is gone"
ucall POST "/session/sapi-renamed/rename?name=x"
expect 400 invalid-api-params "rename to a name that breaks the rule"
ucall POST "/session/sapi-renamed/rename?name=bad%20name%21"
expect 400 invalid-api-params "rename to a name with spaces"
ucall POST "/session/sapi-renamed/rename"
expect 400 invalid-api-params "rename without a name"
ucall POST "/session/sapi-renamed/rename?session_name=sapi-renamed2"
expect 204 "" "rename with session_name="
ucall POST "/session/sapi-renamed2/rename?clientSessionToken=sapi-renamed"
expect 204 "" "rename with clientSessionToken="

# --- owner_access_key ---
acall POST /session "{\"image\": \"busybox\", \"name\": \"sapi-own\", \"owner_access_key\": \"$USER_AK\", \"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"128m\"}}}"
[ "$STATUS" = 201 ] && ok "admin creates a session for the user (owner_access_key)" || bad "admin create for user: $STATUS $BODY"
OWN_ID=$(field "$BODY" "['sessionId']")
[ "$(sql "SELECT access_key FROM sessions WHERE id = '$OWN_ID'")" = "$USER_AK" ] && ok "the session belongs to the user's keypair" \
    || bad "owner: $(sql "SELECT access_key FROM sessions WHERE id = '$OWN_ID'")"
ucall GET /session/sapi-own
expect 200 "" "the user sees it"
acall GET /session/sapi-own
expect 404 object-not-found "the admin's own key does not"
acall GET "/session/sapi-own?owner_access_key=$USER_AK"
expect 200 "" "the admin sees it with ?owner_access_key="
ucall POST /session "{\"image\": \"busybox\", \"name\": \"sapi-steal\", \"owner_access_key\": \"$ADMIN_AK\"}"
expect 403 insufficient-privilege "a user creating for another key"
acall POST /session '{"image": "busybox", "name": "sapi-nokey", "owner_access_key": "AKIANOSUCHKEY0000000"}'
expect 400 invalid-api-params "admin creating for an unknown key"
acall POST /session '{"image": "busybox", "name": "sapi-badkey", "owner_access_key": 42}'
expect 400 invalid-api-params "owner_access_key of the wrong type"
ucall GET "/session/sapi-own?owner_access_key=$ADMIN_AK"
expect 403 insufficient-privilege "a user's ?owner_access_key= of another key"
acall DELETE "/session/sapi-own?owner_access_key=$USER_AK"
expect 200 "" "the admin destroys it with ?owner_access_key="

# --- rename: duplicates among live sessions of the key ---
create '{"image": "busybox", "name": "sapi-2", "config": {"resources": {"cpu": "1", "mem": "128m"}}}'
[ "$STATUS" = 201 ] || bad "create sapi-2: $STATUS $BODY"
ucall POST "/session/sapi-2/rename?name=sapi-renamed"
expect 400 session-already-exists "rename onto another live session's name"
ucall GET /session/sapi-2
expect 200 "" "sapi-2 kept its name"

# --- another key's session: 404 on every new route ---
acall PATCH /session/sapi-renamed
expect 404 object-not-found "another key's restart"
acall POST "/session/sapi-renamed/rename?name=stolen-name"
expect 404 object-not-found "another key's rename"
acall GET /session/sapi-renamed/logs
expect 404 object-not-found "another key's logs"
ucall PATCH "/session/sapi-renamed?owner_access_key=$ADMIN_AK"
expect 403 insufficient-privilege "a user's restart with another owner_access_key"
ucall PATCH /session/no-such-session
expect 404 object-not-found "restart of an unknown session"
ucall GET /session/no-such-session/logs
expect 404 object-not-found "logs of an unknown session"

# --- a domain admin of another domain: none of the user's sessions, no creating for them ---
OAK=AKIAOTHERDOMAIN00001 OSK=0123456789abcdef0123456789abcdef01234567
sql "INSERT INTO domains (name) VALUES ('sapi-other');
     INSERT INTO users (email, domain_name, role, resource_policy)
       SELECT 'sapi-other-admin@example.com', 'sapi-other', 'admin', resource_policy FROM users LIMIT 1;
     INSERT INTO keypairs (access_key, secret_key, user_id, \"user\", is_admin, resource_policy)
       SELECT '$OAK', '$OSK', email, uuid, true, (SELECT resource_policy FROM keypairs LIMIT 1)
       FROM users WHERE email = 'sapi-other-admin@example.com';" >/dev/null
ocall() { call "$OAK" "$OSK" "$@"; }
ocall GET "/session/sapi-renamed?owner_access_key=$USER_AK"
expect 404 object-not-found "another domain's admin: GET with owner_access_key"
ocall PATCH "/session/sapi-renamed?owner_access_key=$USER_AK"
expect 404 object-not-found "another domain's admin: restart"
ocall POST "/session/sapi-renamed/rename?name=other-dom&owner_access_key=$USER_AK"
expect 404 object-not-found "another domain's admin: rename"
ocall GET "/session/sapi-renamed/logs?owner_access_key=$USER_AK"
expect 404 object-not-found "another domain's admin: logs"
ocall DELETE "/session/sapi-renamed?owner_access_key=$USER_AK"
expect 404 object-not-found "another domain's admin: destroy"
ocall POST /session "{\"image\": \"busybox\", \"name\": \"sapi-xdom\", \"owner_access_key\": \"$USER_AK\"}"
expect 403 insufficient-privilege "another domain's admin creating for the user"
status_is sapi-renamed RUNNING && ok "the session is untouched" || bad "after other-domain calls: $BODY"

# --- CLI: upload, download, shell ---
mkdir -p "$T/up/sub" "$T/dl"
printf 'payload-1\n' > "$T/up/sub/a.txt"
(cd "$T/up" && "$BAIC" session upload sapi-renamed sub/a.txt) >/dev/null && ok "baic session upload" || bad "baic session upload"
(cd "$T/up" && "$BAIC" session upload sapi-renamed ../etc-passwd 2>/dev/null) && bad "upload of ../ accepted" || ok "baic session upload refuses ../"
"$BAIC" session download sapi-renamed sub/a.txt --dest "$T/dl" >/dev/null && [ "$(cat "$T/dl/a.txt" 2>/dev/null)" = payload-1 ] \
    && ok "baic session download (tar part) -> the same bytes" || bad "baic session download: $(ls -R "$T/dl")"
OUT=$(printf 'echo shell-$((6*7))\nexit\n' | timeout 30 "$BAIC" shell sapi-renamed 2>&1)
printf '%s' "$OUT" | grep -q shell-42 && ok "baic shell (piped): output of the remote shell" || bad "baic shell: $OUT"
timeout 30 "$BAIC" shell no-such-session </dev/null >/dev/null 2>&1 && bad "shell to an unknown session succeeded" \
    || ok "baic shell to an unknown session fails"

# ---------------------------------------------------------------- batch sessions
# Room for them (an image minimum of one CPU each; the test machine may have two).
ucall DELETE /session/sapi-2
ucall DELETE /session/sapi-renamed
SSE_TIME=120 curl_sse "$USER_AK" "$USER_SK" '/events/session?sessionName=sapi-batch-ok' "$T/sse-ok" &
P1=$!
SSE_TIME=120 curl_sse "$USER_AK" "$USER_SK" '/events/session?sessionName=sapi-batch-bad' "$T/sse-bad" &
P2=$!
sleep 1
create '{"image": "busybox", "name": "sapi-batch-ok", "type": "batch", "startupCommand": "echo batch-output; sleep 1; exit 0", "config": {"resources": {"cpu": "1", "mem": "64m"}}}'
[ "$STATUS" = 201 ] && ok "batch session created ($(field "$BODY" "['status']"))" || bad "batch create: $STATUS $BODY"
BOK=$(field "$BODY" "['sessionId']")
create '{"image": "busybox", "name": "sapi-batch-bad", "type": "batch", "startupCommand": "echo going-wrong; exit 3", "config": {"resources": {"cpu": "1", "mem": "64m"}}}'
[ "$STATUS" = 201 ] || bad "failing batch create: $STATUS $BODY"
BBAD=$(field "$BODY" "['sessionId']")
ended() { grep -q '^event: session_terminated' "$1"; }
until_ok 90 ended "$T/sse-ok" && ok "the batch session ended by itself" || bad "batch ok never ended: $(grep event: "$T/sse-ok" | tr '\n' ' ')"
until_ok 60 ended "$T/sse-bad" || bad "failing batch never ended: $(grep event: "$T/sse-bad" | tr '\n' ' ')"
kill $P1 $P2 2>/dev/null; wait $P1 $P2 2>/dev/null
"$PY" - "$T/sse-ok" success 0 <<'EOF' && ok "SSE session_success with exitCode 0 before session_terminated" || bad "success events: $(cat "$T/sse-ok")"
import json, sys
ev, name = [], None
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("event: "): name = line[7:]
    elif line.startswith("data: "): ev.append((name, json.loads(line[6:])))
names = [n for n, _ in ev]
want = "session_" + sys.argv[2]
assert want in names, names
i = names.index(want)
assert ev[i][1]["exitCode"] == int(sys.argv[3]), ev[i]
assert names.index("session_terminated") > i, names
other = "session_failure" if sys.argv[2] == "success" else "session_success"
assert other not in names, names
EOF
"$PY" - "$T/sse-bad" failure 3 <<'EOF' && ok "SSE session_failure with exitCode 3" || bad "failure events: $(cat "$T/sse-bad")"
import json, sys
ev, name = [], None
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("event: "): name = line[7:]
    elif line.startswith("data: "): ev.append((name, json.loads(line[6:])))
names = [n for n, _ in ev]
want = "session_" + sys.argv[2]
assert want in names, names
assert ev[names.index(want)][1]["exitCode"] == int(sys.argv[3]), ev
assert "session_success" not in names, names
EOF
[ "$(sql "SELECT status || ' ' || result FROM sessions WHERE id = '$BOK'")" = "TERMINATED SUCCESS" ] && ok "sessions.result SUCCESS" \
    || bad "batch ok row: $(sql "SELECT status, result, status_info FROM sessions WHERE id = '$BOK'")"
[ "$(sql "SELECT status || ' ' || result FROM sessions WHERE id = '$BBAD'")" = "TERMINATED FAILURE" ] && ok "sessions.result FAILURE" \
    || bad "batch bad row: $(sql "SELECT status, result FROM sessions WHERE id = '$BBAD'")"
[ "$(sql "SELECT status_info FROM kernels WHERE session_id = '$BOK'")" = task-finished ] && ok "kernel status_info task-finished" \
    || bad "kernel info: $(sql "SELECT status_info FROM kernels WHERE session_id = '$BOK'")"
[ "$(sql "SELECT count(*) FROM kernels WHERE session_id IN ('$BOK', '$BBAD') AND occupied_slots <> '{}' AND status NOT IN ('TERMINATED')")" = 0 ] \
    && ok "no resources held by the ended batch kernels" || bad "batch kernels still live"
ucall GET /session/sapi-batch-ok
[ "$(field "$BODY" "['statusData']['kernel']['exit_code']")" = 0 ] && ok "GET shows statusData.kernel.exit_code" || bad "statusData: $BODY"
ucall GET /session/sapi-batch-bad/logs
printf '%s' "$(field "$BODY" "['result']['logs']")" | grep -q going-wrong && ok "logs of an ended session (kernels.container_log)" \
    || bad "ended logs: $STATUS $BODY"
printf 'echo from-batch-file\nexit 5\n' > "$T/job.sh"
OUT=$("$BAIC" run busybox "$T/job.sh" --batch --name sapi-cli-batch -r mem=64m 2>&1); RC=$?
[ "$RC" = 5 ] && printf '%s' "$OUT" | grep -q from-batch-file && ok "baic run IMAGE FILE --batch: its output and exit code 5" \
    || bad "baic run --batch: rc=$RC out=[$OUT]"
ucall POST /session '{"image": "busybox", "name": "sapi-batch-empty", "type": "batch"}'
expect 400 invalid-api-params "a batch session without startupCommand"

# ---------------------------------------------------------------- background tasks
ucall POST /_test/bgtask '{"steps": 4, "interval_ms": 800}'
[ "$STATUS" = 200 ] && TASK=$(field "$BODY" "['task_id']") && ok "test task started ($TASK)" || bad "bgtask start: $STATUS $BODY"
SSE_TIME=20 curl_sse "$USER_AK" "$USER_SK" "/events/background-task?task_id=$TASK" "$T/bg1"
RC=$?
[ $RC = 0 ] && ok "the stream ended by itself (server_close)" || bad "bg stream did not end: curl rc=$RC"
"$PY" - "$T/bg1" "$TASK" <<'EOF' && ok "bgtask_updated .. 4 of 4, bgtask_done, server_close" || bad "bg events: $(cat "$T/bg1")"
import json, sys
ev, name = [], None
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("event: "): name = line[7:]
    elif line.startswith("data: "): ev.append((name, json.loads(line[6:])))
names = [n for n, _ in ev]
assert names[-2:] == ["bgtask_done", "server_close"], names
ups = [d for n, d in ev if n == "bgtask_updated"]
cur = [u["current_progress"] for u in ups]
assert len(cur) >= 2 and cur[-1] == 4 and cur == sorted(cur), ups
assert all(u["total_progress"] == 4 and u["task_id"] == sys.argv[2] for u in ups), ups
assert ev[-2][1]["task_id"] == sys.argv[2] and "message" in ev[-2][1], ev[-2]
assert ev[-1][1] == {}, ev[-1]
EOF
[ "$(sql "SELECT status || ' ' || current_progress || '/' || total_progress FROM background_tasks WHERE id = '$TASK'")" = "done 4/4" ] \
    && ok "background_tasks row done 4/4" || bad "bg row: $(sql "SELECT * FROM background_tasks WHERE id = '$TASK'")"
SSE_TIME=5 curl_sse "$USER_AK" "$USER_SK" "/events/background-task?taskId=$TASK" "$T/bg2"
[ "$(grep '^event:' "$T/bg2" | tr '\n' ' ')" = "event: bgtask_done event: server_close " ] && ok "a finished task answers its end at once (taskId=)" \
    || bad "finished task stream: $(cat "$T/bg2")"
FIRST=$(grep -m1 '^id:' "$T/bg1" | cut -d' ' -f2)
SSE_TIME=5 curl_sse "$USER_AK" "$USER_SK" "/events/background-task?task_id=$TASK" "$T/bg3" -H "Last-Event-ID: $FIRST"
[ -n "$FIRST" ] && ! grep -q "^id: $FIRST$" "$T/bg3" && grep -q '^event: bgtask_done' "$T/bg3" \
    && ok "Last-Event-ID resumes after that event" || bad "bg resume: first=$FIRST $(cat "$T/bg3")"
ucall POST /_test/bgtask '{"steps": 1, "interval_ms": 200, "outcome": "failed"}'
TASK2=$(field "$BODY" "['task_id']")
SSE_TIME=10 curl_sse "$USER_AK" "$USER_SK" "/events/background-task?task_id=$TASK2" "$T/bg4"
grep -q '^event: bgtask_failed' "$T/bg4" && [ "$(sql "SELECT status FROM background_tasks WHERE id = '$TASK2'")" = failed ] \
    && ok "a failing task: bgtask_failed, row failed" || bad "failed task: $(cat "$T/bg4")"
ucall POST /_test/bgtask '{"steps": 0, "interval_ms": 100, "outcome": "cancelled"}'
TASK3=$(field "$BODY" "['task_id']")
SSE_TIME=10 curl_sse "$USER_AK" "$USER_SK" "/events/background-task?task_id=$TASK3" "$T/bg5"
grep -q '^event: bgtask_cancelled' "$T/bg5" && ok "a cancelled task: bgtask_cancelled" || bad "cancelled: $(cat "$T/bg5")"
acall GET "/events/background-task?task_id=$TASK"
expect 404 object-not-found "another key's task"
ucall GET "/events/background-task?task_id=../../etc"
expect 400 invalid-api-params "a malformed task id"
ucall GET "/events/background-task"
expect 400 invalid-api-params "no task id"
ucall GET "/events/background-task?task_id=$TASK" "" -H "Last-Event-ID: nonsense"
expect 400 invalid-api-params "a malformed Last-Event-ID"
ucall POST /_test/bgtask '{"steps": "many"}'
expect 400 invalid-api-params "test task with bad input"

# Leave nothing running for `baic down`.
for _ in $(seq 1 100); do
    [ "$("$BAIC" session ls | tail -n +2 | wc -l)" = 0 ] && break
    sleep 0.2
done
grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$D"/log/*.log && bad "sanitizer report in logs"
[ $failures = 0 ] && echo PASS || { echo "$failures failure(s)"; tail -30 "$D/log/manager.log"; tail -30 "$D/log/agent.log"; }
[ $failures = 0 ]
