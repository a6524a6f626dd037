#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# baic-storage-proxy end to end: manager API, tus uploads and downloads byte for byte, resume, traversal, quota, tokens.
#
#   test_storage_proxy.sh BUILD_DIR
#
# Starts baic-storage-proxy with storage/vfs on a scratch volume. Needs curl and python3
# (for independently signed tokens and a client that cuts its connection mid-body).
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: test_storage_proxy.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SP=$BUILD/core/storage-proxy/baic-storage-proxy
export BAIC_PLUGIN_DIR=$BUILD/plugins-out
. "$HERE/services.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] && command -v curl >/dev/null || { echo "SKIP: needs curl and python3"; exit 77; }
[ -x "$SP" ] || { echo "SKIP: $SP not built (libjwt-dev, libarchive-dev)"; exit 77; }

TMP=$(mktemp -d /tmp/baic-sp-test.XXXXXX)
MSECRET=manager-secret-0123456789
JSECRET=jwt-secret-0123456789abcdef
SP_PID=
FAILS=0
cleanup() {
    [ -n "$SP_PID" ] && kill "$SP_PID" 2>/dev/null && wait "$SP_PID" 2>/dev/null
    if [ "$FAILS" = 0 ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT

ok() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
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

MPORT=$(_baic_free_port)
CPORT=$(_baic_free_port)
while [ "$CPORT" = "$MPORT" ]; do CPORT=$(_baic_free_port); done
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

[volume.capped]
backend = "vfs"
path = "$TMP/capped"
volume_quota_bytes = "1M"

[volume.ceph]
backend = "cephfs"
path = "$TMP/notceph"
CFG
"$SP" -c "$TMP/sp.toml" >"$TMP/sp.log" 2>&1 &
SP_PID=$!
wait_for "grep -q event=storage_proxy_started '$TMP/sp.log'" 10 || { fail "proxy did not start"; cat "$TMP/sp.log"; exit 1; }

M="http://127.0.0.1:$MPORT"
C="http://127.0.0.1:$CPORT"
# mgr PATH BODY -> status; body in $TMP/out
mgr() { curl -s -o "$TMP/out" -w '%{http_code}' -H "X-BackendAI-Storage-Auth-Token: $MSECRET" \
    -H 'Content-Type: application/json' --data-binary "$2" "$M$1"; }
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$TMP/out" "$1"; }
QS=user:5f0d9a2c
VF=$QS/0123456789abcdef0123456789abcdef
FDIR=$VOL/$QS/0123456789abcdef0123456789abcdef
# token OP RELPATH [SIZE] [EXP-OFFSET] [SECRET] [VFID]: an HS256 JWT signed by python (not libjwt)
token() {
    "$PY" - "$1" "$2" "${3:--1}" "${4:-600}" "${5:-$JSECRET}" "${6:-$VF}" <<'PYEOF'
import base64, hashlib, hmac, json, os, sys, time
op, rel, size, dexp, secret, vfid = sys.argv[1:7]
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=")
claims = {"op": op, "volume": os.environ.get("TOKVOL", "local"), "vfid": vfid, "relpath": rel, "exp": int(time.time()) + int(dexp)}
if int(size) >= 0: claims["size"] = int(size)
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b(json.dumps(claims).encode())
print((h + b"." + b(hmac.new(secret.encode(), h, hashlib.sha256).digest())).decode())
PYEOF
}
# upload FILE RELPATH -> status of the single PATCH (0-byte files too)
upload() {
    local size tok
    size=$(stat -c %s "$1")
    tok=$(token upload "$2" "$size")
    curl -s -o "$TMP/up.out" -D "$TMP/up.hdr" -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' \
        -H 'Upload-Offset: 0' -H 'Content-Type: application/offset+octet-stream' \
        --data-binary "@$1" "$C/upload?token=$tok"
}
download() {   # download RELPATH OUT [curl args] -> status
    local tok; tok=$(token download "$1"); shift
    local out=$1; shift
    curl -s -o "$out" -D "$TMP/dl.hdr" -w '%{http_code}' "$@" "$C/download?token=$tok"
}

# ---- manager API ----
check "manager API refuses a wrong secret" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-BackendAI-Storage-Auth-Token: nope' "$M/volumes")" = 401
check "GET /volumes" test "$(curl -s -o "$TMP/out" -w '%{http_code}' -H "X-BackendAI-Storage-Auth-Token: $MSECRET" "$M/volumes")" = 200
check "volume local has quota" grep -q '"quota"' "$TMP/out"
check "volumes report capabilities and health" python3 -c '
import json, sys
v = {x["name"]: x for x in json.load(open(sys.argv[1]))["volumes"]}
assert v["local"]["healthy"] is True and v["local"]["available"] is True, v["local"]
assert set(v["local"]["capabilities"]) == {"quota", "clone", "file-ops", "metric"}, v["local"]
assert v["ceph"]["available"] is False and v["ceph"]["healthy"] is False, v["ceph"]
' "$TMP/out"
check "volume usage of a capped volume" test "$(mgr /volume/usage '{"volume":"capped"}')" = 200
check "a capped volume reports its cap as capacity" python3 -c '
import json, sys
assert json.load(open(sys.argv[1]))["capacity_bytes"] == 1048576
' "$TMP/out"
check "folder create" test "$(mgr /folder/create "{\"volume\":\"local\",\"vfid\":\"$VF\"}")" = 204
check "folder create twice is refused" test "$(mgr /folder/create "{\"volume\":\"local\",\"vfid\":\"$VF\"}")" = 409
check "folder dir on disk" test -d "$FDIR"
check "mkdir" test "$(mgr /folder/file/mkdir "{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"a/b\",\"parents\":true}")" = 200

# ---- uploads and downloads byte for byte ----
: >"$TMP/zero"
printf x >"$TMP/one"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$TMP/big"
for f in zero one big; do
    st=$(upload "$TMP/$f" "a/$f")
    check "upload $f: 204" test "$st" = 204
    check "upload $f: Upload-Offset" grep -qi "^Upload-Offset: $(stat -c %s "$TMP/$f")" "$TMP/up.hdr"
    check "upload $f: same bytes on disk" cmp -s "$TMP/$f" "$FDIR/a/$f"
    st=$(download "a/$f" "$TMP/$f.dl")
    check "download $f: 200" test "$st" = 200
    check "download $f: same bytes" cmp -s "$TMP/$f" "$TMP/$f.dl"
    check "download $f: Content-Length" grep -qi "^Content-Length: $(stat -c %s "$TMP/$f")" "$TMP/dl.hdr"
done
check "download has Last-Modified" grep -qi '^Last-Modified: ' "$TMP/dl.hdr"
check "download has Content-Disposition" grep -qi "^Content-Disposition: attachment;filename=\"big\"; filename\*=UTF-8''big" "$TMP/dl.hdr"
check "no temp files left" test -z "$(ls -A "$FDIR/.upload" 2>/dev/null)"
check "the 100 MiB body went socket to file through pipes (spliced)" \
    grep -q 'event=upload_done .*relpath=a/big .*spliced=[1-9][0-9]\{7\}' "$TMP/sp.log"

# Range and If-Range
LM=$(grep -i '^Last-Modified:' "$TMP/dl.hdr" | cut -d' ' -f2- | tr -d '\r')
st=$(download a/big "$TMP/r1" -H 'Range: bytes=1000-')
check "Range: 206" test "$st" = 206
check "Range: the tail" cmp -s <(tail -c +1001 "$TMP/big") "$TMP/r1"
check "Range: Content-Range" grep -qi "^Content-Range: bytes 1000-$((100 * 1024 * 1024 - 1))/$((100 * 1024 * 1024))" "$TMP/dl.hdr"
st=$(download a/big "$TMP/r2" -H 'Range: bytes=10-19')
check "Range a-b: 10 bytes" test "$st" = 206 -a "$(stat -c %s "$TMP/r2")" = 10
st=$(download a/big "$TMP/r3" -H 'Range: bytes=5-' -H "If-Range: $LM")
check "If-Range matching: 206" test "$st" = 206
st=$(download a/big "$TMP/r4" -H 'Range: bytes=5-' -H 'If-Range: Thu, 01 Jan 1970 00:00:00 GMT')
check "If-Range stale: 200 whole file" test "$st" = 200 && cmp -s "$TMP/big" "$TMP/r4"
check "Range past the end: 416" test "$(download a/big "$TMP/r5" -H 'Range: bytes=999999999-')" = 416
check "missing file: 404 storage/file-not-found" test "$(download a/nothere "$TMP/nf")" = 404 -a \
    -n "$(grep -l 'storage/file-not-found' "$TMP/nf")"

# directory as a zip
st=$(download a "$TMP/a.zip" --get -d archive=true)
check "archive: 200" test "$st" = 200
check "archive: chunked zip" grep -qi '^Transfer-Encoding: chunked' "$TMP/dl.hdr"
check "archive: holds a/one with its byte" "$PY" -c "
import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); assert z.read('a/one')==b'x'; assert z.read('a/big')==open(sys.argv[2],'rb').read()" "$TMP/a.zip" "$TMP/big"
check "directory without archive: 400" test "$(download a "$TMP/d")" = 400

# ---- tus: OPTIONS, HEAD, resume after a cut connection ----
tok=$(token upload r.bin $((20 * 1024 * 1024)))
check "OPTIONS: Tus-Version" sh -c "curl -s -D - -o /dev/null -X OPTIONS '$C/upload?token=$tok' | grep -qi '^Tus-Version: 1.0.0'"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$TMP/r.bin"
# Sends the headers and 7 MiB of a 20 MiB body, then closes the connection.
"$PY" - "$CPORT" "$tok" "$TMP/r.bin" <<'PYEOF'
import socket, sys
port, tok, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("PATCH /upload?token=%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
           "Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n" % (tok, len(data))).encode())
