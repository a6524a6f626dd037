#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The folder user flow through `baic` on the system `baic up` runs (storage proxy included): create a folder, upload, mount it into a session, read it there, ro refuses writes, download byte for byte.
#
#   tests/integration/test_folder_cli.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip: not root; crun/skopeo/umoci/docker-registry/PostgreSQL
# missing; baic-storage-proxy not built; or the manager has no /folders routes (404).
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
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
    skip "PostgreSQL server not installed"
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] && [ -x "$BUILD/core/agent/baic-agent" ] \
    || skip "baic, baic-manager or baic-agent not built"
[ -x "$BUILD/core/storage-proxy/baic-storage-proxy" ] || skip "baic-storage-proxy not built"
[ -f "$BUILD/plugins-out/runtime_oci.so" ] || skip "runtime/oci not built"
# Sessions run code through the static kernel runner; a sanitizer build's runner is dynamic
# and cannot start inside a container (test_kernel_runner_container skips likewise).
file -L "$BUILD/core/kernel-runner/baic-kernel-runner" 2>/dev/null | grep -q 'statically linked' \
    || skip "the kernel runner is dynamic (sanitizer build): sessions cannot run code"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

T=$(mktemp -d /tmp/baic-folder.XXXXXX) && chmod 711 "$T" || exit 1
D=$T/data
failures=0
DOWN_DONE=
cleanup() {
    # Sessions a failed check left behind: their containers would outlive `baic down`.
    if [ -z "$DOWN_DONE" ] && [ -n "${BACKEND_ENDPOINT:-}" ]; then
        for s in fold-s1 fold-s2 fold-s3 fold-s4; do "$BAIC" session rm $s >/dev/null 2>&1; done
    fi
    [ -z "$DOWN_DONE" ] && "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    if [ $failures = 0 ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); [ -s "$T/e" ] && sed 's/^/     /' "$T/e" | head -5; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

CACHE=${BAIC_E2E_CACHE:-/var/tmp/baic-e2e-cache}
mkdir -p "$CACHE" "$D" && ln -s "$CACHE" "$D/cache"
export BAIC_NO_PYTHON=1
if ! "$BAIC" up --data-dir "$D" >"$T/up.log" 2>&1; then
    cat "$T/up.log"; tail -20 "$D"/log/*.log; failures=1; exit 1
fi
grep -q "agent: started" "$T/up.log" || { bad "no agent: $(cat "$T/up.log")"; exit 1; }

# ---- what `baic up` set up for folders ----
check "up started the storage proxy" grep -q "^storage proxy: started" "$T/up.log"
check "up names the folder volume" grep -q "folders: $D/vfolders" "$T/up.log"
check "up prints a folder example" grep -q "baic folder upload" "$T/up.log"
check "storage-proxy.toml is 0600" [ "$(stat -c %a "$D/etc/storage-proxy.toml")" = 600 ]
check "the vfs volume is DATA/vfolders" grep -q "path = \"$D/vfolders\"" "$D/etc/storage-proxy.toml"
check "manager.toml has [volumes] default_host local:local" \
    grep -q '^default_host = "local:local"' "$D/etc/manager.toml"
msecret=$(sed -n 's/^manager_secret = "\(.*\)"$/\1/p' "$D/etc/storage-proxy.toml")
jsecret=$(sed -n 's/^jwt_secret = "\(.*\)"$/\1/p' "$D/etc/storage-proxy.toml")
check "secrets are generated (64 hex) and differ" bash -c \
    "[[ '$msecret' =~ ^[0-9a-f]{64}$ ]] && [[ '$jsecret' =~ ^[0-9a-f]{64}$ ]] && [ '$msecret' != '$jsecret' ]"
check "manager.toml carries the proxy's secrets" bash -c \
    "grep -q '^secret = \"$msecret\"' '$D/etc/manager.toml' && grep -q '^jwt_secret = \"$jsecret\"' '$D/etc/manager.toml'"
mport=$(sed -n 's/^listen_manager = "127.0.0.1:\([0-9]*\)"$/\1/p' "$D/etc/storage-proxy.toml")
check "manager.toml points at the proxy's manager API" \
    grep -q "^manager_api = \"http://127.0.0.1:$mport\"" "$D/etc/manager.toml"
SP_PID=$(cat "$D/run/storage-proxy.pid" 2>/dev/null)
check "the proxy answers with its secret" test "$(curl -s -o /dev/null -w '%{http_code}' \
    -H "X-BackendAI-Storage-Auth-Token: $msecret" "http://127.0.0.1:$mport/status")" = 200
"$BAIC" up --data-dir "$D" >"$T/up2.log" 2>&1
check "a second up reuses the running proxy" grep -q "^storage proxy: running (pid $SP_PID)" "$T/up2.log"
check "up lets the default domain use local:local" grep -q "^folders: domain default may use host local:local" "$T/up.log"
check "a second up does not append [volumes] again" \
    test "$(grep -c '^\[volumes\]' "$D/etc/manager.toml")" = 1

down_checks() {
    "$BAIC" down --data-dir "$D" >"$T/down.log" 2>&1
    DOWN_DONE=1
    check "down stops the storage proxy" grep -q "^stopped storage proxy (pid $SP_PID)" "$T/down.log"
    # (a zombie left to a PID 1 that does not reap counts as gone)
    check "the proxy process is gone" bash -c "[ -z \"\$(ps -o stat= -p $SP_PID | grep -v '^Z')\" ]"
    check "its pid file is gone" [ ! -e "$D/run/storage-proxy.pid" ]
}

. "$D/user.env"
USER_AK=$BACKEND_ACCESS_KEY USER_SK=$BACKEND_SECRET_KEY
EP=$BACKEND_ENDPOINT HP=${BACKEND_ENDPOINT#http://}
ucall() {   # ucall METHOD PATH [BODY] -> STATUS, BODY
    local args=(-s -o "$T/body" -w '%{http_code}' -X "$1" --max-time 60)
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" "$1" "$2" "$HP" "$USER_AK" "$USER_SK" application/json)
    [ -n "${3:-}" ] && args+=(--data-binary "$3")
    STATUS=$(curl "${args[@]}" "$EP$2")
    BODY=$(cat "$T/body")
}

ucall POST /folders '{}'
if [ "$STATUS" = 404 ]; then
    down_checks
    [ $failures = 0 ] || exit 1
    skip "the manager answers POST /folders with 404 (its folder routes are not merged yet); the up/down checks above passed"
fi

# Every call has a deadline: a session that cannot be placed must not eat the test's time.
B() { timeout 180 "$BAIC" "$@" >"$T/o" 2>"$T/e"; }
out() { cat "$T/o"; }

# ---- folders ----
B folder; check "folder with no verb -> usage, exit 2" bash -c "[ $? = 2 ] && grep -q usage '$T/e'"
B folder create docs; check "folder create" bash -c "[ $? = 0 ] && grep -q 'folder docs created' '$T/o'"
B folder create docs; check "folder create twice fails" [ $? != 0 ]
B folder create 'a/b'; check "a name with / is refused" [ $? != 0 ]
B folder create other --host nosuch:volume; check "an unknown host is refused" [ $? != 0 ]
B folder ls; check "folder ls lists it" bash -c "[ $? = 0 ] && grep -q '^docs ' '$T/o'"
B folder info docs; check "folder info" bash -c "[ $? = 0 ] && grep -q 'docs' '$T/o'"
B folder info nosuch; check "info of a missing folder fails" [ $? != 0 ]

# ---- upload ----
printf 'hello from the host\n' >"$T/hello.txt"
head -c $((5 * 1024 * 1024 + 123)) /dev/urandom >"$T/big.bin"
: >"$T/empty"
B folder upload docs "$T/hello.txt"; check "upload hello.txt" bash -c "[ $? = 0 ] && grep -q '(20 bytes)' '$T/o'"
B folder mkdir docs sub/deeper; check "mkdir sub/deeper" [ $? = 0 ]
B folder upload docs "$T/big.bin" sub/deeper/big.bin; check "upload 5 MiB to sub/deeper/big.bin" [ $? = 0 ]
B folder upload docs "$T/empty" empty.txt; check "upload an empty file" [ $? = 0 ]
B folder upload docs "$T/nope"; check "uploading a missing local file -> exit 2" [ $? = 2 ]
B folder upload docs "$T/hello.txt" ../../escape.txt; check "upload outside the folder is refused" [ $? != 0 ]
check "nothing escaped into the volume" bash -c "! find '$D/vfolders' -name escape.txt | grep -q ."
B folder upload nosuch "$T/hello.txt"; check "upload into a missing folder fails" [ $? != 0 ]
onvol=$(find "$D/vfolders" -name hello.txt -path '*/hello.txt' | head -1)
check "the file is on the proxy's volume, byte for byte" bash -c "[ -n '$onvol' ] && cmp -s '$onvol' '$T/hello.txt'"
B folder files docs; check "files lists hello.txt and sub" bash -c "[ $? = 0 ] && grep -q ' hello.txt$' '$T/o' && grep -q ' sub$' '$T/o'"
B folder files docs sub/deeper; check "files sub/deeper lists big.bin with its size" \
    bash -c "grep -qE ' $((5 * 1024 * 1024 + 123)) .* big.bin$' '$T/o'"

# ---- mounted into sessions ----
B session create busybox fold-s1 --mount docs -r cpu=1 -r mem=256m
check "session with the folder mounted" bash -c "[ $? = 0 ] && grep -q RUNNING '$T/o'"
B session exec fold-s1 'cat /home/work/docs/hello.txt'
check "the session reads the uploaded file" bash -c "[ $? = 0 ] && [ \"\$(cat '$T/o')\" = 'hello from the host' ]"
B session exec fold-s1 'md5sum < /home/work/docs/sub/deeper/big.bin'
check "the big file reads the same in the session" bash -c \
    "[ \"\$(cut -d' ' -f1 '$T/o')\" = \"\$(md5sum < '$T/big.bin' | cut -d' ' -f1)\" ]"
B session exec fold-s1 'echo made in the session > /home/work/docs/out.txt'
check "a rw mount takes writes" [ $? = 0 ]
B session create busybox fold-s2 --mount docs:/home/work/ro:ro -r cpu=1 -r mem=256m
check "session with the folder mounted ro" [ $? = 0 ]
B session exec fold-s2 'cat /home/work/ro/hello.txt'
check "ro mount reads" bash -c "[ $? = 0 ] && [ \"\$(cat '$T/o')\" = 'hello from the host' ]"
B session exec fold-s2 'echo nope > /home/work/ro/ro-write.txt'
check "ro mount refuses writes" [ $? != 0 ]
B session exec fold-s2 'rm /home/work/ro/hello.txt'
check "ro mount refuses deletes" [ $? != 0 ]
B folder files docs; check "the refused write left no file" bash -c "! grep -q ro-write.txt '$T/o' && grep -q ' hello.txt$' '$T/o'"
# Free the agent's CPUs (a small host has two; busybox wants a whole one) first.
B session rm fold-s1; check "rm fold-s1" [ $? = 0 ]
B session rm fold-s2; check "rm fold-s2" [ $? = 0 ]
B session create busybox fold-s3 --mount nosuch -r cpu=1 -r mem=256m
check "mounting a missing folder fails" [ $? != 0 ]
B session create busybox fold-s4 --mount docs:/etc -r cpu=1 -r mem=256m
check "mounting outside /home/work fails" [ $? != 0 ]
B session create busybox fold-s5 --mount docs:/home/work/x:rx
check "a bad --mount option is a usage error" [ $? = 2 ]
B run busybox --mount docs:/home/work/in:ro -c 'cat /home/work/in/out.txt' --rm -r cpu=1 -r mem=256m
check "baic run --mount" bash -c "[ $? = 0 ] && [ \"\$(cat '$T/o')\" = 'made in the session' ]"
# run --rm returns once its session has let go of the folder: removing it right after works.
B folder create scratch
B run busybox --mount scratch -c 'true' --rm -r cpu=1 -r mem=256m
B folder rm --purge scratch
check "a folder a run --rm session mounted can be removed right after" [ $? = 0 ]

# Another user's folder is not found for this one.
(. "$D/admin.env"; "$BAIC" folder create adminonly >/dev/null 2>&1)
B folder info adminonly; check "another user's folder is not found" [ $? != 0 ]
B folder upload adminonly "$T/hello.txt"; check "nor can it be uploaded to" [ $? != 0 ]

# ---- download ----
B folder download docs hello.txt "$T/hello.back"
check "download hello.txt byte-equal" bash -c "[ $? = 0 ] && cmp -s '$T/hello.txt' '$T/hello.back'"
B folder download docs sub/deeper/big.bin "$T/big.back"
check "download the big file byte-equal" bash -c "[ $? = 0 ] && cmp -s '$T/big.bin' '$T/big.back'"
B folder download docs empty.txt "$T/empty.back"
check "download the empty file" bash -c "[ $? = 0 ] && [ -f '$T/empty.back' ] && [ ! -s '$T/empty.back' ]"
B folder download docs out.txt "$T/out.back"
check "download what the session wrote" bash -c "[ $? = 0 ] && [ \"\$(cat '$T/out.back')\" = 'made in the session' ]"
mkdir "$T/dl"
(cd "$T/dl" && "$BAIC" folder download docs sub/deeper/big.bin >/dev/null 2>&1)
check "download defaults to the base name here" cmp -s "$T/big.bin" "$T/dl/big.bin"
B folder download docs nosuch.txt "$T/nosuch"
check "download of a missing file fails and leaves nothing" bash -c "[ $? != 0 ] && [ ! -e '$T/nosuch' ] && [ ! -e '$T/nosuch.part' ]"
B folder download docs ../../../etc/passwd "$T/passwd"
check "download outside the folder is refused" bash -c "[ $? != 0 ] && [ ! -e '$T/passwd' ]"

# ---- clean up ----
B folder rm docs; check "folder rm moves it to the trash bin" bash -c "[ $? = 0 ] && grep -q trash '$T/o'"
B folder ls; check "ls shows it in the trash bin" grep -qE '^docs .*delete-' "$T/o"
B folder rm --purge docs; check "folder rm --purge" [ $? = 0 ]
B folder ls; check "the folder is gone from ls" bash -c "! grep -q '^docs ' '$T/o'"
check "its files left the volume" bash -c "! find '$D/vfolders' -name hello.txt | grep -q ."
B folder rm docs; check "rm of a purged folder fails" [ $? != 0 ]

down_checks
[ $failures = 0 ] && echo "all checks passed" || { echo "$failures check(s) failed"; exit 1; }
