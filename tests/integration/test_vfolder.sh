#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Virtual folders end to end: the manager's /folders API against a real baic-storage-proxy with a
# storage/vfs volume (create, list, info, names, limits, trash, files, tus upload and download,
# traversal, other users' folders, invitations and shares, clone with background-task SSE) and
# the mount list a session create stores for its kernels.
#
#   tests/integration/test_vfolder.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SP=$BUILD/core/storage-proxy/baic-storage-proxy
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] || skip "baic / baic-manager not built"
[ -x "$SP" ] || skip "baic-storage-proxy not built"
[ -f "$BUILD/plugins-out/storage_vfs.so" ] || skip "storage/vfs plugin not built"
command -v redis-server >/dev/null || skip "redis-server not installed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
for t in curl python3 psql; do command -v $t >/dev/null || skip "$t not installed"; done
PY=$(command -v /usr/bin/python3 || command -v python3)
. "$SRC/tests/integration/services.sh"
export BAIC_PLUGIN_DIR=$BUILD/plugins-out

T=$(mktemp -d) && chmod 711 "$T" || exit 1
D=$T/data
failures=0
. "$SRC/tests/integration/lib.sh"
SP_PID=
AGENT_PID=
cleanup() {
    local rc=$?
    [ "$rc" != 0 ] && [ "$failures" = 0 ] && failures=1
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
    [ -n "$SP_PID" ] && kill "$SP_PID" 2>/dev/null && wait "$SP_PID" 2>/dev/null
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    if [ "$failures" = 0 ]; then rm -rf "$T"; else echo "logs kept in $T"; fi
}
trap cleanup EXIT


# --- a storage proxy with one vfs volume ---
MSECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
JSECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
MPORT=$(_baic_free_port)
CPORT=$(_baic_free_port)
while [ "$CPORT" = "$MPORT" ]; do CPORT=$(_baic_free_port); done
VOL=$T/vol
mkdir -p "$VOL"
cat >"$T/sp.toml" <<CFG
[storage-proxy]
listen_manager = "127.0.0.1:$MPORT"
listen_client = "127.0.0.1:$CPORT"
manager_secret = "$MSECRET"
jwt_secret = "$JSECRET"

[volume.volume1]
backend = "vfs"
path = "$VOL"
CFG
"$SP" -c "$T/sp.toml" >"$T/sp.log" 2>&1 &
SP_PID=$!
for i in $(seq 1 100); do grep -q event=storage_proxy_started "$T/sp.log" && break; sleep 0.1; done
grep -q event=storage_proxy_started "$T/sp.log" || { cat "$T/sp.log"; exit 1; }

# --- the manager, told about the proxy ---
"$BAIC" up --no-agent --data-dir "$D" >"$T/up.log" 2>&1 || { cat "$T/up.log"; exit 1; }
# `baic up` appended [volumes] for its own proxy at the end: this test's proxy replaces it.
sed -i '/^# Folders (`baic folder`)/,$d' "$D/etc/manager.toml"
cat >>"$D/etc/manager.toml" <<TOML

[volumes]
default_host = "local:volume1"

[volumes.proxies.local]
manager_api = "http://127.0.0.1:$MPORT"
client_api = "http://127.0.0.1:$CPORT"
secret = "$MSECRET"
jwt_secret = "$JSECRET"
TOML
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed -i "/^\[manager\]/a cluster_secret = \"$SECRET\"" "$D/etc/manager.toml"
kill "$(cat "$D/run/manager.pid")"
for i in $(seq 1 100); do kill -0 "$(cat "$D/run/manager.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
"$BAIC" up --no-agent --data-dir "$D" >"$T/up2.log" 2>&1 || { cat "$T/up2.log"; tail -30 "$D"/log/manager.log; exit 1; }
stack_env "$D"
U1_AK=$USER_AK U1_SK=$USER_SK
U1_EMAIL=$(sql "SELECT user_id FROM keypairs WHERE access_key = '$U1_AK'")
U1_UUID=$(sql "SELECT \"user\" FROM keypairs WHERE access_key = '$U1_AK'")