s.sendall(data[:7 * 1024 * 1024])
s.close()
PYEOF
head_off() { curl -s -I "$C/upload?token=$tok" | tr -d '\r' | awk -F': ' 'tolower($1)=="upload-offset" {print $2}'; }
wait_for 'grep -q event=upload_cut "$TMP/sp.log"' 10
OFF=$(head_off)
check "HEAD after the cut: Upload-Offset is what arrived ($OFF)" test "$OFF" = $((7 * 1024 * 1024))
check "HEAD: Upload-Length and no-store" sh -c "curl -s -I '$C/upload?token=$tok' | grep -qi '^Upload-Length: $((20 * 1024 * 1024))' && curl -s -I '$C/upload?token=$tok' | grep -qi '^Cache-Control: no-store'"
check "PATCH at a wrong offset: 409" test "$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' \
    -H 'Upload-Offset: 5' -H 'Content-Type: application/offset+octet-stream' --data-binary x "$C/upload?token=$tok")" = 409
st=$(tail -c +$((OFF + 1)) "$TMP/r.bin" | curl -s -o /dev/null -D "$TMP/up.hdr" -w '%{http_code}' -X PATCH \
    -H 'Tus-Resumable: 1.0.0' -H "Upload-Offset: $OFF" -H 'Content-Type: application/offset+octet-stream' \
    --data-binary @- "$C/upload?token=$tok")
