#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Reconciliation (baic-manager reconcile, POST /admin/reconcile) against a real agent on
# runtime/dummy with drift made by hand, and a manager killed -9 while it schedules a burst
# of 200 sessions: nothing lost, nothing placed twice, no agent over-booked.
#
#   tests/integration/test_reconcile.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] || skip "baic / baic-manager not built"
[ -x "$BUILD/core/agent/baic-agent" ] || skip "baic-agent not built"
[ -f "$BUILD/plugins-out/runtime_dummy.so" ] || skip "runtime/dummy not built"
command -v redis-server >/dev/null || skip "redis-server not installed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
for t in curl python3 redis-cli psql openssl; do command -v $t >/dev/null || skip "$t not installed"; done
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
# A port of its own: the manager is restarted after a kill -9 below, and the default port
# may be taken by then.
MPORT=$(( (RANDOM % 12000) + 20000 ))
sed -i "/^\[manager\]/,/^\[/s/^listen = .*/listen = \"127.0.0.1:$MPORT\"/" "$D/etc/manager.toml"
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

# Small sessions below (cpu 0.5, 0.02) fit under lowered image minimums.
sql "UPDATE images SET resources = '{\"cpu\": {\"min\": \"0.01\"}, \"mem\": {\"min\": \"33554432\"}}',
     labels = labels || '{\"ai.backend.resource.min.cpu\": \"0.01\", \"ai.backend.resource.min.mem\": \"32m\"}'" >/dev/null

# --- a real agent on runtime/dummy ---
AGENT_PORT=$(( (RANDOM % 12000) + 20000 ))
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
create_delay_ms = 20
start_delay_ms = 20
TOML
"$BUILD/core/agent/baic-agent" -c "$T/agent.toml" >"$T/agent.log" 2>&1 &
AGENT_PID=$!
until_ok 20 agent_is ALIVE && ok "agent registered ALIVE" || { bad "agent never registered"; cat "$T/agent.log"; exit 1; }

agent_kernels() { rpc GET /rpc/kernels; "$PY" -c "import json,sys; print('\n'.join(sorted(k['kernel_id'] for k in json.load(open(sys.argv[1]))['kernels'])))" "$T/rpc"; }
MGR="$BUILD/core/manager/baic-manager"
reconcile() { "$MGR" -c "$D/etc/manager.toml" reconcile "$@" >"$T/rec.json" 2>"$T/rec.log"; REC_RC=$?; REC=$(cat "$T/rec.json"); }
# kinds: the fix kinds of the last report, sorted, one line
kinds() { "$PY" -c "import json,sys; print(' '.join(sorted(f['kind'] for f in json.load(open(sys.argv[1]))['fixes'])))" "$T/rec.json" 2>/dev/null; }
nfixes() { "$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['fixes']))" "$1" 2>/dev/null; }

# --- three running sessions ---
for n in rec-a rec-b rec-c; do
    call "$USER_AK" "$USER_SK" POST /session "{\"name\": \"$n\", \"image\": \"busybox\", \"config\": {\"resources\": {\"cpu\": \"0.5\", \"mem\": \"64m\"}}, \"maxWaitSeconds\": 30}"
    expect 201 "" "session $n RUNNING"
done
KA=$(sql "SELECT k.id FROM kernels k JOIN sessions s ON s.id = k.session_id WHERE s.name = 'rec-a'")
KB=$(sql "SELECT k.id FROM kernels k JOIN sessions s ON s.id = k.session_id WHERE s.name = 'rec-b'")
reconcile
[ $REC_RC = 0 ] && [ "$(kinds)" = occupancy ] && ok "first pass: only the never-written occupancy copy" || bad "first pass rc=$REC_RC: $REC"
reconcile
[ $REC_RC = 0 ] && [ "$(nfixes "$T/rec.json")" = 0 ] && ok "consistent cluster: nothing to fix" || bad "clean pass: $REC"

