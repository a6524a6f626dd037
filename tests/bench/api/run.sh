#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# API benchmark: wrk against the manager's GET / and a signed, authenticated GET,
# beside nginx returning a fixed body, all in the same run on 127.0.0.1.
# usage: tests/bench/api/run.sh [BUILD_DIR]   (default: build)
# Ends with one key=value line.
set -eu
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
command -v wrk >/dev/null || { echo "wrk is not installed (contrib/install-deps.sh)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx is not installed (contrib/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/baic-bench-api.XXXXXX)
chmod 711 "$work"   # PostgreSQL runs as its own user when we are root
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    "$build/core/cli/baic" down --data-dir "$work/data" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$build/core/cli/baic" up --data-dir "$work/data" >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
. "$work/data/admin.env"
hostport=${BACKEND_ENDPOINT#http://}
mpid=$(cat "$work/data/run/manager.pid")

# A key with a rate limit too high to trip during the run, so the limiter's Redis
# round trip is part of what is measured.
keys=$(BACKEND_ACCESS_KEY=$BACKEND_ACCESS_KEY BACKEND_SECRET_KEY=$BACKEND_SECRET_KEY \
    sh "$src/tests/bench/admin_call.sh" POST /admin/rest/keypairs \
    "{\"user_id\":\"admin@lablup.com\",\"rate_limit\":${BENCH_RATE_LIMIT:-1000000000}}")
bak=$(printf '%s' "$keys" | sed -n 's/.*"access_key": *"\([^"]*\)".*/\1/p')
bsk=$(printf '%s' "$keys" | sed -n 's/.*"secret_key": *"\([^"]*\)".*/\1/p')
[ -n "$bak" ] && [ -n "$bsk" ] || { echo "could not create the bench keypair: $keys" >&2; exit 1; }

nport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$nport;
        location / { default_type application/json; return 200 '{"version": "v8.20240915", "manager": "nginx"}'; }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"

rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$mpid/status")

run_wrk() { # name url [headers...]
    name=$1 url=$2
    shift 2
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$url" >"$work/$name.wrk" 2>&1
    rps=$(awk '/Requests\/sec/ {printf "%d", $2}' "$work/$name.wrk")
    p99=$(awk '$1=="99%" {print $2}' "$work/$name.wrk")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$name.wrk")
    echo "$name: ${rps} req/s p99=${p99} non2xx=${non2xx:-0}"
    eval "${name}_rps=$rps ${name}_p99=$p99 ${name}_bad=${non2xx:-0}"
}

run_wrk nginx "http://127.0.0.1:$nport/"
run_wrk root "http://$hostport/"
set --
while IFS= read -r h; do set -- "$@" -H "$h"; done <<HDRS
$(sh "$src/tests/bench/sign.sh" GET /config/resource-slots "$hostport" "$bak" "$bsk")
HDRS
run_wrk signed "http://$hostport/config/resource-slots" "$@"
rss_loaded=$(awk '/VmRSS/ {print $2}' "/proc/$mpid/status")

[ "$signed_bad" = 0 ] || { echo "signed run had $signed_bad non-2xx answers" >&2; head -c 600 "$work/signed.wrk"; }
ratio_root=$(awk -v a="$root_rps" -v b="$nginx_rps" 'BEGIN {printf "%.2f", a/b}')
ratio_signed=$(awk -v a="$signed_rps" -v b="$nginx_rps" 'BEGIN {printf "%.2f", a/b}')
echo "manager RSS idle ${rss_idle} KiB, after load ${rss_loaded} KiB"
echo "root_rps=$root_rps root_p99=$root_p99 signed_rps=$signed_rps signed_p99=$signed_p99 nginx_rps=$nginx_rps nginx_p99=$nginx_p99 ratio_root=$ratio_root ratio_signed=$ratio_signed manager_rss_idle_kib=$rss_idle"