check "resumed PATCH: 204" test "$st" = 204
check "resumed upload: same bytes" cmp -s "$TMP/r.bin" "$FDIR/r.bin"
# A chunked body (no Content-Length) lands byte for byte too: its pieces are not where the
# socket read put them, unlike a plain body's.
tok=$(token upload ch.bin "$(stat -c %s "$TMP/r.bin")")
st=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' -H 'Transfer-Encoding: chunked' \
    --data-binary "@$TMP/r.bin" "$C/upload?token=$tok")
check "chunked PATCH: 204 ($st)" test "$st" = 204
check "chunked upload: same bytes" cmp -s "$TMP/r.bin" "$FDIR/ch.bin"
check "chunked upload removed (usage figures below)" test "$(mgr /folder/file/delete "{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpaths\":[\"ch.bin\"]}")" = 204

# ---- clients that go away mid-download (pipelined too): nothing may leak or hang ----
"$PY" - "$CPORT" "$(token download a/big)" "$(token download a/one)" "$(token download a)" <<'PYEOF'
import socket, sys
port, big, one, dir_ = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
for reqs in ([big], [big, one, big], [one, big], [dir_ + "&archive=true"]):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"".join(("GET /download?token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % t).encode() for t in reqs))
    s.recv(300000)
    s.close()
PYEOF
st=$(download a/one "$TMP/after-cut")
check "proxy serves after clients cut downloads" test "$st" = 200

# ---- tokens ----
tu() { curl -s -o "$TMP/tok.out" -w '%{http_code}' "$C/download?token=$1"; }
check "no token: 401" test "$(curl -s -o /dev/null -w '%{http_code}' "$C/download")" = 401
check "bad signature: 401" test "$(tu "$(token download a/one -1 600 wrong-secret-0123456789)")" = 401
check "expired: 401" test "$(tu "$(token download a/one -1 -10)")" = 401
check "expired: says so" grep -q 'expired' "$TMP/tok.out"
check "upload token used to download: 403" test "$(tu "$(token upload a/one 1)")" = 403
check "download token used to upload: 403" test "$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Upload-Offset: 0' \
    --data-binary x "$C/upload?token=$(token download a/one)")" = 403
check "a token is for its own path only" test "$(tu "$(token download a/one)")" = 200 -a "$(cmp -s "$TMP/tok.out" "$TMP/one" && echo same)" = same
check "alg none is refused" test "$(tu "$("$PY" -c '
import base64,json,time
b=lambda x: base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=").decode()
print(b({"alg":"none","typ":"JWT"})+"."+b({"op":"download","volume":"local","vfid":"'"$VF"'","relpath":"a/one","exp":int(time.time())+60})+".")')")" = 401
check "proxy-issued token works" sh -c "test \"\$(curl -s -H 'X-BackendAI-Storage-Auth-Token: $MSECRET' \
    -d '{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"a/one\"}' $M/folder/file/download |
    $PY -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])' | xargs -I{} curl -s '$C/download?token={}')\" = x"

# ---- path traversal, refused on every op ----
ln -s /etc "$FDIR/evil-dir"
ln -s /etc/hostname "$FDIR/evil-file"
for p in ../../../../etc/hostname /etc/hostname a/../../x evil-dir/hostname evil-file; do
    check "download $p: refused" test "$(download "$p" "$TMP/t")" = 403 -o "$(download "$p" "$TMP/t")" = 400
    tok=$(token upload "$p" 1)
    st=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Upload-Offset: 0' \
        -H 'Content-Type: application/offset+octet-stream' --data-binary x "$C/upload?token=$tok")
    check "upload $p: refused ($st)" test "$st" = 403 -o "$st" = 409
    for op in list info mkdir delete; do
        case $op in
            list) b="{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"$p\"}" ;;
            info) b="{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"$p\"}" ;;
            mkdir) b="{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"$p/sub\"}" ;;
            delete) b="{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpaths\":[\"$p/x\"]}" ;;
        esac
        st=$(mgr "/folder/file/$op" "$b")
        # info on the link itself describes the link (never its target): allowed
        [ "$op" = info ] && [ "$st" = 200 ] && grep -q '"type":"SYMLINK"' "$TMP/out" && st=403
        check "$op $p: refused ($st)" test "$st" = 403 -o "$st" = 207
    done
    st=$(mgr /folder/file/move "{\"volume\":\"local\",\"vfid\":\"$VF\",\"src_relpath\":\"a/one\",\"dst_relpath\":\"$p/x\"}")
    check "move to $p: refused ($st)" test "$st" = 403
    st=$(mgr /folder/file/move "{\"volume\":\"local\",\"vfid\":\"$VF\",\"src_relpath\":\"$p\",\"dst_relpath\":\"stolen\"}")
    check "move from $p: refused ($st)" test "$st" = 403 -o "$st" = 200 -a ! -e "$FDIR/stolen" -o "$p" = evil-file -o "$p" = evil-dir/hostname
