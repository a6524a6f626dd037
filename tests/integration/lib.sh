# SPDX-License-Identifier: Apache-2.0
# Helpers of the integration scripts that talk to a manager: results, waiting, signed API
# calls, JSON fields and SQL. Sourced; the script sets what a helper reads before using it:
#   T (its temp dir), SIGN (tests/bench/sign.sh), EP / HP (endpoint URL / host:port),
#   PY (python3), DSN (the manager database) and failures (the count, 0 at the start).

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }

# until_ok SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds or time runs out.
until_ok() {
    local end=$(($(date +%s) + $1)); shift
    while ! "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done
}

# call AK SK METHOD PATH [BODY [CURL-ARGS...]]: a request signed like the official clients
# (sign.sh); the status lands in STATUS, the body in BODY and in ${OUTF:-$T/body}. Each
# call gives up after ${CALL_MAX_TIME:-120} s.
call() {
    local ak=$1 sk=$2 method=$3 path=$4 body=${5:-}
    shift $(($# < 5 ? $# : 5))
    local out=${OUTF:-$T/body}
    local args=(-s -o "$out" -w '%{http_code}' -X "$method" --max-time "${CALL_MAX_TIME:-120}")
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" "$method" "$path" "$HP" "$ak" "$sk")
    [ -n "$body" ] && args+=(--data-binary "$body")
    STATUS=$(curl "${args[@]}" "$@" "$EP$path")
    BODY=$(tr -d '\0' < "$out" 2>/dev/null)
}

# expect STATUS SLUG WHAT: the last call answered STATUS (and, with a SLUG, that Backend.AI
# problem type); ok or bad WHAT. Returns 1 on a mismatch.
expect() {
    local want=$1 slug=$2 what=$3
    if [ "$STATUS" != "$want" ]; then bad "$what: HTTP $STATUS, want $want: $BODY"; return 1; fi
    if [ -n "$slug" ] && ! printf '%s' "$BODY" | grep -q "\"type\": *\"https://api.backend.ai/probs/$slug\""; then
        bad "$what: want problem $slug: $BODY"; return 1
    fi
    ok "$what ($STATUS${slug:+ $slug})"
}

# field JSON PYTHON-SUBSCRIPT: field "$BODY" "['items'][0]['name']"; empty when absent.
field() { printf '%s' "$1" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(d$2)" 2>/dev/null; }

# sql STATEMENT: one psql run against $DSN, unaligned, tuples only, errors dropped.
sql() { psql "$DSN" -Atc "$1" 2>/dev/null; }

# stack_env DATA_DIR: after `baic up --data-dir DATA_DIR`: ADMIN_AK/ADMIN_SK and
# USER_AK/USER_SK (the BACKEND_* variables stay the user's), EP and HP of the manager,
# REDIS_PORT and DSN from its manager.toml.
stack_env() {
    . "$1/admin.env"
    ADMIN_AK=$BACKEND_ACCESS_KEY ADMIN_SK=$BACKEND_SECRET_KEY
    . "$1/user.env"
    USER_AK=$BACKEND_ACCESS_KEY USER_SK=$BACKEND_SECRET_KEY
    EP=$BACKEND_ENDPOINT HP=${BACKEND_ENDPOINT#http://}
    REDIS_PORT=$(sed -n '/^\[redis\]/,/^\[/s/^port *= *\([0-9]*\).*/\1/p' "$1/etc/manager.toml")
    DSN=$(sed -n '/^\[db\]/,/^\[/s/^dsn *= *"\(.*\)"/\1/p' "$1/etc/manager.toml")
}

# stack_down DATA_DIR: `baic down`, then what its agent leaves running on purpose (the next
# `baic up` adopts running containers) goes too: the containers under the agent's runtime
# root and every mount below DATA_DIR. For test cleanup (reads $BAIC).
stack_down() {
    local root c m
    root=$(sed -n 's/^runtime_root = "\(.*\)"/\1/p' "$1/etc/agent.toml" 2>/dev/null)
    "$BAIC" down --data-dir "$1" >/dev/null 2>&1
    if [ -n "$root" ] && command -v crun >/dev/null; then
        for c in $(crun --root "$root" list -q 2>/dev/null); do
            crun --root "$root" delete -f "$c" >/dev/null 2>&1
        done
        rmdir "$root" 2>/dev/null
    fi
    for m in $(awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    return 0
}

# rpc METHOD PATH [BODY]: a cluster-signed call (HMAC with $SECRET, docs/agent-protocol.md)
# straight to the agent on 127.0.0.1:$AGENT_PORT; the status lands in RST, the body in $T/rpc.
rpc() {
    local method=$1 path=$2 body=${3:-} date bh mac
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    bh=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
    mac=$(printf '%s\n%s\n%s\n%s' "$method" "$path" "$date" "$bh" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    RST=$(curl -s -o "$T/rpc" -w '%{http_code}' -X "$method" -H "Date: $date" -H "X-BaiC-Cluster-Auth: $mac" \
        -H 'Content-Type: application/json' ${body:+--data-binary "$body"} "http://127.0.0.1:$AGENT_PORT$path")
}
