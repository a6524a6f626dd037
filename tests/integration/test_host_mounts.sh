#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Host mounts (POST/DELETE /folders/_/mounts, POST /folders/_/umounts, GET /folders/_/mounts)
# against `baic up --no-agent` and a real baic-agent on runtime/dummy whose mount_prefix and
# fstab_path lie in the test's temporary directory: a tmpfs is mounted, listed, written to,
# put into the test fstab, refused twice, and taken away again; bad input is refused before
# any agent is asked; only ALIVE agents are asked. Needs root (mount(8)).
#
#   tests/integration/test_host_mounts.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "host mounts need root (mount(8))"
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] || skip "baic / baic-manager not built"
[ -x "$BUILD/core/agent/baic-agent" ] || skip "baic-agent not built"
[ -f "$BUILD/plugins-out/runtime_dummy.so" ] || skip "runtime/dummy not built"
[ -x /bin/mount ] && [ -x /bin/umount ] || skip "/bin/mount or /bin/umount missing"
command -v redis-server >/dev/null || skip "redis-server not installed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
for t in curl python3 psql openssl; do command -v $t >/dev/null || skip "$t not installed"; done
PY=$(command -v /usr/bin/python3 || command -v python3)

T=$(mktemp -d) && chmod 711 "$T" || exit 1
D=$T/data
PREFIX=$T/mnt
FSTAB=$T/fstab
failures=0
. "$SRC/tests/integration/lib.sh"
AGENT_PID=
# Every exit path takes away whatever is still mounted under the prefix (deepest first).
umount_all() {
    local m
    for m in $(awk -v p="$PREFIX/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r); do
        /bin/umount -l -- "$m" 2>/dev/null
    done
}
cleanup() {
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
    umount_all
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    umount_all
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# mount(8) may be refused even to root (a container without CAP_SYS_ADMIN): skip then.
mkdir -p "$T/probe" && /bin/mount -t tmpfs -o size=1m -- tmpfs "$T/probe" 2>"$T/probe.err" \
    || skip "cannot mount here: $(cat "$T/probe.err")"
/bin/umount -- "$T/probe"


# A manager port of its own (other tests may hold the default one), and a cluster secret.
MPORT=$(( (RANDOM % 12000) + 20000 ))
"$BAIC" up --no-agent --data-dir "$D" >"$T/up.log" 2>&1
if [ ! -f "$D/run/manager.pid" ] || ! kill -0 "$(cat "$D/run/manager.pid")" 2>/dev/null; then
    # the port was taken between writing manager.toml and starting: once more on MPORT
    [ -f "$D/etc/manager.toml" ] || { cat "$T/up.log"; exit 1; }
    sed -i "/^\[manager\]/,/^\[/s/^listen = .*/listen = \"127.0.0.1:$MPORT\"/" "$D/etc/manager.toml"
    "$BAIC" up --no-agent --data-dir "$D" >"$T/up.log" 2>&1 || { cat "$T/up.log"; tail -30 "$D"/log/*.log; exit 1; }
fi
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed -i "/^\[manager\]/,/^\[/s/^listen = .*/listen = \"127.0.0.1:$MPORT\"/" "$D/etc/manager.toml"
sed -i "/^\[manager\]/a cluster_secret = \"$SECRET\"" "$D/etc/manager.toml"
kill "$(cat "$D/run/manager.pid")"
for i in $(seq 1 100); do kill -0 "$(cat "$D/run/manager.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
"$BAIC" up --no-agent --data-dir "$D" >"$T/up2.log" 2>&1 || { cat "$T/up2.log"; tail -30 "$D"/log/manager.log; exit 1; }
stack_env "$D"

admin() { call "$ADMIN_AK" "$ADMIN_SK" "$@"; }
# py EXPR: EXPR evaluated with d = the last answer's JSON; prints the result
py() { printf '%s' "$BODY" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
agent_is() { [ "$(sql "SELECT status FROM agents WHERE id = 'i-hm'")" = "$1" ]; }
mounted() { awk -v p="$1" '$2 == p {f = 1} END {exit !f}' /proc/mounts; }
fstab_lines() { grep -c -- " $1 " "$FSTAB" 2>/dev/null || true; }

# --- with no agent at all: agents {} ---
admin GET /folders/_/mounts
expect 200 "" "GET mounts with no agent"
[ "$(py "d['agents']")" = "{}" ] && [ "$(py "d['manager']['success']")" = True ] \
    && ok "no ALIVE agent: agents {}" || bad "no-agent answer: $BODY"
admin POST /folders/_/mounts '{"name": "none", "fs_type": "tmpfs", "fs_location": "tmpfs"}'
expect 200 "" "POST mounts with no agent" && [ "$(py "d['agents']")" = "{}" ] \
    && ok "nothing asked, agents {}" || bad "no-agent mount answer: $BODY"

# --- a real agent on runtime/dummy, mounts in $T ---
AGENT_PORT=$(( (RANDOM % 12000) + 20000 ))
cat >"$T/agent.toml" <<TOML
[agent]
id = "i-hm"
listen = "127.0.0.1:$AGENT_PORT"
cluster_secret = "$SECRET"
scaling_group = "default"
data_dir = "$T/agent"
heartbeat_interval_ms = 1000
mount_prefix = "$PREFIX"
fstab_path = "$FSTAB"

[redis]
host = "127.0.0.1"
port = $REDIS_PORT

[plugins]
load = ["compute/cpu", "compute/mem", "runtime/dummy"]

[plugin."compute/mem"]
reserve = "256m"
TOML
# The configured fstab is a symbolic link: edits go to the file it names, the link stays.
printf '# test fstab\nproc /proc proc defaults 0 0\n' >"$T/fstab.real"
chmod 640 "$T/fstab.real"
ln -s "$T/fstab.real" "$FSTAB"
"$BUILD/core/agent/baic-agent" -c "$T/agent.toml" >"$T/agent.log" 2>&1 &
AGENT_PID=$!
until_ok 20 agent_is ALIVE && ok "agent registered ALIVE" || { bad "agent never registered"; cat "$T/agent.log"; exit 1; }
# A second agent row that is not ALIVE (its port answers nothing): never asked, never listed.
sql "INSERT INTO agents (id, status, addr, scaling_group) VALUES ('i-dead', 'LOST', 'http://127.0.0.1:9', 'default')" >/dev/null

TARGET=$PREFIX/data1
MOUNT='{"name": "data1", "fs_type": "tmpfs", "fs_location": "tmpfs", "options": "size=4m", "edit_fstab": true}'

# --- who may ---
call "$USER_AK" "$USER_SK" POST /folders/_/mounts "$MOUNT"
expect 403 "" "user may not mount"
call "$USER_AK" "$USER_SK" DELETE /folders/_/mounts '{"name": "data1"}'
expect 403 "" "user may not umount"
call "$USER_AK" "$USER_SK" POST /folders/_/umounts '{"name": "data1"}'
expect 403 "" "user may not umount (alias)"
call "$USER_AK" "$USER_SK" GET /folders/_/mounts
expect 403 "" "user may not list mounts"

# --- bad input: 400 before any agent is asked ---
bad_input() {
    local method=$1 path=$2 body=$3 what=$4
    admin "$method" "$path" "$body"
    expect 400 invalid-api-params "$what"
}
bad_input POST /folders/_/mounts '{"fs_type": "tmpfs", "fs_location": "tmpfs"}' "name missing"
bad_input POST /folders/_/mounts '{"name": 5, "fs_location": "tmpfs"}' "name not a string"
bad_input POST /folders/_/mounts '{"name": "", "fs_location": "tmpfs"}' "name empty"
bad_input POST /folders/_/mounts '{"name": "..", "fs_location": "tmpfs"}' "name .."
bad_input POST /folders/_/mounts '{"name": ".", "fs_location": "tmpfs"}' "name ."
bad_input POST /folders/_/mounts '{"name": "a/b", "fs_location": "tmpfs"}' "name with a slash"
bad_input POST /folders/_/mounts '{"name": "../../etc", "fs_location": "tmpfs"}' "name traversal"
bad_input POST /folders/_/mounts '{"name": "a b", "fs_location": "tmpfs"}' "name with a space"
bad_input POST /folders/_/mounts "{\"name\": \"$(printf 'x%.0s' $(seq 1 65))\", \"fs_location\": \"tmpfs\"}" "name of 65 characters"
bad_input POST /folders/_/mounts '{"name": "d", "fs_type": "tmpfs"}' "fs_location missing"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": ""}' "fs_location empty"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "-oremount"}' "fs_location starting with -"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "a b"}' "fs_location with a space"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "a\nb"}' "fs_location with a newline"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "fs_type": "TMPFS"}' "fs_type upper case"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "fs_type": "tmp fs"}' "fs_type with a space"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "fs_type": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}' "fs_type of 33 characters"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "fs_type": ["nfs"]}' "fs_type not a string"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "options": "size=4m ro"}' "options with a space"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "options": "size=4m\nro"}' "options with a newline"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "options": 4}' "options not a string"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "edit_fstab": "yes"}' "edit_fstab not a boolean"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "edit_fstab": 1}' "edit_fstab a number"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "fstab_path": "etc/fstab"}' "fstab_path relative"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "scaling_group": 3}' "scaling_group not a string"
bad_input POST /folders/_/mounts '{"name": "d", "fs_location"' "malformed JSON"
bad_input POST /folders/_/mounts '["d"]' "body not an object"
bad_input DELETE /folders/_/mounts '{}' "umount: name missing"
bad_input DELETE /folders/_/mounts '{"name": "../x"}' "umount: name traversal"
bad_input POST /folders/_/umounts '{"name": "d", "edit_fstab": "maybe"}' "umounts: edit_fstab not a boolean"
[ ! -e "$PREFIX/d" ] && ! grep -q "host_mount\|host_umount" "$T/agent.log" \
    && ok "no agent was asked for bad input" || bad "the agent acted on bad input: $(grep host_ "$T/agent.log")"
admin POST /folders/_/mounts '{"name": "d", "fs_location": "tmpfs", "fs_type": "tmpfs", "scaling_group": "no-such-group"}'
expect 404 object-not-found "unknown scaling_group"
admin DELETE /folders/_/mounts '{"name": "d", "scaling_group": "no-such-group"}'
expect 404 object-not-found "umount: unknown scaling_group"

# --- mount ---
admin POST /folders/_/mounts "$MOUNT"
expect 200 "" "mount tmpfs"
[ "$(py "d['agents']['i-hm']['success']")" = True ] && ok "agent success true" || bad "mount answer: $BODY"
[ "$(py "sorted(d['agents'])")" = "['i-hm']" ] && ok "only the ALIVE agent was asked (i-dead not listed)" \
    || bad "agents asked: $(py "sorted(d['agents'])")"
[ "$(py "d['manager']['success'] and d['storage-proxy']['success'] and bool(d['manager']['message']) and bool(d['storage-proxy']['message'])")" = True ] \
    && ok "manager and storage-proxy parts" || bad "manager/storage-proxy: $BODY"
[ "$(py "len([m for m in d['agents']['i-hm']['mounts'] if m[0] == '$TARGET' and m[1] == 'tmpfs' and m[2] == 'tmpfs'])")" = 1 ] \
    && ok "the answer lists $TARGET" || bad "answer mounts: $(py "d['agents']['i-hm']['mounts']")"
mounted "$TARGET" && ok "$TARGET is in /proc/mounts" || bad "$TARGET not mounted"
grep " $TARGET " /proc/mounts | grep -q "size=4096k" && ok "the options were passed (size=4m)" \
    || bad "options: $(grep " $TARGET " /proc/mounts)"
echo hello-host-mount >"$TARGET/probe.txt" && [ "$(cat "$TARGET/probe.txt")" = hello-host-mount ] \
    && [ "$(stat -c %d "$TARGET/probe.txt")" = "$(stat -c %d "$TARGET")" ] \
    && [ "$(stat -c %d "$TARGET")" != "$(stat -c %d "$PREFIX")" ] && [ "$(stat -f -c %T "$TARGET")" = tmpfs ] \
    && ok "a file written there lands on the tmpfs" || bad "file on the mount: $(df -P "$TARGET" | tail -1)"
[ "$(fstab_lines "$TARGET")" = 1 ] && grep -qx "tmpfs $TARGET tmpfs size=4m 0 0" "$FSTAB" \
    && grep -qx "proc /proc proc defaults 0 0" "$FSTAB" && ok "edit_fstab added exactly one line, kept the rest" \
    || bad "fstab: $(cat "$FSTAB")"
ls "$T"/fstab*.baic-* >/dev/null 2>&1 && bad "a temporary fstab was left behind" || ok "no temporary fstab left"

admin GET /folders/_/mounts
expect 200 "" "GET mounts"
[ "$(py "d['agents']['i-hm']['success'] and any(m[0] == '$TARGET' for m in d['agents']['i-hm']['mounts'])")" = True ] \
    && ok "GET mounts lists the agent's mount" || bad "GET mounts: $BODY"
[ "$(py "'i-dead' in d['agents']")" = False ] && ok "GET mounts does not ask the LOST agent" || bad "GET listed i-dead: $BODY"

admin POST /folders/_/mounts "$MOUNT"
expect 200 "" "mount the same name again"
[ "$(py "d['agents']['i-hm']['success']")" = False ] && py "d['agents']['i-hm']['message']" | grep -q "already mounted" \
    && ok "again: success false, already mounted" || bad "second mount: $BODY"
[ "$(grep -c " $TARGET " /proc/mounts)" = 1 ] && [ "$(fstab_lines "$TARGET")" = 1 ] \
    && ok "still one mount and one fstab line" || bad "after the second mount: $(grep " $TARGET " /proc/mounts) / $(cat "$FSTAB")"

# fstab_path must be the agent's own
admin POST /folders/_/mounts '{"name": "other", "fs_type": "tmpfs", "fs_location": "tmpfs", "fstab_path": "/etc/fstab"}'
expect 200 "" "mount with another fstab_path"
[ "$(py "d['agents']['i-hm']['success']")" = False ] && py "d['agents']['i-hm']['message']" | grep -q "HTTP 400.*fstab_path" \
    && ! mounted "$PREFIX/other" && ok "another fstab_path: the agent refuses (400)" || bad "fstab_path: $BODY"

# a bad fs_type: mount's own message, nothing left
admin POST /folders/_/mounts '{"name": "broken", "fs_type": "nosuchfs", "fs_location": "tmpfs", "edit_fstab": "true"}'
expect 200 "" "mount with fs_type nosuchfs"
MSG=$(py "d['agents']['i-hm']['message']")
[ "$(py "d['agents']['i-hm']['success']")" = False ] && printf '%s' "$MSG" | grep -q "mount" \
    && ! printf '%s' "$MSG" | grep -q "exited with status" && ok "nosuchfs: success false with mount's message ($MSG)" \
    || bad "nosuchfs: $BODY"
! mounted "$PREFIX/broken" && [ ! -e "$PREFIX/broken" ] && [ "$(fstab_lines "$PREFIX/broken")" = 0 ] \
    && ok "nosuchfs: nothing mounted, no directory, no fstab line" || bad "nosuchfs left: $(ls "$PREFIX")"

# scaling_group given: only that group's ALIVE agents
sql "INSERT INTO scaling_groups (name) VALUES ('sg-empty')" >/dev/null
admin POST /folders/_/mounts '{"name": "sg", "fs_type": "tmpfs", "fs_location": "tmpfs", "scaling_group": "sg-empty"}'
expect 200 "" "mount in a scaling group without agents"
[ "$(py "d['agents']")" = "{}" ] && [ ! -e "$PREFIX/sg" ] && ok "empty scaling group: agents {}" || bad "sg-empty: $BODY"
# an ALIVE row whose agent does not answer: success false, unreachable
sql "INSERT INTO scaling_groups (name) VALUES ('sg-ghost')" >/dev/null
sql "INSERT INTO agents (id, status, addr, scaling_group, heartbeat_at) VALUES ('i-ghost', 'ALIVE', 'http://127.0.0.1:9', 'sg-ghost', now())" >/dev/null
admin POST /folders/_/mounts '{"name": "sg", "fs_type": "tmpfs", "fs_location": "tmpfs", "scaling_group": "sg-ghost"}'
expect 200 "" "mount on an unreachable agent"
[ "$(py "sorted(d['agents'])")" = "['i-ghost']" ] && [ "$(py "d['agents']['i-ghost']['success']")" = False ] \
    && py "d['agents']['i-ghost']['message']" | grep -qi unreachable && ok "unreachable agent: success false, unreachable" \
    || bad "ghost: $BODY"
sql "DELETE FROM agents WHERE id = 'i-ghost'" >/dev/null
admin POST /folders/_/mounts '{"name": "data2", "fs_type": "tmpfs", "fs_location": "tmpfs", "scaling_group": "default"}'
expect 200 "" "mount data2 in scaling group default"
[ "$(py "sorted(d['agents'])")" = "['i-hm']" ] && [ "$(py "d['agents']['i-hm']['success']")" = True ] && mounted "$PREFIX/data2" \
    && [ "$(fstab_lines "$PREFIX/data2")" = 0 ] && ok "data2 mounted, fstab untouched without edit_fstab" || bad "data2: $BODY"

# --- umount ---
admin DELETE /folders/_/mounts '{"name": "data1", "edit_fstab": true}'
expect 200 "" "DELETE mounts data1"
[ "$(py "d['agents']['i-hm']['success']")" = True ] && [ "$(py "any(m[0] == '$TARGET' for m in d['agents']['i-hm']['mounts'])")" = False ] \
    && ok "umount: success, no longer listed" || bad "umount answer: $BODY"
! mounted "$TARGET" && [ ! -e "$TARGET" ] && ok "umount: not mounted, directory removed" || bad "after umount: $(ls -la "$PREFIX")"
[ "$(fstab_lines "$TARGET")" = 0 ] && grep -qx "proc /proc proc defaults 0 0" "$FSTAB" && grep -qx "# test fstab" "$FSTAB" \
    && ok "umount: the fstab line is gone, the rest kept" || bad "fstab after umount: $(cat "$FSTAB")"
admin POST /folders/_/umounts '{"name": "data2", "scaling_group": "default"}'
expect 200 "" "POST umounts data2"
[ "$(py "d['agents']['i-hm']['success']")" = True ] && ! mounted "$PREFIX/data2" && [ ! -e "$PREFIX/data2" ] \
    && ok "umounts alias: unmounted, directory removed" || bad "umounts: $BODY"
admin DELETE /folders/_/mounts '{"name": "data1"}'
expect 200 "" "umount data1 again"
[ "$(py "d['agents']['i-hm']['success']")" = False ] && py "d['agents']['i-hm']['message']" | grep -q "not mounted" \
    && ok "again: success false, not mounted" || bad "second umount: $BODY"
admin POST /folders/_/umounts '{"name": "never"}'
expect 200 "" "umount a name never mounted"
[ "$(py "d['agents']['i-hm']['success']")" = False ] && py "d['agents']['i-hm']['message']" | grep -q "not mounted" \
    && ok "never mounted: not mounted" || bad "never: $BODY"

# --- a symbolic link in place of the mount point is not followed ---
mkdir -p "$T/elsewhere" && ln -s "$T/elsewhere" "$PREFIX/evil"
admin POST /folders/_/mounts '{"name": "evil", "fs_type": "tmpfs", "fs_location": "tmpfs"}'
expect 200 "" "mount over a symbolic link"
[ "$(py "d['agents']['i-hm']['success']")" = False ] && ! mounted "$T/elsewhere" && ! mounted "$PREFIX/evil" \
    && ok "symbolic link: refused, nothing mounted" || bad "symlink: $BODY"
rm -f "$PREFIX/evil"

# --- the agent's own RPC: signed, checked ---
RST=$(curl -s -o "$T/rpc" -w '%{http_code}' -X POST --data-binary '{"name":"x","fs_type":"tmpfs","fs_location":"tmpfs"}' "http://127.0.0.1:$AGENT_PORT/rpc/mounts")
[ "$RST" = 401 ] && [ ! -e "$PREFIX/x" ] && ok "agent: unsigned /rpc/mounts is 401" || bad "unsigned: $RST $(cat "$T/rpc")"
rpc POST /rpc/mounts '{"name": "../x", "fs_type": "tmpfs", "fs_location": "tmpfs"}'
[ "$RST" = 400 ] && grep -q invalid-api-params "$T/rpc" && ok "agent: name traversal is 400" || bad "agent traversal: $RST $(cat "$T/rpc")"
rpc POST /rpc/umounts 'nonsense'
[ "$RST" = 400 ] && ok "agent: malformed JSON is 400" || bad "agent malformed: $RST $(cat "$T/rpc")"
rpc POST /rpc/mounts '{"name": "x", "fs_type": "tmpfs", "fs_location": "--bind"}'
[ "$RST" = 400 ] && [ ! -e "$PREFIX/x" ] && ok "agent: an option as fs_location is 400" || bad "agent option source: $RST $(cat "$T/rpc")"
rpc GET /rpc/mounts
[ "$RST" = 200 ] && "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['success'] and isinstance(d['mounts'], list) else 1)" "$T/rpc" \
    && ok "agent: GET /rpc/mounts" || bad "agent list: $RST $(cat "$T/rpc")"

# --- concurrent requests are taken one at a time by the agent ---
PIDS=()
for n in 1 2 3 4; do
    ( OUTF=$T/body.$n call "$ADMIN_AK" "$ADMIN_SK" POST /folders/_/mounts "{\"name\": \"par\", \"fs_type\": \"tmpfs\", \"fs_location\": \"tmpfs\", \"edit_fstab\": true}"
      printf '%s\n' "$BODY" >"$T/par.$n" ) &
    PIDS+=($!)
done
wait "${PIDS[@]}"
nok=$(cat "$T"/par.* | "$PY" -c "import json,sys; print(sum(json.loads(l)['agents']['i-hm']['success'] for l in sys.stdin if l.strip()))" 2>/dev/null)
[ "$nok" = 1 ] && [ "$(grep -c " $PREFIX/par " /proc/mounts)" = 1 ] && [ "$(fstab_lines "$PREFIX/par")" = 1 ] \
    && ok "4 concurrent mounts of one name: one succeeds, one mount, one fstab line" \
    || bad "concurrent: ok=$nok mounts=$(grep -c " $PREFIX/par " /proc/mounts) fstab=$(fstab_lines "$PREFIX/par")"
admin DELETE /folders/_/mounts '{"name": "par", "edit_fstab": "true", "fstab_path": "'"$FSTAB"'"}'
expect 200 "" "umount par with the agent's own fstab_path"
[ "$(py "d['agents']['i-hm']['success']")" = True ] && ! mounted "$PREFIX/par" && [ "$(fstab_lines "$PREFIX/par")" = 0 ] \
    && ok "par unmounted, fstab line gone" || bad "par: $BODY"

[ -L "$FSTAB" ] && [ "$(stat -c %a "$T/fstab.real")" = 640 ] && ok "the fstab link and the file's mode were kept" \
    || bad "fstab: $(ls -la "$T"/fstab*)"
kill -0 "$AGENT_PID" 2>/dev/null && ok "agent still running" || bad "agent died: $(tail -20 "$T/agent.log")"
[ -z "$(awk -v p="$PREFIX/" 'index($2, p) == 1' /proc/mounts)" ] && ok "nothing left mounted under the prefix" \
    || bad "left mounted: $(awk -v p="$PREFIX/" 'index($2, p) == 1' /proc/mounts)"

echo "failures: $failures"
[ "$failures" = 0 ]