done
check "nothing was written outside" test ! -e /etc/hostname/x -a ! -e "$VOL/x"
check "/etc/hostname intact" test -s /etc/hostname

# ---- quota: a clear error and no partial file ----
check "quota set 200 MiB" test "$(mgr /quota-scope/set "{\"volume\":\"local\",\"qsid\":\"$QS\",\"limit_bytes\":$((200 * 1024 * 1024))}")" = 204
check "quota get" test "$(mgr /quota-scope/get "{\"volume\":\"local\",\"qsid\":\"$QS\"}")" = 200 -a "$(jget '["limit_bytes"]')" = $((200 * 1024 * 1024))
USED=$(jget '["used_bytes"]')
check "quota usage counts the uploads ($USED)" test "$USED" = $((120 * 1024 * 1024 + 1))
head -c $((90 * 1024 * 1024)) /dev/urandom >"$TMP/over"
st=$(upload "$TMP/over" over.bin)
check "upload past the quota: 412" test "$st" = 412
check "upload past the quota: quota-exceeded problem" grep -q 'quota-exceeded' "$TMP/up.out"
check "upload past the quota: no file" test ! -e "$FDIR/over.bin"
check "upload past the quota: no temp file" test -z "$(ls -A "$FDIR/.upload" 2>/dev/null)"
# A token that understates nothing but a concurrent writer ate the room: caught mid-body.
check "quota lowered" test "$(mgr /quota-scope/set "{\"volume\":\"local\",\"qsid\":\"$QS\",\"limit_bytes\":$((121 * 1024 * 1024))}")" = 204
head -c $((3 * 1024 * 1024)) /dev/urandom >"$TMP/over2"
st=$(upload "$TMP/over2" over2.bin)
check "second upload past the quota: 412" test "$st" = 412
check "second upload: no file, no temp" test ! -e "$FDIR/over2.bin" -a -z "$(ls -A "$FDIR/.upload" 2>/dev/null)"
check "quota unset" test "$(mgr /quota-scope/unset "{\"volume\":\"local\",\"qsid\":\"$QS\"}")" = 204
check "upload after unset: 204" test "$(upload "$TMP/over2" over2.bin)" = 204

