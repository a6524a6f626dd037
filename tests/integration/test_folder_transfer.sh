#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `baic folder upload/download/files/mkdir/...` against a real baic-storage-proxy, with a small stand-in for the manager's /folders routes that signs the proxy's tokens: byte-equal round trips, resume after a cut upload, errors.
#
#   test_folder_transfer.sh BUILD_DIR
#
# Needs curl and python3; exit 77 (skipped) without them or without baic-storage-proxy.
# The stand-in checks that every manager call is signed (Authorization, Date headers) and
# answers as api-contract §5 says; the file transfers are the real proxy's.
set -u
BUILD=$(cd "${1:?usage: test_folder_transfer.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SP=$BUILD/core/storage-proxy/baic-storage-proxy
BAIC=$BUILD/core/cli/baic
export BAIC_PLUGIN_DIR=$BUILD/plugins-out
. "$HERE/services.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] && command -v curl >/dev/null || { echo "SKIP: needs curl and python3"; exit 77; }
[ -x "$SP" ] || { echo "SKIP: $SP not built (libjwt-dev, libarchive-dev)"; exit 77; }
[ -x "$BAIC" ] || { echo "FAIL: $BAIC not built"; exit 1; }

TMP=$(mktemp -d /tmp/baic-folder-xfer.XXXXXX)
MSECRET=manager-secret-0123456789
JSECRET=jwt-secret-0123456789abcdef
SP_PID= MG_PID=
FAILS=0
cleanup() {
    [ -n "$SP_PID" ] && kill "$SP_PID" 2>/dev/null && wait "$SP_PID" 2>/dev/null
    [ -n "$MG_PID" ] && kill "$MG_PID" 2>/dev/null && wait "$MG_PID" 2>/dev/null
    if [ "$FAILS" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); [ -s "$TMP/e" ] && sed 's/^/       /' "$TMP/e" | head -5; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
wait_for() {
    local cond=$1 limit=${2:-10} end
    end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
    while [ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do
        eval "$cond" && return 0
        sleep 0.05
    done
    return 1
}

MPORT=$(_baic_free_port); CPORT=$(_baic_free_port); GPORT=$(_baic_free_port)
VOL=$TMP/vol
mkdir -p "$VOL"
cat >"$TMP/sp.toml" <<CFG
[storage-proxy]
listen_manager = "127.0.0.1:$MPORT"
listen_client = "127.0.0.1:$CPORT"
manager_secret = "$MSECRET"
jwt_secret = "$JSECRET"

[volume.local]
backend = "vfs"
path = "$VOL"
CFG
"$SP" -c "$TMP/sp.toml" >"$TMP/sp.log" 2>&1 &
SP_PID=$!
wait_for "grep -q event=storage_proxy_started '$TMP/sp.log'" 10 || { fail "proxy did not start"; cat "$TMP/sp.log"; exit 1; }

# The stand-in manager: folders in memory, created on the real proxy, tokens signed here.
cat >"$TMP/mgr.py" <<'PYEOF'
import base64, hashlib, hmac, json, sys, time, urllib.request, urllib.parse, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, mport, cport, msecret, jsecret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
folders = {}   # name -> id
trashed = set()
def b64(x): return base64.urlsafe_b64encode(x).rstrip(b"=")
def jwt(claims):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return (h + b"." + b64(hmac.new(jsecret.encode(), h, hashlib.sha256).digest())).decode()
def proxy(path, body):
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (mport, path), json.dumps(body).encode(),
                                 {"X-BackendAI-Storage-Auth-Token": msecret, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r: return r.status, r.read()
    except urllib.error.HTTPError as e: return e.code, e.read()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, status, obj):
        b = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def problem(self, status, title): self.send(status, {"type": "https://api.backend.ai/probs/x", "title": title})
    def handle_any(self, method):
        if not self.headers.get("Authorization", "").startswith("BackendAI signMethod=HMAC-SHA256, credential=") \
                or not self.headers.get("Date"):
            return self.problem(401, "unsigned")
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try: body = json.loads(raw) if raw else {}
        except ValueError: return self.problem(400, "malformed JSON")
        u = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in u.path.split("/")[1:]]
        q = dict(urllib.parse.parse_qsl(u.query))
        if parts[0] != "folders": return self.problem(404, "url-not-found")
        if len(parts) == 1:
            if method == "GET":
                return self.send(200, [{"name": k, "id": v, "host": "local:local", "permission": "rw",
                                        "status": "delete-pending" if k in trashed else "ready"} for k, v in folders.items()])
            name = body.get("name")
            if not isinstance(name, str) or "/" in name or not name: return self.problem(400, "invalid name")
            if name in folders: return self.problem(400, "already exists")
            vid = uuid.uuid4().hex
            st, _ = proxy("/folder/create", {"volume": "local", "vfid": "user:t/" + vid})
            if st != 204: return self.problem(500, "proxy said %d" % st)
            folders[name] = vid
            return self.send(201, {"id": vid, "name": name, "host": body.get("host") or "local:local"})
        if parts[1] == "purge" and method == "POST":
            for k, v in list(folders.items()):
                if v == body.get("id") and k in trashed:
                    proxy("/folder/delete", {"volume": "local", "vfid": "user:t/" + v})
                    del folders[k]; trashed.discard(k)
                    return self.send(204, None)
            return self.problem(404, "not in the trash bin")
        name = parts[1]
        if name not in folders or name in trashed: return self.problem(404, "folder not found")
        vfid = "user:t/" + folders[name]
        verb = parts[2] if len(parts) > 2 else ""
        if verb == "" and method == "GET": return self.send(200, {"name": name, "id": folders[name], "host": "local:local"})
        if verb == "" and method == "DELETE":
            trashed.add(name); return self.send(204, None)
        if verb in ("request-upload", "request-download"):
            p = body.get("path")
            if not isinstance(p, str): return self.problem(400, "path")
            c = {"op": verb[8:], "volume": "local", "vfid": vfid, "relpath": p, "exp": int(time.time()) + 600}
            if verb == "request-upload":
                if not isinstance(body.get("size"), int): return self.problem(400, "size")
                c["size"] = body["size"]
            return self.send(200, {"token": jwt(c), "url": "http://127.0.0.1:%s/%s" % (cport, c["op"])})
        if verb == "files":
            st, out = proxy("/folder/file/list", {"volume": "local", "vfid": vfid, "relpath": q.get("path", ".")})
            if st != 200: return self.problem(st, "list failed")
            return self.send(200, {"items": [{"name": i.get("name"), "type": i.get("type"), "size": i.get("size", 0),
                                              "modified": str(i.get("modified", ""))} for i in json.loads(out).get("items", [])]})
        if verb == "mkdir":
            st, out = proxy("/folder/file/mkdir", {"volume": "local", "vfid": vfid, "relpath": body.get("path"), "parents": True})
            if st == 200: return self.send(200, {"results": {"success": [{"item": body.get("path"), "msg": None}], "failed": []}})
            return self.send(207, {"results": {"success": [], "failed": [{"item": body.get("path"), "msg": out.decode()}]}})
        return self.problem(404, "url-not-found")
    def do_GET(self): self.handle_any("GET")
    def do_POST(self): self.handle_any("POST")
    def do_DELETE(self): self.handle_any("DELETE")
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PYEOF
"$PY" "$TMP/mgr.py" "$GPORT" "$MPORT" "$CPORT" "$MSECRET" "$JSECRET" >"$TMP/mgr.log" 2>&1 &
MG_PID=$!
wait_for "curl -s -o /dev/null http://127.0.0.1:$GPORT/" 10 || { fail "stand-in manager did not start"; cat "$TMP/mgr.log"; exit 1; }

export BACKEND_ENDPOINT=http://127.0.0.1:$GPORT BACKEND_ACCESS_KEY=AKIATEST BACKEND_SECRET_KEY=secret
B() { "$BAIC" "$@" >"$TMP/o" 2>"$TMP/e"; }

B folder create f1; check "create" bash -c "[ $? = 0 ] && grep -q 'folder f1 created' '$TMP/o'"
B folder ls; check "ls" grep -q '^f1 ' "$TMP/o"
FDIR=$(find "$VOL" -mindepth 2 -maxdepth 2 -type d | head -1)
check "the folder is on the proxy's volume" [ -d "$FDIR" ]

printf 'hello\n' >"$TMP/small"
: >"$TMP/zero"
head -c $((150 * 1024 * 1024 + 7)) /dev/urandom >"$TMP/big"   # more than two 64 MiB PATCHes
B folder upload f1 "$TMP/small"; check "upload small (remote = base name)" bash -c "[ $? = 0 ] && cmp -s '$TMP/small' '$FDIR/small'"
B folder upload f1 "$TMP/zero" z/zero.bin; check "upload empty into a new dir" bash -c "[ $? = 0 ] && [ -f '$FDIR/z/zero.bin' ] && [ ! -s '$FDIR/z/zero.bin' ]"
B folder upload f1 "$TMP/big" big.bin; check "upload 150 MiB in three PATCHes" bash -c "[ $? = 0 ] && cmp -s '$TMP/big' '$FDIR/big.bin'"

# Resume: the first 10 MiB arrive through a cut connection, then baic continues from there.
head -c $((20 * 1024 * 1024)) /dev/urandom >"$TMP/resume"
TOK=$(curl -s -X POST -H 'Authorization: BackendAI signMethod=HMAC-SHA256, credential=AKIATEST:x' -H "Date: now" \
    -H 'Content-Type: application/json' --data-binary '{"path":"resumed.bin","size":20971520}' \
    "http://127.0.0.1:$GPORT/folders/f1/request-upload" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
head -c $((10 * 1024 * 1024)) "$TMP/resume" >"$TMP/resume.head"
curl -s -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' --data-binary "@$TMP/resume.head" \
    "http://127.0.0.1:$CPORT/upload?token=$TOK"
off=$(curl -s -I -H 'Tus-Resumable: 1.0.0' "http://127.0.0.1:$CPORT/upload?token=$TOK" | tr -d '\r' | sed -n 's/^Upload-Offset: //ip')
check "the proxy holds a partial upload" [ "$off" = $((10 * 1024 * 1024)) ]
B folder upload f1 "$TMP/resume" resumed.bin
check "baic resumes at the proxy's offset" bash -c "[ $? = 0 ] && grep -q 'resuming at byte 10485760 of 20971520' '$TMP/o'"
check "the resumed file is byte-equal" cmp -s "$TMP/resume" "$FDIR/resumed.bin"

B folder download f1 big.bin "$TMP/big.back"; check "download 150 MiB byte-equal" bash -c "[ $? = 0 ] && cmp -s '$TMP/big' '$TMP/big.back'"
B folder download f1 z/zero.bin "$TMP/zero.back"; check "download empty" bash -c "[ $? = 0 ] && [ -f '$TMP/zero.back' ] && [ ! -s '$TMP/zero.back' ]"
mkdir "$TMP/here"
(cd "$TMP/here" && "$BAIC" folder download f1 small >/dev/null 2>&1)
check "download defaults to the base name" cmp -s "$TMP/small" "$TMP/here/small"
B folder download f1 missing "$TMP/missing"
check "a missing file: exit 1, no file, no .part" bash -c "[ $? = 1 ] && [ ! -e '$TMP/missing' ] && [ ! -e '$TMP/missing.part' ] && grep -q 404 '$TMP/e'"
B folder download f1 ../../etc/passwd "$TMP/passwd"
check "download outside the folder is refused" bash -c "[ $? = 1 ] && [ ! -e '$TMP/passwd' ]"
B folder upload f1 "$TMP/small" ../escape
check "upload outside the folder is refused" bash -c "[ $? = 1 ] && ! find '$VOL' -name escape | grep -q ."
B folder upload f1 "$TMP"; check "uploading a directory -> exit 2" [ $? = 2 ]
B folder upload nosuch "$TMP/small"; check "upload into a missing folder -> 404" bash -c "[ $? = 1 ] && grep -q 404 '$TMP/e'"
B folder mkdir f1 a/b/c; check "mkdir with parents" bash -c "[ $? = 0 ] && [ -d '$FDIR/a/b/c' ]"
B folder files f1; check "files lists what is there" bash -c "[ $? = 0 ] && grep -q ' big.bin$' '$TMP/o' && grep -q ' a$' '$TMP/o'"
B folder info f1; check "info" bash -c "[ $? = 0 ] && grep -q '^name  *f1' '$TMP/o'"
B folder bogus; check "unknown verb -> 2" [ $? = 2 ]
B folder create; check "create without a name -> 2" [ $? = 2 ]
B session create img s1 --mount 'f1:/home/work/x:rx'; check "bad --mount permission -> 2" [ $? = 2 ]
B session create img s1 --mount ''; check "empty --mount -> 2" [ $? = 2 ]
B run img -c x --mount f1 --mount f1; check "the same folder twice -> 2" [ $? = 2 ]
B folder rm f1; check "rm moves to the trash bin" bash -c "[ $? = 0 ] && grep -q 'trash bin' '$TMP/o' && [ -d '$FDIR' ]"
B folder ls; check "ls shows it in the trash bin" grep -qE '^f1 .*delete-pending' "$TMP/o"
B folder rm --purge f1; check "rm --purge (trashed already: no second DELETE)" [ $? = 0 ]
check "the folder left the volume" [ ! -d "$FDIR" ]
B folder create f2; B folder rm --purge f2; check "rm --purge of a live folder" bash -c "[ $? = 0 ] && grep -q 'f2 deleted' '$TMP/o'"
B folder ls; check "both are gone" bash -c "! grep -qE '^f[12] ' '$TMP/o'"
B folder rm --purge f1; check "rm --purge of a missing folder fails" bash -c "[ $? = 1 ] && grep -q 'no folder f1' '$TMP/e'"

# The stand-in manager is down: a clear error, not a hang.
kill "$MG_PID"; wait "$MG_PID" 2>/dev/null; MG_PID=
B folder ls; check "no manager -> exit 1 with a message" bash -c "[ $? = 1 ] && [ -s '$TMP/e' ]"

if [ "$FAILS" != 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "all checks passed"
