#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The manager end to end, as a client sees it: signing, every auth failure with its own
# problem JSON, admin-only routes, key deactivation, rate limits, login, bad input, and
# PostgreSQL and Redis restarts under a running manager. Also runs the npm JS client.
#
#   tests/integration/test_manager.sh BUILD_DIR
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
skip() { echo "SKIP: $*"; exit 77; }
[ -x "$BAIC" ] && [ -x "$BUILD/core/manager/baic-manager" ] || skip "baic / baic-manager not built"
command -v redis-server >/dev/null || skip "redis-server not installed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "PostgreSQL server not installed"
command -v curl >/dev/null || skip "curl not installed"

T=$(mktemp -d) && chmod 711 "$T" || exit 1
D=$T/data
failures=0
. "$SRC/tests/integration/lib.sh"
cleanup() { "$BAIC" down --data-dir "$D" >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT


"$BAIC" up --data-dir "$D" >"$T/up.log" 2>&1 || { cat "$T/up.log"; tail -30 "$D"/log/*.log; exit 1; }
stack_env "$D"

# call AK SK METHOD PATH [BODY] [extra curl args...] -> sets STATUS and BODY
# expect STATUS SLUG-or-"" WHAT
json_field() { printf '%s' "$1" | sed -n "s/.*\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" | head -1; }

# --- signing and its failures ---
call "$ADMIN_AK" "$ADMIN_SK" GET /config/resource-slots
expect 200 "" "admin signed GET"
call "$USER_AK" "$USER_SK" GET /resource/presets
expect 200 "" "user signed GET"
call "$ADMIN_AK" "${ADMIN_SK}x" GET /config/resource-slots
expect 401 auth-failed "wrong secret"
call AKIANOSUCHKEY0000000 "$ADMIN_SK" GET /config/resource-slots
expect 401 auth-failed "unknown access key"
printf '%s' "$BODY" | grep -q 'Access key not found' && ok "unknown key says so" || bad "unknown key message: $BODY"
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' "$EP/config/resource-slots"); BODY=$(cat "$T/body")
expect 401 auth-failed "no Authorization header"
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer x' -H 'X-BackendAI-Version: v8.20240915' \
    -H "Date: $(date -u +%Y-%m-%dT%H:%M:%S+00:00)" "$EP/config/resource-slots"); BODY=$(cat "$T/body")
expect 400 invalid-auth-params "malformed Authorization header"
# A correct signature over a date 20 minutes old: refused for the clock, not the signature.
old=$(date -u -d '-20 minutes' +%Y-%m-%dT%H:%M:%S+00:00)
args=()
while IFS= read -r h; do
    case $h in Date:*) args+=(-H "Date: $old") ;; *) args+=(-H "$h") ;; esac
done < <(sh "$SIGN" GET /config/resource-slots "$HP" "$ADMIN_AK" "$ADMIN_SK")
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' "${args[@]}" "$EP/config/resource-slots"); BODY=$(cat "$T/body")
expect 400 invalid-auth-params "date skewed by 20 minutes"
printf '%s' "$BODY" | grep -q 'Date/time sync error' && ok "skew says Date/time sync error" || bad "skew message: $BODY"
args=()
while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" GET /config/resource-slots "$HP" "$ADMIN_AK" "$ADMIN_SK" application/json v3.20170615)
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' "${args[@]}" "$EP/config/resource-slots"); BODY=$(cat "$T/body")
expect 400 invalid-auth-params "unsupported API version"
# The same signed headers sent to another path: the signature covers the path.
args=()
while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" GET /config/resource-slots "$HP" "$ADMIN_AK" "$ADMIN_SK")
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' "${args[@]}" "$EP/resource/presets"); BODY=$(cat "$T/body")
expect 401 auth-failed "signature replayed on another path"

# --- roles ---
call "$USER_AK" "$USER_SK" GET /admin/rest/domains
expect 403 insufficient-privilege "user on an admin route"
call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/domains
expect 200 "" "superadmin on an admin route"

# --- bad input ---
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/domains '{"name": '
expect 400 invalid-api-params "malformed JSON"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/domains '{"name": 5}'
expect 400 invalid-api-params "wrong type"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/domains '{"name": "x", "evil; DROP TABLE users": 1}'
expect 400 invalid-api-params "unknown field"
{ printf '{"name": "'; head -c 400000 /dev/zero | tr '\0' a; printf '"}'; } >"$T/big.json"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/domains "@$T/big.json"
expect 413 request-too-large "oversized body"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/domains '{"name": "team-x", "description": "x"}'
expect 201 "" "create domain"
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/domains '{"name": "team-x"}'
expect 400 generic-bad-request "duplicate domain"
call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/groups/not-a-uuid
expect 400 invalid-api-params "malformed UUID"
call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/domains/nonesuch
expect 404 object-not-found "unknown domain"
call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/domains/..%2F..%2Fetc
expect 404 object-not-found "path traversal in a key is just a name"

# --- a new key, then deactivated: refused at once (cache invalidated) ---
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/keypairs '{"user_id": "user@lablup.com", "rate_limit": 3}'
expect 201 "" "create keypair"
K_AK=$(json_field "$BODY" access_key) K_SK=$(json_field "$BODY" secret_key)
call "$K_AK" "$K_SK" GET /resource/presets
expect 200 "" "new key works"
grep -q "$K_SK" "$D"/log/*.log && bad "secret key found in logs" || ok "secret key not in logs"
call "$K_AK" "$K_SK" GET /resource/presets
expect 200 "" "second request within the limit"
call "$K_AK" "$K_SK" GET /resource/presets
expect 200 "" "third request within the limit"
call "$K_AK" "$K_SK" GET /resource/presets "" -D "$T/hdr"
expect 429 rate-limit-exceeded "fourth request over rate_limit 3"
grep -qi '^X-RateLimit-Limit: 3' "$T/hdr" && grep -qi '^X-RateLimit-Remaining: 0' "$T/hdr" \
    && ok "X-RateLimit headers" || bad "X-RateLimit headers: $(cat "$T/hdr")"
call "$ADMIN_AK" "$ADMIN_SK" PATCH "/admin/rest/keypairs/$K_AK" '{"is_active": false, "rate_limit": 0}'
expect 200 "" "deactivate keypair"
call "$K_AK" "$K_SK" GET /resource/presets
expect 401 auth-failed "deactivated key refused at once"

# --- login through the auth plugin ---
UPW=$(sed -n '/"user"/,/}/p' "$D/etc/keys.json" | sed -n 's/.*"password": *"\([^"]*\)".*/\1/p')
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "{\"type\":\"keypair\",\"domain\":\"default\",\"username\":\"user@lablup.com\",\"password\":\"$UPW\"}" \
    "$EP/auth/authorize"); BODY=$(cat "$T/body")
expect 200 "" "login with the right password"
[ "$(json_field "$BODY" access_key)" = "$USER_AK" ] && ok "login returns the user's key" || bad "login body: $BODY"
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary '{"type":"keypair","domain":"default","username":"user@lablup.com","password":"wrong-password"}' \
    "$EP/auth/authorize"); BODY=$(cat "$T/body")
