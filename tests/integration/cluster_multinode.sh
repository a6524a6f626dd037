# SPDX-License-Identifier: Apache-2.0
# Sourced by test_cluster.sh after its single-node part (uses its call/ok/bad/field helpers).
# Two more agents, each in its own network namespace (veth to a bridge in the root
# namespace, 10.231.77.0/24); the baic-up agent is drained so a multi-node cluster of two
# lands one kernel per namespaced agent, and its kernels reach each other by hostname.
# Redis and the image registry listen on the root namespace's loopback: a small forwarder
# (tests/integration/ns_forward.py) listens on the same ports inside each agent namespace.
MN=bmn$((RANDOM % 10000)) BRN=bmnbr$((RANDOM % 1000))
REDIS_PORT=$(sed -n '/^\[redis\]/,/^\[/s/^port = \([0-9]*\)/\1/p' "$D/etc/agent.toml")
REG_PORT=$(grep -o 'registry=127.0.0.1:[0-9]*' "$D/log/manager.log" | head -1 | cut -d: -f2)
mn_cleanup() {
    for i in 1 2; do
        [ -f "$T/mn$i/agent.pid" ] && kill "$(cat "$T/mn$i/agent.pid")" 2>/dev/null
    done
    sleep 1
    [ -n "${FWD_PID:-}" ] && kill "$FWD_PID" 2>/dev/null
    for i in 1 2; do
        for c in $(crun --root "/run/$MN-$i" list 2>/dev/null | awk '/baic-/{print $1}'); do
            crun --root "/run/$MN-$i" delete -f "$c" >/dev/null 2>&1
        done
        ip netns del "${MN}a$i" 2>/dev/null
    done
    ip link del "$BRN" 2>/dev/null
}
trap 'mn_cleanup; cleanup' EXIT
ip link add "$BRN" type bridge && ip addr add 10.231.77.1/24 dev "$BRN" && ip link set "$BRN" up \
    || { bad "cannot build the test bridge"; return; }
for i in 1 2; do
    ns=${MN}a$i
    ip netns add "$ns" && ip link add "${MN}h$i" type veth peer name "${MN}p$i" \
        && ip link set "${MN}h$i" master "$BRN" up && ip link set "${MN}p$i" netns "$ns" \
        && ip -n "$ns" link set "${MN}p$i" name eth0 && ip -n "$ns" addr add "10.231.77.$((i + 1))/24" dev eth0 \
        && ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up \
        || { bad "cannot build namespace $ns"; return; }
done
ok "two agent namespaces on bridge $BRN (10.231.77.2, 10.231.77.3)"
"$PY" "$SRC/tests/integration/ns_forward.py" "$REDIS_PORT,$REG_PORT" "/run/netns/${MN}a1" "/run/netns/${MN}a2" \
    >"$T/fwd.log" 2>&1 &
FWD_PID=$!
disown $FWD_PID
for i in 1 2; do
    mkdir -p "$T/mn$i"
    sed -e "s|^listen = .*|listen = \"10.231.77.$((i + 1)):7100\"\nid = \"$MN-node$i\"|" \
        -e "s|^data_dir = .*|data_dir = \"$T/mn$i/data\"|" -e "s|^state_dir = .*|state_dir = \"$T/mn$i/oci\"|" \
        -e "s|^runtime_root = .*|runtime_root = \"/run/$MN-$i\"|" "$D/etc/agent.toml" >"$T/mn$i/agent.toml"
    # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup tree.
    nsenter --net="/run/netns/${MN}a$i" "$BUILD/core/agent/baic-agent" -c "$T/mn$i/agent.toml" >"$T/mn$i/agent.log" 2>&1 &
    echo $! >"$T/mn$i/agent.pid"
    disown $!
done
# The baic-up agent takes no new kernels.
call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/agents
for a in $(printf '%s' "$BODY" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d=d.get("items", d) if isinstance(d, dict) else d; print(" ".join(x["id"] for x in d))'); do
    case $a in "$MN"-*) ;; *) call "$ADMIN_AK" "$ADMIN_SK" POST "/admin/rest/agents/$a/drain" '{}';; esac
done
both_alive() {
    call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/agents
    [ "$(printf '%s' "$BODY" | grep -o "\"$MN-node[12]\"" | sort -u | wc -l)" = 2 ] && \
        printf '%s' "$BODY" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d=d.get("items", d) if isinstance(d, dict) else d
sys.exit(0 if sum(1 for x in d if x["id"].startswith(sys.argv[1]) and x["status"] == "ALIVE") == 2 else 1)' "$MN-node"
}
until_ok 30 both_alive && ok "both namespaced agents ALIVE" || { bad "agents: $BODY $(tail -n 5 "$T"/mn*/agent.log)"; return; }

