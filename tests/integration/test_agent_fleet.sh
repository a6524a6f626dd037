#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# baic-agent-fleet (docs/agent-fleet.md): N agents with distinct ids and addresses heartbeat on
# the agent stream; their RPCs check the cluster HMAC, refuse bad bodies, keep slot books
# (409 beyond capacity, nothing taken), publish kernel events, and destroy known kernels only.
#
#   tests/integration/test_agent_fleet.sh BUILD_DIR      Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
FLEET=$BUILD/core/agent-fleet/baic-agent-fleet
PY=/usr/bin/python3
skip() { echo "SKIP: $*"; exit 77; }
[ -x "$FLEET" ] || skip "baic-agent-fleet not built"
for t in redis-server redis-cli curl /usr/bin/python3; do command -v $t >/dev/null || skip "$t not installed"; done
. "$SRC/tests/integration/services.sh"
T=$(mktemp -d) || exit 1
FPID=
cleanup() { [ -n "$FPID" ] && kill "$FPID" 2>/dev/null; stop_redis "$T/redis"; rm -rf "$T"; }
trap cleanup EXIT
failures=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }

read -r RH RP <<<"$(start_redis "$T/redis")" || exit 1
SECRET=fleet-test-secret-0123456789
BAIC_CLUSTER_SECRET=short "$FLEET" -n 2 --redis "$RH:$RP" >/dev/null 2>&1 && bad "a short secret is refused" || ok "a short secret is refused"
"$FLEET" -n 0 --redis "$RH:$RP" >/dev/null 2>&1 && bad "-n 0 is refused" || ok "-n 0 is refused"
BAIC_CLUSTER_SECRET=$SECRET "$FLEET" -n 3 --redis "$RH:$RP" --heartbeat-ms 200 --slots cpu=2,mem=1g \
    --id-prefix t-fleet- >"$T/out" 2>"$T/log" &
FPID=$!
for i in $(seq 1 100); do grep -q '^ready 3' "$T/out" && break; sleep 0.1; done
sleep 0.6

# Heartbeats: three agents, three addresses.
redis-cli -p "$RP" XRANGE baic:agent-events - + >"$T/stream"
"$PY" - "$T/stream" >"$T/agents" <<'EOF' 2>/dev/null
import json, sys
lines = open(sys.argv[1]).read().split("\n")
seen = {}
for i, l in enumerate(lines):
    if l == "body" and i + 1 < len(lines):
        try:
            b = json.loads(lines[i + 1])
        except ValueError:
            continue
        if "addr" in b:
            seen[b["agent_id"]] = (b["addr"], b["available_slots"], b["slot_types"].get("mem"))
for k in sorted(seen):
    print(k, *seen[k])
EOF
n_ids=$(wc -l <"$T/agents"); n_addr=$(awk '{ print $2 }' "$T/agents" | sort -u | wc -l)
[ "$n_ids" = 3 ] && [ "$n_addr" = 3 ] && ok "3 agents heartbeat with 3 addresses" || bad "heartbeats: $(cat "$T/agents")"
grep -q "t-fleet-00000 .*'cpu': '2'.*'mem': '1073741824'.* bytes" "$T/agents" && ok "heartbeat slots and types" || bad "slots: $(head -1 "$T/agents")"
ADDR=$(awk '$1 == "t-fleet-00001" { print $2 }' "$T/agents")