expect 401 auth-failed "login with a wrong password"
grep -q "wrong-password" "$D"/log/*.log && bad "password found in logs" || ok "password not in logs"

# --- PostgreSQL restart under a running manager ---
mpid=$(cat "$D/run/manager.pid")
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
runuser -u postgres -- "$pgbin/pg_ctl" -D "$D/pg" -m fast -w restart >/dev/null 2>&1 \
    || "$pgbin/pg_ctl" -D "$D/pg" -m fast -w restart >/dev/null 2>&1
deadline=$((SECONDS + 15))
while :; do
    call "$ADMIN_AK" "$ADMIN_SK" GET /admin/rest/domains
    [ "$STATUS" = 200 ] && break
    [ $SECONDS -ge $deadline ] && break
    sleep 0.2
done
expect 200 "" "requests succeed after a PostgreSQL restart"
[ "$(cat "$D/run/manager.pid")" = "$mpid" ] && kill -0 "$mpid" && ok "same manager process" || bad "manager restarted"

# --- Redis restart under a running manager ---
rpid=$(cat "$D/run/redis.pid")
kill "$rpid"; while kill -0 "$rpid" 2>/dev/null; do sleep 0.1; done
call "$ADMIN_AK" "$ADMIN_SK" GET /resource/presets
[ "$STATUS" = 200 ] && ok "API stays up while Redis is down (limiter fails open)" || bad "with Redis down: $STATUS $BODY"
"$BAIC" up --data-dir "$D" >"$T/up2.log" 2>&1 || { bad "second up (restarts Redis)"; cat "$T/up2.log"; }
call "$ADMIN_AK" "$ADMIN_SK" POST /admin/rest/keypairs '{"user_id": "user@lablup.com", "rate_limit": 1}'
R_AK=$(json_field "$BODY" access_key) R_SK=$(json_field "$BODY" secret_key)
deadline=$((SECONDS + 10))
while :; do
    call "$R_AK" "$R_SK" GET /resource/presets
    call "$R_AK" "$R_SK" GET /resource/presets
    [ "$STATUS" = 429 ] && break
    [ $SECONDS -ge $deadline ] && break
    sleep 0.2
done
expect 429 rate-limit-exceeded "rate limiting works again after the Redis restart"
[ "$(cat "$D/run/manager.pid")" = "$mpid" ] && ok "still the same manager process" || bad "manager restarted"

# --- the npm JS client, unchanged ---
cache=${BAIC_NPM_CACHE:-$BUILD/conformance}
if command -v npm >/dev/null; then
    mkdir -p "$cache"
    cp "$SRC/tests/conformance/package.json" "$SRC/tests/conformance/js_client.js" "$cache/"
    if [ -d "$cache/node_modules/backend.ai-client" ] || (cd "$cache" && npm install --no-audit --no-fund >/dev/null 2>&1); then
        if BACKEND_ENDPOINT=$EP BACKEND_ACCESS_KEY=$ADMIN_AK BACKEND_SECRET_KEY=$ADMIN_SK node "$cache/js_client.js"; then
            ok "npm backend.ai-client conformance"
        else
            bad "npm backend.ai-client conformance"
        fi
    else
        bad "npm install backend.ai-client@21.3.1 failed"
    fi
else
    echo "SKIP npm client: npm not installed"
fi

if [ $failures -ne 0 ]; then
    echo "$failures check(s) failed"; tail -20 "$D/log/manager.log"; exit 1
fi
echo "all manager checks passed"