# One CPU pair per agent: a kernel of 2 CPUs can only go one per agent.
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-multi", "clusterSize": 2,
    "clusterMode": "multi-node", "maxWaitSeconds": 120, "config": {"resources": {"cpu": "2", "mem": "64m"}}}'
[ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = RUNNING ] \
    && ok "multi-node cluster of 2 -> 201 RUNNING" || { bad "multi create: $STATUS $BODY $(tail -n 5 "$T"/mn*/agent.log)"; return; }
K1=$(crun --root "/run/$MN-1" list 2>/dev/null | awk '/baic-/{print $1}')
K2=$(crun --root "/run/$MN-2" list 2>/dev/null | awk '/baic-/{print $1}')
[ -n "$K1" ] && [ -n "$K2" ] && ok "one kernel per agent" || { bad "kernels: '$K1' '$K2'"; return; }
[ "$(sql "SELECT cardinality(s.agent_ids) = 2 AND s.agent_ids::text[] = (SELECT array_agg(DISTINCT k.agent::text
      ORDER BY k.agent::text) FROM kernels k WHERE k.session_id = s.id) FROM sessions s WHERE s.name = 'cl-multi'")" = t ] \
    && ok "the session's agent_ids are its kernels' two agents" \
    || bad "agent_ids: $(sql "SELECT agent_ids FROM sessions WHERE name = 'cl-multi'")"
mctr() { crun --root "/run/$MN-$1" exec "$2" /bin/sh -c "$3" 2>&1; }
H1=$(mctr 1 "$K1" hostname) H2=$(mctr 2 "$K2" hostname)
[ "$(echo "$H1 $H2" | tr ' ' '\n' | sort | tr '\n' ' ')" = "main1 sub1 " ] && ok "hostnames $H1 and $H2" || bad "hostnames: $H1 $H2"
crun --root "/run/$MN-1" exec -d "$K1" /bin/sh -c "echo hello-from-$H1 | nc -l -p 7000" >/dev/null 2>&1
crun --root "/run/$MN-2" exec -d "$K2" /bin/sh -c "echo hello-from-$H2 | nc -l -p 7000" >/dev/null 2>&1
mgot() { [ "$(mctr "$1" "$2" "nc -w 3 $3 7000 </dev/null")" = "hello-from-$3" ]; }
until_ok 15 mgot 2 "$K2" "$H1" && ok "$H2 (agent 2) -> $H1:7000 (agent 1) by hostname" \
    || bad "$H2 -> $H1: $(mctr 2 "$K2" "cat /etc/hosts; ip addr; ip route; nc -w 3 $H1 7000 </dev/null")"
until_ok 15 mgot 1 "$K1" "$H2" && ok "$H1 (agent 1) -> $H2:7000 (agent 2) by hostname" \
    || bad "$H1 -> $H2: $(mctr 1 "$K1" "nc -w 3 $H2 7000 </dev/null")"
[ "$(mctr 1 "$K1" 'echo $BACKENDAI_CLUSTER_HOSTS/$BACKENDAI_CLUSTER_SIZE')" = "main1,sub1/2" ] \
    && ok "BACKENDAI_CLUSTER_HOSTS lists both across agents" || bad "env: $(mctr 1 "$K1" 'env | grep CLUSTER')"
call "$USER_AK" "$USER_SK" DELETE /session/cl-multi
until_ok 30 session_status cl-multi TERMINATED && ok "cl-multi TERMINATED" || bad "cl-multi: $BODY"

# A start failure of one member: agent 2 dies (still ALIVE in the books), the cluster is
# placed over both, agent 2 cannot take its kernel, and agent 1's kernel is destroyed.
kill -9 "$(cat "$T/mn2/agent.pid")"; rm -f "$T/mn2/agent.pid"
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-fail", "clusterSize": 2,
    "clusterMode": "multi-node", "maxWaitSeconds": 60, "config": {"resources": {"cpu": "2", "mem": "64m"}}}'
until_ok 40 session_status cl-fail ERROR && ok "one member cannot start: the session ends ERROR ($(field "$BODY" "['statusInfo']"))" \
    || bad "cl-fail: $BODY"
nothing1() { [ -z "$(crun --root "/run/$MN-1" list 2>/dev/null | awk '/baic-/{print $1}')" ]; }
until_ok 20 nothing1 && ok "the member on agent 1 was destroyed" || bad "left on agent 1: $(crun --root "/run/$MN-1" list)"
mn_cleanup
trap cleanup EXIT
