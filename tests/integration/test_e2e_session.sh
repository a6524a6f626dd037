#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The whole system as `baic up` starts it: a signed POST /session runs a real busybox container
# on runtime/oci with the requested limits, and DELETE leaves nothing of it behind.
#
#   tests/integration/test_e2e_session.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip (not root, or crun/skopeo/umoci/docker-registry missing).
# Busybox only (BAIC_NO_PYTHON=1) to keep it fast; the image cache is $BAIC_E2E_CACHE when set.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root"
for t in crun skopeo umoci docker-registry redis-server curl python3 openssl; do
    command -v $t >/dev/null || skip "$t not installed"
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] && [ -x "$BUILD/core/agent/baic-agent" ] \
    || skip "baic, baic-manager or baic-agent not built"
[ -f "$BUILD/plugins-out/runtime_oci.so" ] || skip "runtime/oci not built"
PY=/usr/bin/python3

T=$(mktemp -d /tmp/baic-e2e.XXXXXX) && chmod 711 "$T" || exit 1
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

. "$D/user.env"
USER_AK=$BACKEND_ACCESS_KEY USER_SK=$BACKEND_SECRET_KEY
EP=$BACKEND_ENDPOINT HP=${BACKEND_ENDPOINT#http://}
. "$D/admin.env"
ADMIN_AK=$BACKEND_ACCESS_KEY ADMIN_SK=$BACKEND_SECRET_KEY
ROOT=$(sed -n 's/^runtime_root = "\(.*\)"/\1/p' "$D/etc/agent.toml")
AGENT_DATA=$D/agent

session_status() { call "$USER_AK" "$USER_SK" GET "/session/$1"; [ "$(field "$BODY" "['status']")" = "$2" ]; }
# Every trace a kernel leaves: crun state, overlay mounts, bundle, record, cgroup dirs.
container_listed() { crun --root "$ROOT" list 2>/dev/null | grep -q "baic-$1"; }
mounted() { grep -q "$1" /proc/mounts; }
cgroups_of() { find /sys/fs/cgroup -maxdepth 4 -type d -name "baic-$1" 2>/dev/null; }

# --- create ---
call "$USER_AK" "$USER_SK" POST /session \
    '{"image": "busybox", "name": "e2e-1", "config": {"resources": {"cpu": "1", "mem": "128m"}}}'
[ "$STATUS" = 201 ] && [ "$(field "$BODY" "['status']")" = RUNNING ] \
    && ok "POST /session -> 201 RUNNING" || { bad "create: $STATUS $BODY"; tail -20 "$D/log/agent.log"; exit 1; }
call "$USER_AK" "$USER_SK" GET /session/e2e-1
[ "$STATUS" = 200 ] && [ "$(field "$BODY" "['status']")" = RUNNING ] && ok "GET /session/e2e-1 RUNNING" \
    || bad "GET: $STATUS $BODY"
KID=$(field "$BODY" "['containerId']")
[ -n "$KID" ] && [ "$KID" != None ] && ok "kernel $KID" || { bad "no containerId: $BODY"; exit 1; }

container_listed "$KID" && ok "crun lists the container running" || bad "crun list: $(crun --root "$ROOT" list)"
crun --root "$ROOT" state "baic-$KID" 2>/dev/null | grep -q '"status": "running"' \
    && ok "crun state: running" || bad "crun state: $(crun --root "$ROOT" state "baic-$KID" 2>&1)"
mounted "$KID" && ok "overlay mounted for the kernel" || bad "no overlay mount for $KID"
[ -d "$AGENT_DATA/bundles/$KID" ] && ok "bundle dir exists" || bad "no bundle $AGENT_DATA/bundles/$KID"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    MEMFILE=$(find /sys/fs/cgroup -maxdepth 3 -path "*/baic-$KID/memory.max" | head -1)
else
    MEMFILE=$(find /sys/fs/cgroup/memory -maxdepth 3 -path "*/baic-$KID/memory.limit_in_bytes" | head -1)
fi
[ -n "$MEMFILE" ] && [ "$(cat "$MEMFILE")" = 134217728 ] \
    && ok "cgroup memory limit 128 MiB ($MEMFILE)" || bad "memory limit: ${MEMFILE:-none} $(cat "$MEMFILE" 2>/dev/null)"
"$PY" - "$AGENT_DATA/bundles/$KID/config.json" <<'EOF' && ok "config.json asks for 1 CPU" || bad "cpu limit in config.json"
import json, sys
cpu = json.load(open(sys.argv[1]))["linux"]["resources"]["cpu"]
sys.exit(0 if cpu["quota"] == cpu["period"] else 1)
EOF
crun --root "$ROOT" exec "baic-$KID" /bin/sh -c 'echo hi-from-$(hostname)' 2>/dev/null | grep -q hi-from \
    && ok "a command runs inside the container" || bad "crun exec failed"

# --- isolation between users ---
call "$ADMIN_AK" "$ADMIN_SK" GET /session/e2e-1
[ "$STATUS" = 404 ] && ok "another key's GET -> 404" || bad "other user GET: $STATUS $BODY"
call "$ADMIN_AK" "$ADMIN_SK" DELETE /session/e2e-1
[ "$STATUS" = 404 ] && ok "another key's DELETE -> 404" || bad "other user DELETE: $STATUS $BODY"
container_listed "$KID" && ok "the container survives the other key's DELETE" || bad "container gone"

# --- destroy ---
call "$USER_AK" "$USER_SK" DELETE /session/e2e-1
[ "$STATUS" = 200 ] && ok "DELETE -> 200" || bad "DELETE: $STATUS $BODY"
until_ok 20 session_status e2e-1 TERMINATED && ok "session TERMINATED" || bad "status: $BODY"
gone() { ! container_listed "$KID" && ! mounted "$KID" && [ ! -e "$AGENT_DATA/bundles/$KID" ] \
    && [ ! -e "$AGENT_DATA/kernels/$KID.json" ]; }
until_ok 10 gone && ok "no container, mount, bundle or record left" || {
    container_listed "$KID" && bad "container still listed"
    mounted "$KID" && bad "overlay still mounted"
    [ -e "$AGENT_DATA/bundles/$KID" ] && bad "bundle dir left"
    [ -e "$AGENT_DATA/kernels/$KID.json" ] && bad "kernel record left"
}
left=$(cgroups_of "$KID")
[ -z "$left" ] && ok "no cgroup left" || bad "cgroup dirs left: $(echo $left)"
call "$USER_AK" "$USER_SK" POST /resource/check-presets '{}'
[ "$(field "$BODY" "['keypair_using'].get('cpu', '0')")" = 0 ] && ok "occupancy back to 0" || bad "using: $BODY"

# --- idempotent up, then down ---
"$BAIC" up --data-dir "$D" >"$T/up2.log" 2>&1 && grep -q "agent: running" "$T/up2.log" \
    && ok "second up reuses the agent" || bad "second up: $(cat "$T/up2.log")"
APID=$(cat "$D/run/agent.pid")
"$BAIC" down --data-dir "$D" >"$T/down.log" 2>&1 && grep -q "stopped agent" "$T/down.log" \
    && grep -q "stopped registry" "$T/down.log" && ok "down stops agent and registry" || bad "down: $(cat "$T/down.log")"
# Its parent (`baic up`) is gone, so it may linger a moment as a zombie until reaped.
dead() { ! kill -0 "$APID" 2>/dev/null || grep -q '^State:.*Z' "/proc/$APID/status" 2>/dev/null; }
until_ok 5 dead && ok "agent gone after down" || bad "agent still running after down"
grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$D"/log/*.log && bad "sanitizer report in logs"

[ $failures = 0 ] && echo PASS || echo "$failures failure(s)"
[ $failures = 0 ]