# --- drift by hand, with the manager stopped so its heartbeat reconciliation stays out ---
MPID=$(cat "$D/run/manager.pid")
kill -STOP "$MPID"
# a phantom: a live kernel the agent never heard of (a copy of rec-a's, one hour old)
PH=$(sql "INSERT INTO kernels SELECT (jsonb_populate_record(NULL::kernels, to_jsonb(k) || jsonb_build_object(
    'id', gen_random_uuid(), 'cluster_idx', 1, 'cluster_hostname', 'sub1', 'cluster_role', 'sub',
    'status_changed', now() - interval '1 hour'))).* FROM kernels k WHERE k.id = '$KA' RETURNING id" | head -1)
[ -n "$PH" ] && ok "phantom kernel inserted" || bad "phantom insert failed"
# rec-b's kernel ended in the database only: still on the agent, session left RUNNING
sql "UPDATE kernels SET status = 'TERMINATED', terminated_at = now() WHERE id = '$KB'" >/dev/null
# a wrong stored occupancy
sql "UPDATE agents SET occupied_slots = '{\"cpu\": \"99\"}' WHERE id = 'i-test'" >/dev/null
# a kernel on the agent that the database never knew
ORPH=$(cat /proc/sys/kernel/random/uuid)
rpc POST /rpc/create_kernels "{\"session_id\":\"$(cat /proc/sys/kernel/random/uuid)\",\"session_name\":\"ghost\",\"access_key\":\"AKGHOST\",\"kernels\":[{\"kernel_id\":\"$ORPH\",\"image\":{\"canonical\":\"x\",\"registry\":\"local\",\"labels\":{}},\"resource_slots\":{\"cpu\":\"0.1\",\"mem\":\"67108864\"},\"environ\":{},\"cluster_role\":\"main\",\"cluster_idx\":0,\"cluster_hostname\":\"main1\"}]}"
[ "$RST" = 202 ] && ok "unknown kernel created on the agent" || bad "create on agent: $RST $(cat "$T/rpc")"
sleep 0.5
OCC_BEFORE=$(sql "SELECT occupied_slots FROM agents WHERE id = 'i-test'")

reconcile --dry-run
[ $REC_RC = 0 ] && [ "$(kinds)" = "missing occupancy orphan orphan session" ] \
    && ok "dry run reports missing, occupancy, 2 orphans, session" || bad "dry run: rc=$REC_RC kinds=$(kinds) $REC"
grep -q "\"applied\": false" "$T/rec.json" && ! grep -q "\"applied\": true" "$T/rec.json" \
    && ok "dry run applies nothing" || bad "dry run applied flags: $REC"
[ "$(sql "SELECT status FROM kernels WHERE id = '$PH'")" = RUNNING ] && \
[ "$(sql "SELECT status FROM sessions WHERE name = 'rec-b'")" = RUNNING ] && \
[ "$(sql "SELECT occupied_slots FROM agents WHERE id = 'i-test'")" = "$OCC_BEFORE" ] && \
agent_kernels | grep -q "$ORPH" && agent_kernels | grep -q "$KB" \
    && ok "dry run left the database and the agent alone" || bad "dry run changed something"

reconcile
[ $REC_RC = 0 ] && [ "$(kinds)" = "missing occupancy orphan orphan session" ] && ! grep -q '"applied": false' "$T/rec.json" \
    && ok "real run fixes the same five" || bad "real run: rc=$REC_RC $REC"
[ "$(sql "SELECT status || ' ' || status_info FROM kernels WHERE id = '$PH'")" = "TERMINATED reconciled-missing" ] \
    && ok "phantom TERMINATED reconciled-missing" || bad "phantom: $(sql "SELECT status, status_info FROM kernels WHERE id = '$PH'")"
[ "$(sql "SELECT status FROM sessions WHERE name = 'rec-b'")" = TERMINATED ] && [ "$(sql "SELECT status FROM sessions WHERE name = 'rec-a'")" = RUNNING ] \
    && ok "rec-b finalized, rec-a (one kernel still live) kept" || bad "sessions after reconcile"
