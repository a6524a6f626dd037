#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `baic folder upload/download/files/mkdir/...` on the system `baic up --no-agent` runs (the real manager's /folders API and storage proxy): byte-equal round trips, resume after a cut upload, errors.
#
#   test_folder_transfer.sh BUILD_DIR
#
# Exit 0 pass, 1 fail, 77 skip: curl, python3, openssl, redis-server or the PostgreSQL server
# missing, or baic-storage-proxy not built.
set -u
BUILD=$(cd "${1:?usage: test_folder_transfer.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
for t in curl openssl redis-server; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
[ -n "$PY" ] || { echo "SKIP: needs python3"; exit 77; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
    { echo "SKIP: PostgreSQL server not installed"; exit 77; }
[ -x "$BUILD/core/storage-proxy/baic-storage-proxy" ] ||
    { echo "SKIP: baic-storage-proxy not built (libjwt-dev, libarchive-dev)"; exit 77; }
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] || { echo "FAIL: baic not built"; exit 1; }

TMP=$(mktemp -d /tmp/baic-folder-xfer.XXXXXX) && chmod 711 "$TMP" || exit 1
D=$TMP/data
FAILS=0
cleanup() {
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    if [ "$FAILS" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP
ok() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); [ -s "$TMP/e" ] && sed 's/^/       /' "$TMP/e" | head -5; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

if ! "$BAIC" up --no-agent --data-dir "$D" >"$TMP/up.log" 2>&1; then
    cat "$TMP/up.log"; tail -20 "$D"/log/*.log; FAILS=1; exit 1
fi
grep -q "^storage proxy: started" "$TMP/up.log" || { fail "no storage proxy: $(cat "$TMP/up.log")"; exit 1; }
VOL=$D/vfolders
CPORT=$(sed -n 's/^listen_client = "127.0.0.1:\([0-9]*\)"$/\1/p' "$D/etc/storage-proxy.toml")
. "$D/user.env"
HP=${BACKEND_ENDPOINT#http://}
# A signed call of the user's, for the steps the CLI does not take itself.
signed() { # METHOD PATH BODY
    local args=(-s -X "$1") h
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" "$1" "$2" "$HP" \
        "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY")
    curl "${args[@]}" --data-binary "$3" "$BACKEND_ENDPOINT$2"
}

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
TOK=$(signed POST /folders/f1/request-upload '{"path":"resumed.bin","size":20971520}' |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
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

# The manager is down: a clear error, not a hang.
MPID=$(cat "$D/run/manager.pid")
kill "$MPID"; while kill -0 "$MPID" 2>/dev/null; do sleep 0.1; done
B folder ls; check "no manager -> exit 1 with a message" bash -c "[ $? = 1 ] && [ -s '$TMP/e' ]"

if [ "$FAILS" != 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "all checks passed"