# ---- the volume cap: room is asked for before a byte is stored ----
CVF=$QS/cafecafecafecafecafecafecafecafe
CDIR=$TMP/capped/$CVF
check "folder on the capped volume" test "$(mgr /folder/create "{\"volume\":\"capped\",\"vfid\":\"$CVF\"}")" = 204
# cup FILE RELPATH [UPLOAD-LENGTH]: one PATCH into the capped volume -> status
cup() {
    local tok
    tok=$(TOKVOL=capped token upload "$2" "${3:-$(stat -c %s "$1")}" 600 "$JSECRET" "$CVF")
    curl -s -o "$TMP/up.out" -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' \
        -H 'Upload-Offset: 0' -H 'Content-Type: application/offset+octet-stream' \
        --data-binary "@$1" "$C/upload?token=$tok"
}
head -c $((700 * 1024)) /dev/urandom >"$TMP/c700"
head -c $((200 * 1024)) /dev/urandom >"$TMP/c200"
check "capped: 700 KiB of 1 MiB fits" test "$(cup "$TMP/c700" first.bin)" = 204
check "capped: first upload intact" cmp -s "$TMP/c700" "$CDIR/first.bin"
# Below the cap when it starts, past it by its own size: refused before it is stored.
st=$(cup "$TMP/c700" second.bin)
check "capped: a second 700 KiB is refused ($st)" test "$st" = 412
check "capped: quota-exceeded problem" grep -q 'quota-exceeded' "$TMP/up.out"
check "capped: the problem says the volume is short of room" grep -q 'the volume holds' "$TMP/up.out"
check "capped: no file, no temp file" test ! -e "$CDIR/second.bin" -a -z "$(ls -A "$CDIR/.upload" 2>/dev/null)"
check "capped: the cap holds" test "$(du -sb --apparent-size "$CDIR" | cut -f1)" -lt 1048576
check "capped: 200 KiB still fits" test "$(cup "$TMP/c200" third.bin)" = 204
check "capped: third upload intact" cmp -s "$TMP/c200" "$CDIR/third.bin"
# A body longer than Upload-Length is refused from its Content-Length, before reading it.
st=$(cup "$TMP/c200" short.bin 1000)
check "Content-Length past Upload-Length: 413 ($st)" test "$st" = 413
check "Content-Length past Upload-Length: nothing stored" test ! -e "$CDIR/short.bin" -a -z "$(ls -A "$CDIR/.upload" 2>/dev/null)"
# Room promised to an upload in flight counts: 900 KiB are used, a held 100 KiB upload has
# started, so a 50 KiB one does not fit until the held one goes.
head -c $((50 * 1024)) /dev/urandom >"$TMP/c50"
htok=$(TOKVOL=capped token upload held.bin $((100 * 1024)) 600 "$JSECRET" "$CVF")
"$PY" - "$CPORT" "$htok" "$TMP/held.go" <<'PYEOF' &
import os, socket, sys, time
port, tok, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("PATCH /upload?token=%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
           "Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n" % (tok, 100 * 1024)).encode())
