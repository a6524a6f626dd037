#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `baic up` / `baic down` end to end: private PostgreSQL + Redis + manager in a temp dir.
#
#   tests/integration/test_up.sh BUILD_DIR
#
# Uses BUILD_DIR/core/cli/baic and BUILD_DIR/core/manager/baic-manager (found by `baic`
# itself, beside it in the build tree); builds nothing. Exit 0 pass, 1 fail, 77 skip.
# BAIC_TEST_FAKE_MANAGER=1 swaps in a stand-in manager (a small python3 server that
# honours the manager's command-line contract) through BAIC_MANAGER_BIN, to test the
# process handling alone.
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
BAIC=$BUILD/core/cli/baic
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -d "${D:-}/log" ] && tail -n 20 "$D"/log/*.log; exit 1; }

[ -x "$BAIC" ] || skip "$BAIC is not built"
command -v redis-server >/dev/null || [ -n "${BAIC_REDIS_SERVER:-}" ] || skip "redis-server not installed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${BAIC_PG_BINDIR:-}" ] \
    || skip "PostgreSQL server programs not installed"

T=$(mktemp -d) && chmod 711 "$T" || exit 1   # PostgreSQL runs as its own user when we are root
D=$T/data
cleanup() {
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT

if [ -n "${BAIC_TEST_FAKE_MANAGER:-}" ]; then
    export BAIC_MANAGER_BIN=$T/fake-manager
    cat >"$BAIC_MANAGER_BIN" <<'EOF'
#!/usr/bin/python3
# Stand-in for baic-manager: the command-line contract `baic up` relies on, nothing more.
import http.server, json, os, secrets, socket, sys, tomllib
if len(sys.argv) < 3 or sys.argv[1] != "-c":
    sys.exit("usage: fake-manager -c FILE [schema upgrade | fixture populate --keys-out F]")
conf = tomllib.load(open(sys.argv[2], "rb"))
rest = sys.argv[3:]
def reachable(host, port):
    socket.create_connection((host, port), timeout=5).close()
if rest == ["schema", "upgrade"]:
    dsn = dict(kv.split("=", 1) for kv in conf["db"]["dsn"].split())
    reachable(dsn["host"], int(dsn["port"]))
    reachable(conf["redis"]["host"], conf["redis"]["port"])
    print("schema: up to date", file=sys.stderr)
elif rest[:2] == ["fixture", "populate"]:
    out = rest[rest.index("--keys-out") + 1]
    if not os.path.exists(out):
        keys = {w: {"access_key": "AKIA" + secrets.token_hex(8).upper(),
                    "secret_key": secrets.token_urlsafe(30)} for w in ("admin", "user")}
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, json.dumps(keys).encode())
        os.close(fd)
elif not rest:
    host, port = conf["manager"]["listen"].rsplit(":", 1)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"version": "v8.20240915", "manager": "fake"}).encode()
            self.send_response(200 if self.path == "/" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    print("fake manager listening", file=sys.stderr, flush=True)
    http.server.HTTPServer((host, int(port)), H).serve_forever()
else:
    sys.exit("fake-manager: unknown command %r" % rest)
EOF
    chmod +x "$BAIC_MANAGER_BIN"
elif [ -z "${BAIC_MANAGER_BIN:-}" ]; then
    [ -x "$BUILD/core/manager/baic-manager" ] \
        || skip "$BUILD/core/manager/baic-manager is not built yet"
fi

# GET / over bash's /dev/tcp: prints the response, fails when nothing listens.
http_get() {
    local hostport=${1#http://}
    exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
    printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$hostport" >&3
    timeout 10 cat <&3
    exec 3<&-
}
endpoint() { sed -n 's/^export BACKEND_ENDPOINT=//p' "$D/admin.env"; }

echo "--- baic up (first)"
out=$("$BAIC" up --data-dir "$D") || fail "first up exited $?"
echo "$out"
grep -q "baic is up" <<<"$out" || fail "no 'baic is up' line"
grep -q "source $D/admin.env" <<<"$out" || fail "no hint to source admin.env"
for f in admin.env user.env; do
    [ "$(stat -c %a "$D/$f")" = 600 ] || fail "$f mode is $(stat -c %a "$D/$f"), want 600"
    [ "$(grep -c '^export ' "$D/$f")" = 3 ] || fail "$f does not have 3 export lines"
    for v in BACKEND_ENDPOINT BACKEND_ACCESS_KEY BACKEND_SECRET_KEY; do
        grep -q "^export $v=." "$D/$f" || fail "$f lacks $v"
    done
    sk=$(sed -n 's/^export BACKEND_SECRET_KEY=//p' "$D/$f")
    ! grep -qF -- "$sk" <<<"$out" || fail "a secret key was printed"
    ! grep -rqF -- "$sk" "$D/log" || fail "a secret key is in a log"
done
ep=$(endpoint)
http_get "$ep" | grep -q '"version"' || fail "GET $ep/ does not answer with a version"
pid1=$(cat "$D/run/manager.pid")

echo "--- baic up (again: reuses everything)"
out=$("$BAIC" up --data-dir "$D") || fail "second up exited $?"
echo "$out"
[ "$(endpoint)" = "$ep" ] || fail "endpoint changed from $ep to $(endpoint)"
[ "$(cat "$D/run/manager.pid")" = "$pid1" ] || fail "second up started another manager"
grep -q "manager: running" <<<"$out" || fail "second up did not say it reused the manager"

echo "--- manager killed: up restarts it on the same port"
kill -9 "$pid1"
out=$("$BAIC" up --data-dir "$D") || fail "up after kill exited $?"
[ "$(cat "$D/run/manager.pid")" != "$pid1" ] || fail "no new manager"
http_get "$ep" | grep -q '"version"' || fail "restarted manager does not answer"

echo "--- baic down"
out=$("$BAIC" down --data-dir "$D") || fail "down exited $?"
echo "$out"
! http_get "$ep" >/dev/null 2>&1 || fail "manager still answers after down"
[ ! -e "$D/run/manager.pid" ] && [ ! -e "$D/run/redis.pid" ] || fail "pid files left behind"
[ ! -e "$D/pg/postmaster.pid" ] || fail "PostgreSQL still running"

echo "--- baic down (again)"
out=$("$BAIC" down --data-dir "$D") || fail "second down exited $?"
echo "$out"
grep -q "already stopped" <<<"$out" || fail "second down did not say 'already stopped'"

echo "--- baic up after down, over a stale pid file"
echo 999999 >"$D/run/redis.pid"
out=$("$BAIC" up --data-dir "$D") || fail "up after down exited $?"
[ "$(endpoint)" = "$ep" ] || fail "endpoint changed after restart"
http_get "$ep" | grep -q '"version"' || fail "manager does not answer after restart"
"$BAIC" down --data-dir "$D" >/dev/null || fail "final down exited $?"

echo "PASS: baic up/down"
