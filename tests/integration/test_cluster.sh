#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Cluster sessions on runtime/oci: a single-node cluster of two busybox kernels on one agent
# (hostnames, env, SSH keypair, TCP between them), all-or-none placement, a member ending
# takes the others along; then a multi-node cluster over two agents, each in its own network
# namespace joined by veth and a bridge, whose kernels reach each other by hostname.
#
#   tests/integration/test_cluster.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip (not root, or crun/skopeo/umoci/docker-registry missing).
# Busybox only (BAIC_NO_PYTHON=1) to keep it fast; the image cache is $BAIC_E2E_CACHE when set.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root"
for t in crun skopeo umoci docker-registry redis-server curl python3 openssl ip nsenter; do
    command -v $t >/dev/null || skip "$t not installed"
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] && [ -x "$BUILD/core/agent/baic-agent" ] \
    || skip "baic, baic-manager or baic-agent not built"
[ -f "$BUILD/plugins-out/runtime_oci.so" ] || skip "runtime/oci not built"
PY=/usr/bin/python3

T=$(mktemp -d /tmp/baic-cluster.XXXXXX) && chmod 711 "$T" || exit 1
D=$T/data
failures=0
. "$SRC/tests/integration/lib.sh"
cleanup() {
    stack_down "$D"
    if [ $failures = 0 ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

# A shared image cache keeps the busybox build out of every run; the data dir's own
# cache/ is where `baic up` looks, so it becomes a link to it.
CACHE=${BAIC_E2E_CACHE:-/var/tmp/baic-e2e-cache}
mkdir -p "$CACHE" "$D" && ln -s "$CACHE" "$D/cache"

export BAIC_NO_PYTHON=1
if ! "$BAIC" up --data-dir "$D" >"$T/up.log" 2>&1; then
    cat "$T/up.log"; tail -20 "$D"/log/*.log; failures=1; exit 1
fi
grep -q "agent: started" "$T/up.log" && ok "baic up started an agent" || { bad "no agent: $(cat "$T/up.log")"; exit 1; }
grep -q "aliases busybox" "$T/up.log" && ok "baic up says the busybox alias exists" || bad "up.log: $(cat "$T/up.log")"
SECRET=$(cat "$D/etc/cluster_secret")
[ "$(stat -c %a "$D/etc/cluster_secret")" = 600 ] && ok "cluster secret is 0600" || bad "cluster secret mode"
grep -qF "$SECRET" "$T/up.log" "$D"/log/*.log && bad "cluster secret printed or logged" || ok "cluster secret not printed"

stack_env "$D"
ROOT=$(sed -n 's/^runtime_root = "\(.*\)"/\1/p' "$D/etc/agent.toml")
AGENT_DATA=$D/agent

session_status() { call "$USER_AK" "$USER_SK" GET "/session/$1"; [ "$(field "$BODY" "['status']")" = "$2" ]; }
# Every trace a kernel leaves: crun state, overlay mounts, bundle, record, cgroup dirs.
container_listed() { crun --root "$ROOT" list 2>/dev/null | grep -q "baic-$1"; }
mounted() { grep -q "$1" /proc/mounts; }
cgroups_of() { find /sys/fs/cgroup -maxdepth 4 -type d -name "baic-$1" 2>/dev/null; }

ctr() { crun --root "$ROOT" exec "baic-$1" /bin/sh -c "$2" 2>&1; }
# The kernels of a session, as "id hostname" lines (the containers say who they are).
members() {
    local id
    for id in $(crun --root "$ROOT" list 2>/dev/null | awk '/baic-/{sub("baic-","",$1); print $1}'); do
        [ "$(ctr "$id" 'echo $BACKENDAI_SESSION_NAME')" = "$1" ] && echo "$id $(ctr "$id" hostname)"
    done
}

# Cluster sessions need a policy that allows more than one container.
call "$ADMIN_AK" "$ADMIN_SK" PATCH /admin/rest/keypair-resource-policies/default '{"max_containers_per_session": 4}'
[ "$STATUS" = 200 ] && ok "policy: 4 containers per session" || bad "policy PATCH: $STATUS $BODY"

# --- bad input ---
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-bad", "clusterSize": 0}'
[ "$STATUS" = 400 ] && ok "clusterSize 0 -> 400" || bad "clusterSize 0: $STATUS $BODY"
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-bad", "clusterSize": "2"}'
[ "$STATUS" = 400 ] && ok "clusterSize as a string -> 400" || bad "clusterSize string: $STATUS $BODY"
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-bad", "clusterSize": 2, "clusterMode": "mesh"}'
[ "$STATUS" = 400 ] && ok "clusterMode mesh -> 400" || bad "clusterMode: $STATUS $BODY"
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-bad", "clusterSize": 100000}'
[ "$STATUS" = 400 ] && ok "clusterSize 100000 -> 400" || bad "clusterSize huge: $STATUS $BODY"

# --- single-node: two kernels on one agent ---
call "$USER_AK" "$USER_SK" POST /session '{"image": "busybox", "name": "cl-1", "clusterSize": 2,
    "clusterMode": "single-node", "config": {"resources": {"cpu": "1", "mem": "64m"}}}'
[ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = RUNNING ] \
    && ok "single-node cluster of 2 -> 201 RUNNING" || { bad "create: $STATUS $BODY"; tail -30 "$D/log/agent.log"; exit 1; }
M=$(members cl-1)
MAIN=$(echo "$M" | awk '$2=="main1"{print $1}') SUB=$(echo "$M" | awk '$2=="sub1"{print $1}')
[ -n "$MAIN" ] && [ -n "$SUB" ] && ok "two containers: main1 $MAIN, sub1 $SUB" || { bad "members: $M"; exit 1; }
ENVS=$(ctr "$SUB" 'env | grep ^BACKENDAI_CLUSTER_ | sort | tr "\n" " "')
[ "$ENVS" = "BACKENDAI_CLUSTER_HOST=sub1 BACKENDAI_CLUSTER_HOSTS=main1,sub1 BACKENDAI_CLUSTER_IDX=1 BACKENDAI_CLUSTER_LOCAL_RANK=1 BACKENDAI_CLUSTER_REPLICAS=main:1,sub:1 BACKENDAI_CLUSTER_ROLE=sub BACKENDAI_CLUSTER_SIZE=2 " ] \
    && ok "sub1's BACKENDAI_CLUSTER_* env" || bad "sub1 env: $ENVS"
[ "$(ctr "$MAIN" 'echo $BACKENDAI_CLUSTER_ROLE/$BACKENDAI_CLUSTER_IDX/$BACKENDAI_CLUSTER_HOST')" = main/0/main1 ] \
    && ok "main1's role, index and host" || bad "main1 env: $(ctr "$MAIN" 'env | grep CLUSTER')"
ctr "$SUB" 'grep -w main1 /etc/hosts' | grep -q '^100\.' && ok "sub1's /etc/hosts names main1" \
    || bad "sub1 /etc/hosts: $(ctr "$SUB" 'cat /etc/hosts')"
# TCP both ways, by hostname.
crun --root "$ROOT" exec -d "baic-$MAIN" /bin/sh -c 'echo hello-from-main1 | nc -l -p 7000' >/dev/null 2>&1
crun --root "$ROOT" exec -d "baic-$SUB" /bin/sh -c 'echo hello-from-sub1 | nc -l -p 7001' >/dev/null 2>&1
got() { [ "$(ctr "$1" "nc -w 3 $2 $3 </dev/null")" = "$4" ]; }
until_ok 10 got "$SUB" main1 7000 hello-from-main1 && ok "sub1 -> main1:7000 by hostname" \
    || bad "sub1 -> main1: $(ctr "$SUB" 'nc -w 3 main1 7000 </dev/null; ip addr; ip route')"
until_ok 10 got "$MAIN" sub1 7001 hello-from-sub1 && ok "main1 -> sub1:7001 by hostname" \
    || bad "main1 -> sub1: $(ctr "$MAIN" 'nc -w 3 sub1 7001 </dev/null')"
# The session's SSH keypair: the same in both, and a valid OpenSSH key.
PUB1=$(ctr "$MAIN" 'cat /home/work/.ssh/id_ed25519.pub') PUB2=$(ctr "$SUB" 'cat /home/work/.ssh/authorized_keys')
[ -n "$PUB1" ] && [ "$PUB1" = "$PUB2" ] && ok "main1's public key is sub1's authorized key" || bad "keys: '$PUB1' '$PUB2'"
ctr "$SUB" 'cat /home/work/.ssh/id_ed25519' >"$T/key" && chmod 600 "$T/key"
if command -v ssh-keygen >/dev/null; then
    [ "$(ssh-keygen -y -f "$T/key" 2>&1 | cut -d' ' -f1-2)" = "$(echo "$PUB1" | cut -d' ' -f1-2)" ] \
        && ok "ssh-keygen reads the private key and derives the public one" || bad "ssh-keygen: $(ssh-keygen -y -f "$T/key" 2>&1)"
fi
# A member that ends takes the session along.
crun --root "$ROOT" kill "baic-$SUB" KILL 2>/dev/null
until_ok 30 session_status cl-1 TERMINATED && ok "sub1 killed: the session ends" || bad "after kill: $BODY"
gone2() { ! container_listed "$MAIN" && ! container_listed "$SUB"; }
until_ok 20 gone2 && ok "main1 destroyed along with sub1" || bad "containers left: $(crun --root "$ROOT" list)"
NETLEFT=$(ip -br link | grep -E "^(bc|vk)" ; ip netns list | grep -E "baic-($MAIN|$SUB)")
[ -z "$NETLEFT" ] && ok "no bridge, veth or netns left" || bad "network left: $NETLEFT"

# --- all or none: a cluster whose kernels do not all fit waits, none placed ---
call "$USER_AK" "$USER_SK" POST /session "{\"image\": \"busybox\", \"name\": \"cl-big\", \"clusterSize\": 3,
    \"enqueueOnly\": true, \"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"64m\"}}}"
[ "$STATUS" = 201 ] && ok "cluster of 3 x 1 CPU enqueued (the agent has 2)" || bad "enqueue: $STATUS $BODY"
sleep 4
call "$USER_AK" "$USER_SK" GET /session/cl-big
[ "$(field "$BODY" "['status']")" = PENDING ] && ok "it stays PENDING" || bad "cl-big: $BODY"
[ -z "$(members cl-big)" ] && ok "no kernel of it started" || bad "kernels started: $(members cl-big)"
call "$USER_AK" "$USER_SK" GET /session/cl-big
case $BODY in *no-available-instances*|*enough*) ok "with a reason: $(field "$BODY" "['statusInfo']")";; *) bad "no reason: $BODY";; esac
call "$USER_AK" "$USER_SK" DELETE /session/cl-big
[ "$STATUS" = 200 ] && ok "DELETE of the pending cluster" || bad "DELETE cl-big: $STATUS $BODY"
# Two of the same kernels fit: the cluster of three was refused as a whole.
call "$USER_AK" "$USER_SK" POST /session "{\"image\": \"busybox\", \"name\": \"cl-two\", \"clusterSize\": 2,
    \"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"64m\"}}}"
[ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = RUNNING ] && ok "a cluster of 2 x 1 CPU runs" || bad "cl-two: $STATUS $BODY"
call "$USER_AK" "$USER_SK" DELETE /session/cl-two
until_ok 20 session_status cl-two TERMINATED && ok "cl-two TERMINATED" || bad "cl-two: $BODY"

. "$SRC/tests/integration/cluster_multinode.sh"

grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$D"/log/*.log && bad "sanitizer report in logs"
[ $failures = 0 ] && echo PASS || echo "$failures failure(s)"
[ $failures = 0 ]