DERIVED=$(sql "SELECT sum((occupied_slots->>'cpu')::numeric) FROM kernels WHERE agent = 'i-test' AND status IN ('SCHEDULED','PREPARING','PULLING','PREPARED','CREATING','RUNNING','RESTARTING','RUNNING_DEGRADED','TERMINATING')")
[ "$(sql "SELECT (occupied_slots->>'cpu')::numeric = $DERIVED AND $DERIVED = 1 FROM agents WHERE id = 'i-test'")" = t ] \
    && ok "stored occupancy = derived sum (cpu $DERIVED)" || bad "occupancy $(sql "SELECT occupied_slots FROM agents WHERE id = 'i-test'") vs $DERIVED"
until_ok 10 eval '! agent_kernels | grep -q -e "$ORPH" -e "$KB"' && ok "orphans destroyed on the agent" || bad "agent still has: $(agent_kernels)"
grep -q "event=reconcile_fix kind=missing kernel=$PH .*agent=i-test before=RUNNING after=TERMINATED" "$T/rec.log" \
    && [ "$(grep -c 'event=reconcile_fix' "$T/rec.log")" = 5 ] && ok "every fix logged" || bad "log: $(cat "$T/rec.log")"
reconcile
[ $REC_RC = 0 ] && [ "$(nfixes "$T/rec.json")" = 0 ] && ok "second run finds nothing" || bad "second run: $REC"
kill -CONT "$MPID"

# --- the admin route ---
call "$USER_AK" "$USER_SK" POST /admin/reconcile '{}'
expect 403 insufficient-privilege "reconcile is for superadmins"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile '{"dry_run": "yes"}'
expect 400 invalid-api-params "dry_run must be a boolean"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile '{"grace_seconds": -1}'
expect 400 invalid-api-params "grace_seconds range"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile '{"dry_run": tru'
expect 400 invalid-api-params "malformed JSON"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile '[1]'
expect 400 invalid-api-params "a non-object body"
sql "UPDATE agents SET occupied_slots = '{\"cpu\": \"7\", \"mem\": \"1\"}' WHERE id = 'i-test'" >/dev/null
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile '{"dry_run": true}'
expect 200 "" "route dry run"
printf '%s' "$BODY" >"$T/route.json"
[ "$(nfixes "$T/route.json")" = 1 ] && printf '%s' "$BODY" | grep -q '"occupancy"' && \
[ "$(sql "SELECT occupied_slots->>'cpu' FROM agents WHERE id = 'i-test'")" = 7 ] && ok "route dry run reports, changes nothing" || bad "route dry: $BODY"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile ''
expect 200 "" "route real run"
printf '%s' "$BODY" >"$T/route.json"
[ "$(nfixes "$T/route.json")" = 1 ] && [ "$(sql "SELECT (occupied_slots->>'cpu')::numeric = 1 FROM agents WHERE id = 'i-test'")" = t ] \
    && ok "route fixed the occupancy" || bad "route real: $BODY"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/reconcile '{}'
[ "$STATUS" = 200 ] && printf '%s' "$BODY" >"$T/route.json" && [ "$(nfixes "$T/route.json")" = 0 ] && ok "route second run: nothing" || bad "route second: $BODY"
grep -q 'event=reconcile_fix kind=occupancy' "$D/log/manager.log" && ok "route fixes in the manager log" || bad "no reconcile_fix in manager.log"