# signed METHOD PATH [BODY] -> status in $STATUS, body in $BODY
signed() {
    local method=$1 path=$2 body=${3:-} date mac
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    mac=$("$PY" -c 'import hashlib, hmac, sys
m, p, d, s, b = sys.argv[1:6]
msg = "\n".join([m, p, d, hashlib.sha256(b.encode()).hexdigest()])
print(hmac.new(s.encode(), msg.encode(), hashlib.sha256).hexdigest())' "$method" "$path" "$date" "$SECRET" "$body")
    STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -X "$method" -H "Date: $date" -H "X-BaiC-Cluster-Auth: $mac" \
        ${body:+--data-binary "$body"} "$ADDR$path")
    BODY=$(cat "$T/body")
}
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$ADDR/rpc/health")
[ "$STATUS" = 401 ] && ok "unsigned RPC: 401" || bad "unsigned RPC: $STATUS"
signed GET /rpc/health
[ "$STATUS" = 200 ] && printf '%s' "$BODY" | grep -q '"t-fleet-00001"' && ok "signed health names the agent" || bad "health: $STATUS $BODY"
signed POST /rpc/create_kernels '{"session_id": '
[ "$STATUS" = 400 ] && ok "malformed JSON: 400" || bad "malformed: $STATUS $BODY"
signed POST /rpc/create_kernels '{"session_id": "s", "kernels": [{"kernel_id": 7}]}'
[ "$STATUS" = 400 ] && ok "wrong kernel_id type: 400" || bad "wrong type: $STATUS $BODY"
K1=11111111-1111-4111-8111-111111111111 K2=22222222-2222-4222-8222-222222222222
S1=33333333-3333-4333-8333-333333333333
signed POST /rpc/create_kernels "{\"session_id\": \"$S1\", \"kernels\": [{\"kernel_id\": \"$K1\", \"resource_slots\": {\"cpu\": \"1.5\", \"mem\": \"536870912\"}}]}"
[ "$STATUS" = 202 ] && printf '%s' "$BODY" | grep -q "$K1" && ok "create_kernels: 202 accepted" || bad "create: $STATUS $BODY"
signed POST /rpc/create_kernels "{\"session_id\": \"$S1\", \"kernels\": [{\"kernel_id\": \"$K1\", \"resource_slots\": {\"cpu\": \"0.1\"}}]}"
[ "$STATUS" = 409 ] && ok "same kernel again: 409" || bad "duplicate: $STATUS $BODY"
signed POST /rpc/create_kernels "{\"session_id\": \"$S1\", \"kernels\": [{\"kernel_id\": \"$K2\", \"resource_slots\": {\"cpu\": \"1\"}}]}"
[ "$STATUS" = 409 ] && printf '%s' "$BODY" | grep -q instance-not-available && ok "beyond capacity (1.5 + 1 > 2 cpu): 409" || bad "capacity: $STATUS $BODY"
signed POST /rpc/create_kernels "{\"session_id\": \"$S1\", \"kernels\": [{\"kernel_id\": \"$K2\", \"resource_slots\": {\"cpu\": \"0.5\", \"mem\": \"512m\"}}]}"
[ "$STATUS" = 202 ] && ok "what is left fits: 202 (nothing was taken by the refusal)" || bad "fit: $STATUS $BODY"
signed GET /rpc/kernels
[ "$(printf '%s' "$BODY" | grep -o '"kernel_id"' | wc -l)" = 2 ] && ok "two kernels listed" || bad "kernels: $BODY"
sleep 0.3
redis-cli -p "$RP" XRANGE baic:agent-events - + | grep -c "\"kernel_id\":\"$K1\"" >"$T/n"
[ "$(cat "$T/n")" -ge 2 ] && ok "kernel_creating and kernel_started published" || bad "kernel events for K1: $(cat "$T/n")"
signed POST /rpc/destroy_kernel '{"kernel_id": "44444444-4444-4444-8444-444444444444", "reason": "user-requested"}'
[ "$STATUS" = 404 ] && ok "destroy of an unknown kernel: 404" || bad "destroy unknown: $STATUS $BODY"
signed POST /rpc/destroy_kernel "{\"kernel_id\": \"$K1\", \"reason\": \"user-requested\"}"
[ "$STATUS" = 202 ] && ok "destroy: 202" || bad "destroy: $STATUS $BODY"
sleep 0.3
redis-cli -p "$RP" XRANGE baic:agent-events - + | grep -A2 kernel_terminated | grep -q "$K1" && ok "kernel_terminated published" || bad "no kernel_terminated"
signed POST /rpc/create_kernels "{\"session_id\": \"$S1\", \"kernels\": [{\"kernel_id\": \"$K1\", \"resource_slots\": {\"cpu\": \"1.5\"}}]}"
[ "$STATUS" = 202 ] && ok "freed slots are usable again" || bad "after destroy: $STATUS $BODY"

[ "$failures" = 0 ] && { echo "PASS"; exit 0; }
echo "$failures failure(s)"; exit 1