s.sendall(b"x" * 10)
end = time.time() + 20
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
s.close()
PYEOF
HELD=$!
wait_for '[ -n "$(ls -A "$CDIR/.upload" 2>/dev/null)" ]' 10
st=$(cup "$TMP/c50" fifty.bin)
check "capped: room promised to an upload in flight counts ($st)" test "$st" = 412 -a ! -e "$CDIR/fifty.bin"
touch "$TMP/held.go"
wait "$HELD"
wait_for 'grep -q "event=upload_cut.*held.bin" "$TMP/sp.log"' 10
check "capped: once the held upload is cut, 50 KiB fit" test "$(cup "$TMP/c50" fifty.bin)" = 204

# ---- folder usage, clone, delete ----
check "usage" test "$(mgr /folder/usage "{\"volume\":\"local\",\"vfid\":\"$VF\"}")" = 200
check "usage after rescan" test "$(mgr /folder/usage "{\"volume\":\"local\",\"vfid\":\"$VF\",\"rescan\":true}")" = 200
VF2=$QS/fedcba9876543210fedcba9876543210
check "clone" test "$(mgr /folder/clone "{\"src_volume\":\"local\",\"src_vfid\":\"$VF\",\"dst_vfid\":\"$VF2\"}")" = 204
check "clone has the same bytes" cmp -s "$TMP/big" "$VOL/$QS/fedcba9876543210fedcba9876543210/a/big"
check "clone keeps symlinks as links" test -L "$VOL/$QS/fedcba9876543210fedcba9876543210/evil-dir"
check "list" test "$(mgr /folder/file/list "{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"a\"}")" = 200 -a -n "$(grep -o '"name":"big"' "$TMP/out")"
check "rename" test "$(mgr /folder/file/rename "{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpath\":\"a/one\",\"new_name\":\"uno\"}")" = 204 -a -e "$FDIR/a/uno"
check "delete non-empty dir needs recursive" test "$(mgr /folder/file/delete "{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpaths\":[\"a\"]}")" != 204
check "delete recursive" test "$(mgr /folder/file/delete "{\"volume\":\"local\",\"vfid\":\"$VF\",\"relpaths\":[\"a\"],\"recursive\":true}")" = 204 -a ! -e "$FDIR/a"
check "usage drops after delete" test "$(mgr /folder/usage "{\"volume\":\"local\",\"vfid\":\"$VF\"}")" = 200 -a "$(jget '["used_bytes"]')" = $((20 * 1024 * 1024 + 3 * 1024 * 1024))
check "folder delete" test "$(mgr /folder/delete "{\"volume\":\"local\",\"vfid\":\"$VF2\"}")" = 204 -a ! -e "$VOL/$QS/fedcba9876543210fedcba9876543210"
check "/etc intact after deleting a folder holding a link to it" test -s /etc/hostname

kill "$SP_PID"
wait "$SP_PID"
check "clean shutdown" test $? = 0
SP_PID=
echo "$FAILS failure(s)"
[ "$FAILS" = 0 ]