# --- a launch lost with its manager: the round committed SCHEDULED, create_kernels never sent ---
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/agents/i-test/drain
expect 200 "" "agent drained"
call "$USER_AK" "$USER_SK" POST /session '{"name": "rec-lost", "image": "busybox", "enqueueOnly": true, "config": {"resources": {"cpu": "0.5", "mem": "64m"}}}'
expect 201 "" "rec-lost enqueued"
LOST=$(sql "SELECT id FROM sessions WHERE name = 'rec-lost'")
until_ok 10 eval '[ "$(sql "SELECT status_info FROM sessions WHERE id = '"'$LOST'"'")" = no-available-instances ]' \
    && ok "rec-lost PENDING on the drained agent" || bad "rec-lost: $(sql "SELECT status, status_info FROM sessions WHERE id = '$LOST'")"
MPID=$(cat "$D/run/manager.pid")
kill -9 "$MPID"
until_ok 10 eval '! kill -0 "$MPID" 2>/dev/null'
# what the allocation statement of a round commits, a minute ago, and the agent back in service
sql "BEGIN;
     UPDATE kernels SET agent = 'i-test', agent_addr = (SELECT addr FROM agents WHERE id = 'i-test'),
       occupied_slots = requested_slots, status = 'SCHEDULED', status_changed = now() - interval '1 minute'
       WHERE session_id = '$LOST';
     UPDATE sessions SET status = 'SCHEDULED', status_changed = now() - interval '1 minute',
       agent_ids = '{i-test}', occupying_slots = requested_slots WHERE id = '$LOST';
     UPDATE agents SET schedulable = true WHERE id = 'i-test'; COMMIT" >/dev/null
"$BAIC" up --no-agent --data-dir "$D" >"$T/up-lost.log" 2>&1 || { cat "$T/up-lost.log"; bad "manager restart"; }
until_ok 60 session_status rec-lost RUNNING && ok "the lost launch is sent again: rec-lost RUNNING" \
    || bad "rec-lost: $(sql "SELECT status, status_info FROM sessions WHERE id = '$LOST'")"
grep -q "event=session_relaunch session=$LOST agent=i-test" "$D/log/manager.log" && ok "relaunch logged" || bad "no session_relaunch in manager.log"
call "$USER_AK" "$USER_SK" DELETE /session/rec-lost

# --- kill -9 while scheduling a burst of 200 sessions ---
# Small sessions: cpu 0.02 each, so the agent's cores hold 100 of them and the rest wait.
NCPU=$(sql "SELECT (available_slots->>'cpu')::numeric FROM agents WHERE id = 'i-test'")
FIT=$(awk -v c="$NCPU" 'BEGIN { printf "%d", c / 0.02 }')
[ "$FIT" -lt 200 ] || skip "more than 4 cores: the burst would not overflow the agent"
# Capacity, not the keypair's concurrency limit, is what stops the burst.
sql "UPDATE keypair_resource_policies SET max_concurrent_sessions = 1000, total_resource_slots = '{}'" >/dev/null
for n in rec-a rec-c; do call "$USER_AK" "$USER_SK" DELETE "/session/$n"; done
until_ok 20 eval '[ "$(sql "SELECT count(*) FROM kernels WHERE agent = '"'i-test'"' AND status NOT IN ('"'TERMINATED','ERROR','CANCELLED'"')")" = 0 ]' \
    && ok "cluster empty before the burst" || bad "kernels left before the burst"