# A second ordinary user in the default project, and a third outside it.
U2_AK=AKIAVFTESTUSER200002 U2_SK=$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
U3_AK=AKIAVFTESTUSER300003 U3_SK=$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
for n in 2 3; do
    ak=U${n}_AK sk=U${n}_SK
    sql "WITH u AS (INSERT INTO users (email, username, role, status, domain_name, resource_policy)
         VALUES ('vf$n@example.com', 'vf$n', 'user', 'active', 'default', 'default') RETURNING uuid)
         INSERT INTO keypairs (access_key, secret_key, user_id, \"user\", resource_policy, rate_limit)
         SELECT '${!ak}', '${!sk}', 'vf$n@example.com', uuid, 'default', 30000 FROM u" >/dev/null
done
sql "INSERT INTO association_groups_users (user_id, group_id) SELECT u.uuid, g.id FROM users u, groups g
     WHERE u.email = 'vf2@example.com' AND g.name = 'default'" >/dev/null
U2_UUID=$(sql "SELECT uuid FROM users WHERE email = 'vf2@example.com'")

u1() { call "$U1_AK" "$U1_SK" "$@"; }
u2() { call "$U2_AK" "$U2_SK" "$@"; }
u3() { call "$U3_AK" "$U3_SK" "$@"; }
adm() { call "$ADMIN_AK" "$ADMIN_SK" "$@"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what: $BODY"; fi; }

# --- hosts ---
u1 GET /folders/_/hosts
expect 200 "" "hosts"
check "hosts: default and allowed local:volume1 with its volume info" \
    [ "$(field "$BODY" "['default'], d['allowed'], d['volume_info']['local:volume1']['backend']")" = "local:volume1 ['local:volume1'] vfs" ]
u1 GET /folders/_/allowed-types
check "allowed-types" [ "$BODY" = '["user", "group"]' -o "$(field "$BODY" "")" = "['user', 'group']" ]
u1 GET /folders/_/all-hosts
expect 403 insufficient-privilege "all-hosts is for superadmins"
adm GET /folders/_/all-hosts
check "all-hosts lists the proxy's volume" [ "$(field "$BODY" "['allowed']")" = "['local:volume1']" ]

# --- create, names ---
u1 POST /folders '{"name": "data1"}'
expect 201 "" "create data1"
ID=$(field "$BODY" "['id']")
check "create answer: hex id, owner fields" [ "${#ID}" = 32 -a "$(field "$BODY" "['ownership_type'], d['user'], d['permission'], d['status'], d['host']")" = "user $U1_UUID rw ready local:volume1" ]
QS=$(field "$BODY" "['quota_scope_id']")
check "the folder exists on the volume" [ -d "$VOL/$QS/$ID" ]
u1 POST /folders '{"name": "data1"}'
expect 400 vfolder-already-exists "duplicate name"
for n in '""' '"a/b"' '".."' '"."' "\"$(printf 'x%.0s' $(seq 1 65))\"" '123' '"-x"' '"has space"' \
    '"0123456789abcdef0123456789abcdef"' '".ssh"'; do
    u1 POST /folders "{\"name\": $n}"
    expect 400 invalid-api-params "name $n refused"
done
u1 POST /folders '{"name": '
expect 400 invalid-api-params "malformed JSON"
u1 POST /folders '{"name": "x1", "host": "nowhere:vol"}'
expect 400 invalid-api-params "unknown host"
u1 POST /folders '{"name": "x1", "permission": "all"}'
expect 400 invalid-api-params "bad permission"
u1 POST /folders '{"name": "x1", "group": "default"}'
expect 403 insufficient-privilege "users cannot create project folders"

# --- list, id, info ---
u1 GET /folders
expect 200 "" "list"
check "list shows data1 as owned" [ "$(field "$BODY" "[0]['name'], d[0]['id'], d[0]['is_owner'], d[0]['type']")" = "data1 $ID True user" ]
u1 GET /folders/_/id '{"name": "data1"}'
check "_/id by name" [ "$STATUS $(field "$BODY" "['id']")" = "200 $ID" ]
DASHED=$(sql "SELECT id FROM vfolders WHERE name = 'data1'")
for ref in data1 "$ID" "$DASHED"; do
    u1 GET "/folders/$ref"
    expect 200 "" "info by $ref" && check "info fields" [ "$(field "$BODY" "['name'], d['id'], d['is_owner'], d['numFiles']")" = "data1 $ID True 0" ]
done

# --- files ---
u1 POST "/folders/$ID/mkdir" '{"path": "sub/deep", "parents": true}'
expect 200 "" "mkdir sub/deep"
u1 POST "/folders/$ID/mkdir" '{"path": ["a", "sub"], "parents": false, "exist_ok": false}'
check "mkdir of an existing dir is 207 with a failure" [ "$STATUS" = 207 -a "$(field "$BODY" "['results']['failed'][0]['item']")" = sub ]
u1 GET "/folders/$ID/files?path=sub"
check "files lists deep" [ "$STATUS $(field "$BODY" "['items'][0]['name'], d['items'][0]['type']")" = "200 deep DIRECTORY" ]
printf 'hello virtual folders %s\n' "$RANDOM$RANDOM" >"$T/up.txt"
head -c 3000000 /dev/urandom >>"$T/up.txt"
SIZE=$(stat -c %s "$T/up.txt")
u1 POST "/folders/$ID/request-upload" "{\"path\": \"sub/hello.bin\", \"size\": $SIZE}"
expect 200 "" "request-upload"
TOK=$(field "$BODY" "['token']") URL=$(field "$BODY" "['url']")
check "upload url is the client API" [ "$URL" = "http://127.0.0.1:$CPORT/upload" ]
half=$((SIZE / 2))
head -c $half "$T/up.txt" >"$T/p1"; tail -c +$((half + 1)) "$T/up.txt" >"$T/p2"
s1=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' --data-binary @"$T/p1" "$URL?token=$TOK")
s2=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H "Upload-Offset: $half" \
    -H 'Content-Type: application/offset+octet-stream' --data-binary @"$T/p2" "$URL?token=$TOK")
check "tus PATCH x2 -> 204 204" [ "$s1 $s2" = "204 204" ]
u1 POST "/folders/$ID/request-download" '{"path": "sub/hello.bin"}'
expect 200 "" "request-download"
curl -s -o "$T/down.bin" "$(field "$BODY" "['url']")?token=$(field "$BODY" "['token']")"
check "downloaded bytes equal the uploaded ones" cmp -s "$T/up.txt" "$T/down.bin"
u1 POST "/folders/$ID/request-download" '{"path": "nothere.bin"}'
s=$(curl -s -o /dev/null -w '%{http_code}' "$(field "$BODY" "['url']")?token=$(field "$BODY" "['token']")")
check "download of a missing file: 404" [ "$s" = 404 ]
u1 POST "/folders/$ID/rename-file" '{"target_path": "sub/hello.bin", "new_name": "renamed.bin"}'
expect 200 "" "rename-file"
u1 POST "/folders/$ID/move-file" '{"src": "sub/renamed.bin", "dst": "a/moved.bin"}'
expect 200 "" "move-file"
check "moved file on the volume" cmp -s "$T/up.txt" "$VOL/$QS/$ID/a/moved.bin"
u1 GET "/folders/$ID/files?path=a"
check "files shows moved.bin with size" [ "$(field "$BODY" "['items'][0]['name'], d['items'][0]['size']")" = "moved.bin $SIZE" ]
u1 DELETE "/folders/$ID/delete-files" '{"files": ["a/moved.bin"]}'
expect 200 "" "delete-files"
check "file deleted" [ ! -e "$VOL/$QS/$ID/a/moved.bin" ]
u1 DELETE "/folders/$ID/delete-files" '{"files": ["sub"]}'
check "non-recursive delete of a dir refused" [ "$STATUS" -ge 400 ]
u1 DELETE "/folders/$ID/delete-files" '{"files": ["sub"], "recursive": true}'
expect 200 "" "recursive delete-files"
# traversal and absolute paths, every file op
for p in '../x' '/etc/passwd' 'a/../../x' 'a/..'; do
    u1 POST "/folders/$ID/mkdir" "{\"path\": \"$p\"}";                           expect 400 invalid-api-params "mkdir $p"
    u1 POST "/folders/$ID/rename-file" "{\"target_path\": \"$p\", \"new_name\": \"z\"}"; expect 400 invalid-api-params "rename-file $p"
    u1 POST "/folders/$ID/move-file" "{\"src\": \"a\", \"dst\": \"$p\"}";          expect 400 invalid-api-params "move-file dst $p"
    u1 POST "/folders/$ID/move-file" "{\"src\": \"$p\", \"dst\": \"a\"}";          expect 400 invalid-api-params "move-file src $p"
    u1 DELETE "/folders/$ID/delete-files" "{\"files\": [\"$p\"]}";                 expect 400 invalid-api-params "delete-files $p"
    u1 GET "/folders/$ID/files?path=$p";                                            expect 400 invalid-api-params "files $p"
    u1 POST "/folders/$ID/request-upload" "{\"path\": \"$p\", \"size\": 1}";       expect 400 invalid-api-params "request-upload $p"
    u1 POST "/folders/$ID/request-download" "{\"path\": \"$p\"}";                  expect 400 invalid-api-params "request-download $p"
done
u1 POST "/folders/$ID/rename-file" '{"target_path": "a", "new_name": "../b"}'
expect 400 invalid-api-params "rename-file new_name with a slash"
u1 POST "/folders/$ID/request-upload" '{"path": "f", "size": "1"}'
expect 400 invalid-api-params "request-upload size must be an integer"
ln -s /etc "$VOL/$QS/$ID/link"
u1 GET "/folders/$ID/files?path=link"
expect 403 "" "files through a symlink refused by the proxy"

# --- another user's folder: 404 everywhere ---
other() {
    local who=$1
    $who GET "/folders/$ID";                                          expect 404 object-not-found "$who: info"
    $who GET /folders/_/id '{"name": "data1"}';                      expect 404 object-not-found "$who: _/id"
    $who GET "/folders/$ID/files";                                    expect 404 object-not-found "$who: files"
    $who POST "/folders/$ID/mkdir" '{"path": "x"}';                   expect 404 object-not-found "$who: mkdir"
    $who POST "/folders/$ID/rename-file" '{"target_path": "a", "new_name": "b"}'; expect 404 object-not-found "$who: rename-file"
    $who POST "/folders/$ID/move-file" '{"src": "a", "dst": "b"}';    expect 404 object-not-found "$who: move-file"
    $who POST "/folders/$ID/delete-files" '{"files": ["a"]}';         expect 404 object-not-found "$who: delete-files"
    $who POST "/folders/$ID/request-upload" '{"path": "x", "size": 1}'; expect 404 object-not-found "$who: request-upload"
    $who POST "/folders/$ID/request-download" '{"path": "a"}';        expect 404 object-not-found "$who: request-download"
    $who POST "/folders/$ID/rename" '{"new_name": "mine"}';           expect 404 object-not-found "$who: rename"
    $who POST "/folders/$ID/update-options" '{"cloneable": true}';    expect 404 object-not-found "$who: update-options"
    $who DELETE "/folders/$ID";                                       expect 404 object-not-found "$who: delete by path"
    $who DELETE /folders "{\"id\": \"$ID\"}";                         expect 404 object-not-found "$who: delete"
    $who POST /folders/purge "{\"id\": \"$ID\"}";                     expect 404 object-not-found "$who: purge"
    $who POST /folders/restore-from-trash-bin "{\"id\": \"$ID\"}";    expect 404 object-not-found "$who: restore"
    $who DELETE "/folders/$ID/force";                                 expect 404 object-not-found "$who: force delete"
    $who POST "/folders/$ID/invite" '{"perm": "rw", "emails": ["vf3@example.com"]}'; expect 404 object-not-found "$who: invite"
    $who POST "/folders/$ID/share" '{"permission": "rw", "emails": ["vf3@example.com"]}'; expect 404 object-not-found "$who: share"
    $who POST "/folders/$ID/unshare" '{"emails": ["vf3@example.com"]}'; expect 404 object-not-found "$who: unshare"
    $who POST "/folders/$ID/leave" '{}';                              expect 404 object-not-found "$who: leave"
    $who POST "/folders/$ID/clone" '{"target_name": "stolen"}';      expect 404 object-not-found "$who: clone"
    $who GET /folders
    check "$who: list does not show data1" [ "$(field "$BODY" "[0]['name'] if d else ''")" != data1 ]
}
other u2
other u3

# --- rename, options ---
u1 POST "/folders/$ID/rename" '{"new_name": "data2"}'
check "rename -> 201 with an empty body" [ "$STATUS" = 201 -a -z "$BODY" ]
u1 POST "/folders/$ID/rename" '{"new_name": "a/b"}'
expect 400 invalid-api-params "rename to a bad name"
u1 POST "/folders/$ID/update-options" '{"cloneable": true, "permission": "ro"}'
expect 201 "" "update-options"
check "options stored" [ "$(sql "SELECT name, cloneable, permission FROM vfolders WHERE id = '$DASHED'")" = "data2|t|ro" ]
u1 POST "/folders/$ID/update-options" '{"cloneable": "yes"}'
expect 400 invalid-api-params "update-options cloneable type"
u1 POST "/folders/$ID/update-options" '{"permission": "rw"}'

# --- count limit ---
have=$(sql "SELECT count(*) FROM vfolders WHERE \"user\" = '$U1_UUID' AND status <> 'delete-complete'")
sql "UPDATE user_resource_policies SET max_vfolder_count = $((have + 1)) WHERE name = 'default'" >/dev/null
u1 POST /folders '{"name": "limit1"}'
expect 201 "" "create under the count limit"
u1 POST /folders '{"name": "limit2"}'
expect 400 vfolder-quota-exceeded "create over the count limit"
sql "UPDATE user_resource_policies SET max_vfolder_count = 0 WHERE name = 'default'" >/dev/null
sql "UPDATE user_resource_policies SET max_quota_scope_size = 1048576 WHERE name = 'default'" >/dev/null
u2 POST /folders '{"name": "small"}'
expect 201 "" "create with a quota scope size"
SMALL=$(field "$BODY" "['id']")
check "quota scope limit set on the volume" [ "$(cat "$VOL/user:$U2_UUID/.quota" 2>/dev/null | tr -d ' \n')" = 1048576 ]
sql "UPDATE user_resource_policies SET max_quota_scope_size = -1 WHERE name = 'default'" >/dev/null
u2 POST "/folders/$SMALL/request-upload" '{"path": "big.bin", "size": 2000000}'
if [ "$STATUS" = 200 ]; then
    s=$(head -c 2000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' \
        -H 'Upload-Offset: 0' -H 'Content-Type: application/offset+octet-stream' --data-binary @- \
        "$(field "$BODY" "['url']")?token=$(field "$BODY" "['token']")")
    check "upload past the quota scope size refused (412)" [ "$s" = 412 ]
else
    check "upload past the quota scope size refused" [ "$STATUS" = 412 ]
fi

# --- trash, restore, purge ---
u1 DELETE /folders '{"id": "limit1"}'
expect 204 "" "delete limit1 to trash"
u1 GET /folders/limit1
check "trashed folder shows delete-pending" [ "$(field "$BODY" "['status']")" = delete-pending ]
u1 GET /folders/limit1/files
expect 404 object-not-found "files of a trashed folder"
u1 POST /folders/restore-from-trash-bin '{"id": "limit1"}'
expect 204 "" "restore"
u1 GET /folders/limit1/files
expect 200 "" "files after restore"
u1 POST /folders/purge '{"id": "limit1"}'
expect 404 object-not-found "purge of a live folder"
LIMIT1=$(sql "SELECT replace(id::text, '-', '') FROM vfolders WHERE name = 'limit1'")
u1 DELETE /folders/limit1
expect 204 "" "delete by path"
u1 POST /folders/purge "{\"id\": \"$LIMIT1\"}"
expect 204 "" "purge"
u1 GET /folders/limit1
expect 404 object-not-found "purged folder is gone"
check "purged folder gone from the volume" [ ! -e "$VOL/$QS/$LIMIT1" ]
u1 POST /folders '{"name": "limit1"}'
expect 201 "" "the name is free again"

# --- mounts resolved at session create, seen by an agent ---
# A stand-in agent: heartbeats on the Redis stream, and create_kernels bodies written to a file.
REDIS_PORT=$(sed -n '/^\[redis\]/,/^\[/s/^port *= *\([0-9]*\).*/\1/p' "$D/etc/manager.toml")
AGENT_PORT=$(_baic_free_port)
cat >"$T/agent.py" <<'PYEOF'
import json, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
redis_port, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def beat():
    while True:
        body = {"agent_id": "i-vftest", "ts": int(time.time() * 1000), "addr": "http://127.0.0.1:%d" % port,
                "region": "local", "scaling_group": "default", "architecture": "x86_64", "version": "fake",
                "available_slots": {"cpu": "4", "mem": "8589934592"}, "slot_types": {"cpu": "count", "mem": "bytes"},
                "compute_plugins": {}, "images": [], "kernels": []}
        subprocess.run(["redis-cli", "-p", redis_port, "XADD", "baic:agent-events", "*", "name", "agent_heartbeat",
                        "body", json.dumps(body)], stdout=subprocess.DEVNULL, check=False)
        time.sleep(1)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/rpc/create_kernels":
            req = json.loads(body)
            with open(out + ".tmp", "w") as f: json.dump(req, f)
            import os; os.rename(out + ".tmp", out)
            data = json.dumps({"accepted": [k["kernel_id"] for k in req["kernels"]]}).encode()
            self.send_response(202)
        else:
            data = b"{}"
            self.send_response(200)
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        data = b'{"kernels": []}'
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
threading.Thread(target=beat, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PYEOF
AGENT_PID=
if command -v redis-cli >/dev/null; then
    "$PY" "$T/agent.py" "$REDIS_PORT" "$AGENT_PORT" "$T/create_kernels.json" >"$T/agent.log" 2>&1 &
    AGENT_PID=$!
fi
sql "INSERT INTO images (name, image, tag, registry, architecture, resources)
     VALUES ('test.local/stable/vfimg:1', 'stable/vfimg', '1', 'test.local', 'x86_64', '{}')" >/dev/null
u1 POST /folders '{"name": ".dotfiles"}'
expect 201 "" "create a dot-folder"
DOT=$(field "$BODY" "['id']")
u1 POST /folders '{"name": "rodata"}'
session() { u1 POST /session "{\"name\": \"$1\", \"image\": \"test.local/stable/vfimg:1\", \"enqueueOnly\": true, \"config\": $2}"; }
session vfs1 "{\"mounts\": [\"data2\", \"rodata\"], \"mount_map\": {\"data2\": \"/home/work/work-data\"}, \"mount_options\": {\"rodata\": {\"permission\": \"ro\"}}}"
expect 201 "" "session with mounts"
M=$(sql "SELECT vfolder_mounts FROM sessions WHERE name = 'vfs1'")
KM=$(sql "SELECT vfolder_mounts FROM kernels WHERE session_name = 'vfs1'")
got=$(printf '%s' "$M" | "$PY" -c '
import json, sys
ms = json.load(sys.stdin)
print(" ".join("%s:%s:%s:%s" % (m["name"], m["kernel_path"], m["permission"], m["host_path"]) for m in sorted(ms, key=lambda m: m["name"])))
print(all(m["vfid"].endswith("/" + m["host_path"].rsplit("/", 1)[1]) for m in ms))')
RO=$(sql "SELECT replace(id::text, '-', '') FROM vfolders WHERE name = 'rodata'")
want=".dotfiles:/home/work/.dotfiles:rw:$(realpath "$VOL")/$QS/$DOT data2:/home/work/work-data:rw:$(realpath "$VOL")/$QS/$ID rodata:/home/work/rodata:ro:$(realpath "$VOL")/$QS/$RO
True"
check "sessions.vfolder_mounts: mapped, ro option, dot-folder added, host paths" [ "$got" = "$want" ]
check "kernels.vfolder_mounts equals the session's" [ -n "$KM" -a "$KM" = "$M" ]
if [ -n "$AGENT_PID" ]; then
    for i in $(seq 1 300); do [ -f "$T/create_kernels.json" ] && break; sleep 0.1; done
    spec=$("$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["kernels"][0]
print(json.dumps(sorted(k["mounts"], key=lambda m: m["name"]), sort_keys=True))' "$T/create_kernels.json" 2>/dev/null)
    want=$(printf '%s' "$M" | "$PY" -c 'import json, sys; print(json.dumps(sorted(json.load(sys.stdin), key=lambda m: m["name"]), sort_keys=True))')
    check "the agent's create_kernels spec carries kernel.mounts" [ -n "$spec" -a "$spec" = "$want" ]
else
    echo "skip the agent spec check: no redis-cli"
fi
u1 DELETE "/folders/$ID"
expect 400 vfolder-in-use "a folder mounted in a live session is not trashed"
u1 DELETE "/folders/$ID/force"
expect 400 vfolder-in-use "a folder mounted in a live session is not force-deleted"
check "its data stays" [ -d "$VOL/$QS/$ID" ]
session vfs2 '{"mounts": ["small"]}'
expect 404 object-not-found "mounting another user's folder"
session vfs3 '{"mounts": ["data2"], "mount_map": {"data2": "/etc"}}'
expect 400 invalid-api-params "mount target outside /home/work"
session vfs4 '{"mounts": ["data2"], "mount_map": {"data2": "x/../../etc"}}'
expect 400 invalid-api-params "mount target with .."
session vfs5 '{"mounts": "data2"}'
expect 400 invalid-api-params "mounts must be a list"
session vfs6 '{"mounts": ["data2", "rodata"], "mount_map": {"data2": "same", "rodata": "same"}}'
expect 400 invalid-api-params "two folders at one path"
check "refused sessions were not stored" [ "$(sql "SELECT count(*) FROM sessions WHERE name LIKE 'vfs_' AND name <> 'vfs1'")" = 0 ]

# --- invitations: a user folder shared read-only ---
u1 POST /folders '{"name": "shared1"}'
SH=$(field "$BODY" "['id']")
u1 POST "/folders/$SH/mkdir" '{"path": "docs"}'
u1 POST "/folders/$SH/invite" '{"perm": "ro", "emails": ["vf3@example.com"]}'
expect 200 "" "invite"
u1 POST "/folders/$SH/invite" '{"perm": "xx", "emails": ["vf3@example.com"]}'
expect 400 invalid-api-params "invite with a bad perm"
u1 POST "/folders/$SH/invite" '{"perm": "ro", "emails": ["nobody@example.com"]}'
expect 404 object-not-found "invite of an unknown user"
u3 GET /folders/invitations/list
expect 200 "" "invitations/list"
INV=$(field "$BODY" "['invitations'][0]['id']")
check "invitation fields" [ "$(field "$BODY" "['invitations'][0]['inviter'], d['invitations'][0]['perm'], d['invitations'][0]['vfolder_name'], d['invitations'][0]['state']")" = "$U1_EMAIL ro shared1 pending" ]
u1 GET /folders/invitations/list-sent
check "list-sent shows it" [ "$(field "$BODY" "['invitations'][0]['id']")" = "$INV" ]
u2 POST /folders/invitations/accept "{\"inv_id\": \"$INV\"}"
expect 404 object-not-found "someone else cannot accept"
u3 POST /folders/invitations/accept "{\"inv_id\": \"$INV\"}"
expect 200 "" "accept"
u3 GET "/folders/$SH"
check "invitee sees the folder read-only, not owner" [ "$STATUS $(field "$BODY" "['permission'], d['is_owner']")" = "200 ro False" ]
u3 GET "/folders/$SH/files"
expect 200 "" "ro share can list"
u3 POST "/folders/$SH/mkdir" '{"path": "mine"}'
expect 403 insufficient-privilege "ro share cannot mkdir"
u3 POST "/folders/$SH/request-upload" '{"path": "x.txt", "size": 1}'
expect 403 insufficient-privilege "ro share cannot upload"
u3 DELETE "/folders/$SH/delete-files" '{"files": ["docs"], "recursive": true}'
expect 403 insufficient-privilege "ro share cannot delete files"
u3 POST "/folders/$SH/rename" '{"new_name": "hijack"}'
expect 403 insufficient-privilege "ro share cannot rename the folder"
u3 DELETE "/folders/$SH"
expect 403 insufficient-privilege "ro share cannot delete the folder"
u3 POST "/folders/$SH/request-download" '{"path": "docs", "archive": true}'
expect 200 "" "ro share can download"
u1 GET /folders/_/shared
check "_/shared lists the share" [ "$(field "$BODY" "['shared'][0]['shared_to']['email'], d['shared'][0]['perm']")" = "vf3@example.com ro" ]
u3 POST "/folders/$SH/leave" '{}'
expect 200 "" "leave"
u3 GET "/folders/$SH"
expect 404 object-not-found "after leaving the folder is gone for the invitee"
u1 POST "/folders/$SH/invite" '{"perm": "rw", "user_ids": ["vf3@example.com"]}'
u3 GET /folders/invitations/list
INV2=$(field "$BODY" "['invitations'][0]['id']")
u3 DELETE /folders/invitations/delete "{\"inv_id\": \"$INV2\"}"
expect 200 "" "invitee rejects"
check "rejected invitation state" [ "$(sql "SELECT state FROM vfolder_invitations WHERE id = '$INV2'")" = rejected ]

# --- project folder shares ---
adm POST /folders '{"name": "projdata", "group": "default"}'
expect 201 "" "admin creates a project folder"
PJ=$(field "$BODY" "['id']")
u2 GET "/folders/$PJ"
check "project member sees it with the folder's permission" [ "$STATUS $(field "$BODY" "['permission'], d['type']")" = "200 rw group" ]
u3 GET "/folders/$PJ"
expect 404 object-not-found "non-member does not see the project folder"
adm POST "/folders/$PJ/share" '{"permission": "ro", "emails": ["vf2@example.com"]}'
check "share -> 201 shared_emails" [ "$STATUS $(field "$BODY" "['shared_emails']")" = "201 ['vf2@example.com']" ]
adm POST "/folders/$PJ/share" '{"permission": "ro", "emails": ["vf3@example.com"]}'
expect 400 invalid-api-params "share with a non-member refused"
u2 POST "/folders/$PJ/mkdir" '{"path": "x"}'
expect 403 insufficient-privilege "member with a ro share cannot write"
adm DELETE "/folders/$PJ/unshare" '{"emails": ["vf2@example.com"]}'
check "unshare" [ "$STATUS $(field "$BODY" "['unshared_emails']")" = "200 ['vf2@example.com']" ]
u2 POST "/folders/$PJ/mkdir" '{"path": "x"}'
expect 200 "" "member writes again after unshare"
u2 POST "/folders/$PJ/share" '{"permission": "rw", "emails": ["vf2@example.com"]}'
expect 403 insufficient-privilege "members cannot share"

# --- clone as a background task ---
u1 POST "/folders/$ID/mkdir" '{"path": "c/d"}'
echo clone-me >"$VOL/$QS/$ID/c/d/f.txt"
u1 POST "/folders/$ID/clone" '{"target_name": "data2-copy"}'
expect 201 "" "clone"
BG=$(field "$BODY" "['bgtask_id']")
CL=$(field "$BODY" "['id']")
u1 GET "/events/background-task?task_id=$BG"
check "background-task SSE ends with bgtask_done" sh -c "printf '%s' \"\$1\" | grep -q '^event: bgtask_done'" _ "$BODY"
for i in $(seq 1 50); do [ "$(sql "SELECT status FROM vfolders WHERE replace(id::text, '-', '') = '$CL'")" = ready ] && break; sleep 0.1; done
check "the clone holds the files" cmp -s "$VOL/$QS/$ID/c/d/f.txt" "$VOL/$QS/$CL/c/d/f.txt"
u1 GET "/folders/$CL"
check "the clone is ready and owned" [ "$STATUS $(field "$BODY" "['status'], d['is_owner']")" = "200 ready True" ]
u2 GET "/events/background-task?task_id=$BG"
expect 404 object-not-found "another user's background task"
u1 POST "/folders/$ID/clone" '{"target_name": "a/b"}'
expect 400 invalid-api-params "clone to a bad name"
u1 POST "/folders/$SH/update-options" '{"cloneable": false}'
u1 POST "/folders/$SH/invite" '{"perm": "ro", "emails": ["vf3@example.com"]}'
u3 GET /folders/invitations/list
u3 POST /folders/invitations/accept "{\"inv_id\": \"$(field "$BODY" "['invitations'][0]['id']")\"}"
u3 POST "/folders/$SH/clone" '{"target_name": "copy"}'
expect 403 insufficient-privilege "a non-cloneable shared folder cannot be cloned"

# --- admin routes: fstab, mounts, quota, usage, used-bytes, perf-metric, change-ownership ---
u1 POST /folders '{"name": "adm1"}'
expect 201 "" "create adm1"
A1=$(field "$BODY" "['id']") AQS=$(field "$BODY" "['quota_scope_id']")
FH=folder_host=local:volume1
# Known figures first (the proxy keeps them by deltas), then a file written behind its back:
# the usage route rescans and answers with the walk's figures, not the stale ones.
u1 GET "/folders/_/usage?$FH&id=$A1"
check "usage: a new folder holds nothing" [ "$STATUS $(field "$BODY" "['file_count'], d['used_bytes']")" = "200 0 0" ]
head -c 5000 /dev/urandom >"$VOL/$AQS/$A1/blob"
if [ -r /etc/fstab ]; then
    adm GET /folders/_/fstab
    check "fstab: the proxy's /etc/fstab" [ "$STATUS $(field "$BODY" "['content'].rstrip() == open('/etc/fstab').read().rstrip(), d['node'], d['node_id']")" = "200 True storage-proxy local" ]
fi
u1 GET /folders/_/fstab
expect 403 insufficient-privilege "fstab is for superadmins"
adm GET '/folders/_/fstab?fstab_path=/etc/shadow'
expect 400 invalid-api-params "fstab: another path refused"
adm GET '/folders/_/fstab?proxy=nowhere'
expect 404 object-not-found "fstab: unknown proxy"
adm GET /folders/_/mounts
check "mounts: the proxy's volume mount listed" [ "$STATUS $(field "$BODY" "['storage-proxy']['success'], d['storage-proxy']['mounts'][0][3], d['manager']['success'], all(set(a) == {'success', 'mounts', 'message'} for a in d['agents'].values())")" = "200 True local:volume1 True True" ]
u1 GET /folders/_/mounts
expect 403 insufficient-privilege "mounts is for superadmins"
u1 GET "/folders/_/usage?$FH&id=$A1"
check "usage: files and bytes" [ "$STATUS $(field "$BODY" "['file_count'], d['used_bytes'] >= 5000")" = "200 1 True" ]
u1 GET "/folders/_/used-bytes?$FH&id=$A1"
check "used-bytes" [ "$STATUS $(field "$BODY" "['used_bytes'] >= 5000")" = "200 True" ]
adm GET /folders/_/usage "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\"}"
check "superadmin reads a user's usage (JSON body)" [ "$STATUS $(field "$BODY" "['file_count']")" = "200 1" ]
u2 GET "/folders/_/usage?$FH&id=$A1"
expect 404 object-not-found "usage of another user's folder"
u1 GET "/folders/_/usage?id=$A1"
expect 400 invalid-api-params "usage without folder_host"
u1 GET "/folders/_/used-bytes?folder_host=volume1&id=$A1"
expect 400 invalid-api-params "used-bytes with a malformed host"
u1 GET "/folders/_/usage?folder_host=nowhere:volume1&id=$A1"
expect 404 object-not-found "usage on an unknown proxy"
u1 GET "/folders/_/used-bytes?$FH&id=../../etc"
expect 400 invalid-api-params "used-bytes with a non-UUID id"
u1 GET "/folders/_/quota?$FH&id=$A1"
check "quota: scope, no limit" [ "$STATUS $(field "$BODY" "['quota_scope_id'], d['limit_bytes']")" = "200 $AQS 0" ]
adm POST /folders/_/quota "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\", \"input\": {\"size_bytes\": 20971520}}"
check "admin sets the quota" [ "$STATUS $(field "$BODY" "['size_bytes']")" = "200 20971520" ]
u1 GET "/folders/_/quota?$FH&id=$A1"
check "quota read back, max_size in MiB" [ "$(field "$BODY" "['limit_bytes']") $(sql "SELECT max_size FROM vfolders WHERE replace(id::text, '-', '') = '$A1'")" = "20971520 20" ]
sql "UPDATE user_resource_policies SET max_quota_scope_size = 30000000 WHERE name = (SELECT resource_policy FROM users WHERE uuid = '$U1_UUID')" >/dev/null
u1 POST /folders/_/quota "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\", \"input\": {\"size_bytes\": 40000000}}"
expect 400 invalid-api-params "owner quota above the policy cap"
u1 POST /folders/_/quota "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\", \"input\": {\"size_bytes\": 10485760}}"
check "owner sets a quota within the cap" [ "$STATUS $(field "$BODY" "['size_bytes']")" = "200 10485760" ]
sql "UPDATE user_resource_policies SET max_quota_scope_size = -1 WHERE name = (SELECT resource_policy FROM users WHERE uuid = '$U1_UUID')" >/dev/null
u1 POST /folders/_/quota "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\", \"input\": {\"size_bytes\": \"big\"}}"
expect 400 invalid-api-params "quota with a non-integer size"
u2 POST /folders/_/quota "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\", \"input\": {\"size_bytes\": 1}}"
expect 404 object-not-found "quota of another user's folder"
adm POST /folders/_/quota "{\"folder_host\": \"local:volume1\", \"id\": \"$A1\", \"input\": {\"size_bytes\": 0}}"
u1 GET "/folders/_/quota?$FH&id=$A1"
check "quota 0 removes the limit" [ "$(field "$BODY" "['limit_bytes']") $(sql "SELECT max_size IS NULL FROM vfolders WHERE replace(id::text, '-', '') = '$A1'")" = "0 t" ]
adm GET "/folders/_/perf-metric?$FH"
check "perf-metric: the volume's capacity" [ "$STATUS $(field "$BODY" "['metric']['capacity_bytes'] > 0")" = "200 True" ]
u1 GET "/folders/_/perf-metric?$FH"
expect 403 insufficient-privilege "perf-metric is for superadmins"
adm GET /folders/_/perf-metric
expect 400 invalid-api-params "perf-metric without folder_host"
u1 POST /folders/_/change-ownership "{\"vfolder\": \"$A1\", \"user_email\": \"vf2@example.com\"}"
expect 403 insufficient-privilege "change-ownership is for superadmins"
adm POST /folders/_/change-ownership "{\"vfolder\": \"$A1\", \"user_email\": \"nobody@example.com\"}"
expect 404 object-not-found "change-ownership to an unknown user"
adm POST /folders/_/change-ownership '{"vfolder": "not-a-uuid", "user_email": "vf2@example.com"}'
expect 400 invalid-api-params "change-ownership with a bad id"
adm POST /folders/_/change-ownership "{\"vfolder\": \"$PJ\", \"user_email\": \"vf2@example.com\"}"
expect 400 invalid-api-params "change-ownership of a project folder"
adm POST /folders/_/change-ownership "{\"vfolder\": \"$A1\", \"user_email\": \"vf2@example.com\"}"
expect 200 "" "change-ownership to vf2"
u2 GET "/folders/$A1"
check "the new owner owns it" [ "$STATUS $(field "$BODY" "['is_owner']")" = "200 True" ]
u1 GET "/folders/$A1"
expect 404 object-not-found "the old owner no longer sees it"
u1 POST /folders '{"name": "adm1"}'
A2=$(field "$BODY" "['id']")
adm POST /folders/_/change-ownership "{\"vfolder\": \"$A2\", \"user_email\": \"vf2@example.com\"}"
expect 400 invalid-api-params "change-ownership onto a name the new owner has"

grep -E 'event=(vfolder|storage)' "$D"/log/manager.log | grep -iE 'error|fail' | head -5
if [ "$failures" -gt 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all vfolder tests passed"
