# SPDX-License-Identifier: Apache-2.0
# Private PostgreSQL and Redis for tests and CI: source this file, then call the functions.
#
#   start_pg DIR      initdb into DIR (if empty), start on a free loopback port, print the DSN
#   stop_pg DIR       fast shutdown (clients are disconnected)
#   restart_pg DIR    stop + start on the same port (what a restarting PostgreSQL looks like)
#   start_redis DIR   start redis-server on a free loopback port, print "HOST PORT"
#   stop_redis DIR    stop it (by the PID it wrote)
#   restart_redis DIR stop + start on the same port
#
# Everything listens on 127.0.0.1 only and is stopped by its own PID or data dir, never
# by name. PostgreSQL refuses to run as root, so when we are root it runs as the
# `postgres` user (BAIC_PG_USER overrides) and DIR is handed to that user. Durability
# is switched off (fsync, synchronous_commit): these clusters are thrown away.
# Exit status: 0, or 77 ("skip") when the binaries are missing, or 1 on failure.

BAIC_PG_BINDIR=${BAIC_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
BAIC_REDIS_SERVER=${BAIC_REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}

# A port nobody listens on right now, below the kernel's ephemeral range (32768 up), so no
# outgoing connection holds it meanwhile. Racy by nature; callers retry on bind failure.
_baic_free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$(( (RANDOM % 12000) + 20000 ))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Runs a command as the unprivileged PostgreSQL user when we are root.
_baic_pg_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "${BAIC_PG_USER:-postgres}" -- "$@"
    else
        "$@"
    fi
}

start_pg() {
    local dir=$1 port try
    if [ -z "$dir" ]; then echo "start_pg: DIR missing" >&2; return 1; fi
    if [ ! -x "$BAIC_PG_BINDIR/initdb" ]; then
        echo "start_pg: initdb not found (install postgresql)" >&2
        return 77
    fi
    mkdir -p "$dir" || return 1
    if [ "$(id -u)" = 0 ]; then
        chown "${BAIC_PG_USER:-postgres}" "$dir" && chmod 700 "$dir" || return 1
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        local log
        log=$(mktemp) || return 1
        if ! _baic_pg_as "$BAIC_PG_BINDIR/initdb" -D "$dir" -U postgres --auth=trust \
            -E UTF8 --no-locale >"$log" 2>&1; then
            echo "start_pg: initdb failed:" >&2; cat "$log" >&2; rm -f "$log"
            return 1
        fi
        rm -f "$log"
    fi
    for try in 1 2 3 4 5; do
        port=$(_baic_free_port) || return 1
        _baic_pg_as sh -c "cat >> '$dir/postgresql.conf'" <<EOF
# baic test settings (last wins)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
        if _baic_pg_as "$BAIC_PG_BINDIR/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
            start >/dev/null 2>&1; then
            echo "$port" >"$dir/baic.port"
            echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
            return 0
        fi
    done
    echo "start_pg: could not start (see $dir/server.log)" >&2
    return 1
}

stop_pg() {
    local dir=$1
    [ -f "$dir/postmaster.pid" ] || return 0
    _baic_pg_as "$BAIC_PG_BINDIR/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null 2>&1
}

# Same port, same data: clients see their connections drop, then the server come back.
restart_pg() {
    local dir=$1
    stop_pg "$dir" || return 1
    _baic_pg_as "$BAIC_PG_BINDIR/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
        start >/dev/null 2>&1
}

_baic_redis_run() {
    local dir=$1 port=$2
    "$BAIC_REDIS_SERVER" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" >/dev/null 2>&1 || return 1
    local i
    for i in $(seq 1 200); do   # up to 10 s for PONG
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null \
            && [ -s "$dir/redis.pid" ]; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

start_redis() {
    local dir=$1 port try
    if [ ! -x "$BAIC_REDIS_SERVER" ]; then
        echo "start_redis: redis-server not found" >&2
        return 77
    fi
    mkdir -p "$dir" || return 1
    for try in 1 2 3 4 5; do
        port=$(_baic_free_port) || return 1
        if _baic_redis_run "$dir" "$port"; then
            echo "$port" >"$dir/baic.port"
            echo "127.0.0.1 $port"
            return 0
        fi
        stop_redis "$dir"
    done
    echo "start_redis: could not start (see $dir/redis.log)" >&2
    return 1
}

stop_redis() {
    local dir=$1 pid i
    [ -s "$dir/redis.pid" ] || return 0
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$dir/redis.pid"
}

restart_redis() {
    local dir=$1
    stop_redis "$dir" || return 1
    _baic_redis_run "$dir" "$(cat "$dir/baic.port")"
}