mkdir -p "$T/burst"
post_one() {
    local n=$1 args=(-s -o /dev/null -w '%{http_code}' -X POST --max-time 30)
    local body="{\"name\": \"burst-$n\", \"image\": \"busybox\", \"enqueueOnly\": true, \"config\": {\"resources\": {\"cpu\": \"0.02\", \"mem\": \"64m\"}}}"
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" POST /session "$HP" "$USER_AK" "$USER_SK")
    curl "${args[@]}" --data-binary "$body" "$EP/session" >"$T/burst/$n" 2>/dev/null
}
( for n in $(seq 1 200); do post_one "$n" & [ $((n % 8)) = 0 ] && wait; done; wait ) &
BURST=$!
until_ok 120 eval '[ "$(sql "SELECT count(*) FROM sessions WHERE name LIKE '"'burst-%'"' AND status <> '"'PENDING'"'")" -ge 30 ]' || bad "burst never got scheduled"
kill -9 "$(cat "$D/run/manager.pid")"
PLACED_AT_KILL=$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'burst-%' AND status <> 'PENDING'")
ok "manager killed -9 with $PLACED_AT_KILL burst sessions placed"
wait "$BURST"
"$BAIC" up --no-agent --data-dir "$D" >"$T/up3.log" 2>&1 || { cat "$T/up3.log"; bad "manager restart"; }
# Sessions whose POST was answered, and the others posted again once the manager is back.
ANSWERED=$(grep -l -E '^20[01]$' "$T"/burst/* | wc -l)
# (waits name their pids: a bare wait would wait for the agent too)
pids=()
for f in "$T"/burst/*; do
    grep -q -E '^20[01]$' "$f" && continue
    post_one "$(basename "$f")" & pids+=($!)
    [ ${#pids[@]} -ge 8 ] && { wait "${pids[@]}"; pids=(); }
done
[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
TOTAL=$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'burst-%'")
[ "$(grep -L -E '^20[01]$' "$T"/burst/* | wc -l)" = 0 ] && [ "$TOTAL" = 200 ] && ok "200 burst sessions exist ($ANSWERED answered before the kill)" || bad "burst sessions: $TOTAL"
settled() { [ "$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'burst-%' AND status = 'RUNNING'")" = "$FIT" ] &&
            [ "$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'burst-%' AND status NOT IN ('RUNNING','PENDING')")" = 0 ]; }
until_ok 120 settled && ok "$FIT RUNNING (all that fit on $NCPU cores), the rest PENDING" \
    || bad "after restart: $(sql "SELECT status, status_info, count(*) FROM sessions WHERE name LIKE 'burst-%' GROUP BY 1, 2")"
[ "$(sql "SELECT count(*) FROM sessions s WHERE s.name LIKE 'burst-%' AND (SELECT count(*) FROM kernels k WHERE k.session_id = s.id) <> 1")" = 0 ] \
    && ok "every burst session has exactly one kernel" || bad "a burst session with != 1 kernels"
[ "$(sql "SELECT count(*) FROM sessions s JOIN kernels k ON k.session_id = s.id WHERE s.name LIKE 'burst-%' AND s.status = 'PENDING' AND (k.agent IS NOT NULL OR k.status <> 'PENDING')")" = 0 ] \
    && ok "pending sessions hold nothing" || bad "a pending session holds an agent"
OVER=$(sql "SELECT count(*) FROM agents a, jsonb_each_text(a.available_slots) av WHERE av.value ~ '^[0-9.]+\$' AND
    (SELECT COALESCE(sum((k.occupied_slots->>av.key)::numeric), 0) FROM kernels k WHERE k.agent = a.id AND k.status IN
     ('SCHEDULED','PREPARING','PULLING','PREPARED','CREATING','RUNNING','RESTARTING','RUNNING_DEGRADED','TERMINATING')) > av.value::numeric")
[ "$OVER" = 0 ] && ok "no slot over-booked on any agent" || bad "$OVER slots over-booked"
DBK=$(sql "SELECT id FROM kernels WHERE agent = 'i-test' AND status = 'RUNNING' ORDER BY id::text")
[ "$(agent_kernels)" = "$DBK" ] && [ "$(printf '%s\n' "$DBK" | wc -l)" = "$FIT" ] \
    && ok "the agent runs exactly the $FIT kernels the database places" || bad "agent vs db kernels differ"
reconcile --dry-run
[ $REC_RC = 0 ] && ! kinds | grep -q -E 'missing|orphan|session' && ok "reconcile after the crash: no missing, orphan or session drift" || bad "after crash: $REC"

[ $failures = 0 ] && { echo "all passed"; exit 0; }
echo "$failures failed"; kill -CONT "$MPID" 2>/dev/null; tail -30 "$D/log/manager.log"; exit 1
