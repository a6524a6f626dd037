#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Execute round-trip latency: query-mode `print(1)` in a running python session through the
# polling API and through the execute websocket, beside a bare `python3 -c 'print(1)'`.
#
#   tests/bench/execute/run.sh [BUILD_DIR]     (root; default BUILD_DIR: <repo>/build-bx)
#
# Starts `baic up` in a scratch dir (the python image from BAIC_BENCH_CACHE, default
# /var/tmp/baic-e2e-cache, linked as DATA/cache, which `baic up` reads; without a cached
# image, or with BENCH_NO_PYTHON=1, busybox and `echo 1` instead, said in the output),
# creates one session, and runs client.py: 20 warm-up then N (BENCH_N, 200) signed POSTs
# ("query", then "continue" until finished) on one keep-alive connection, the same N
# through /stream/session/{ref}/execute (one websocket per run: the server closes it after
# `finished`), and N bare interpreter starts as the peer. Signing is done in-process with
# hmac/hashlib (k_sign cached per day), so it costs microseconds, not an openssl process.
# Last line: key=value. Target (the issue): poll p50 <= 2 ms.
set -u
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "${1:-$SRC/build-bx}" && pwd) || exit 1
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
N=${BENCH_N:-200}
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (containers)" >&2; exit 77; }
for t in crun curl openssl; do command -v $t >/dev/null || { echo "run.sh: $t missing" >&2; exit 77; }; done
[ -x "$BAIC" ] || { echo "run.sh: $BAIC not built" >&2; exit 77; }

W=$(mktemp -d /tmp/baic-bench-exec.XXXXXX) || exit 1
chmod 711 "$W"
D=$W/data
CACHE=${BAIC_BENCH_CACHE:-/var/tmp/baic-e2e-cache}
mkdir -p "$CACHE" "$D"
ln -s "$CACHE" "$D/cache"
SESSION=
# The agent tears a session down after DELETE answers: wait for TERMINATED before `baic down`
# (else the container and its overlay outlive the agent), and unmount what is left regardless.
cleanup() {
    local end s
    if [ -n "$SESSION" ]; then
        signed DELETE "/session/$SESSION" >/dev/null 2>&1
        end=$(( $(date +%s) + 30 ))
        while [ "$(date +%s)" -lt $end ]; do
            signed GET "/session/$SESSION" >/dev/null 2>&1
            s=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$W/body" 2>/dev/null)
            case $s in TERMINATED | CANCELLED | ERROR) break ;; esac
            sleep 0.1
        done
    fi
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# signed METHOD PATH [BODY] -> status on stdout, body in $W/body
signed() {
    local method=$1 path=$2 body=${3:-}
    local args=(-s -o "$W/body" -w '%{http_code}' -X "$method" --max-time 120)
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" "$method" "$path" "$HP" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY")
    [ -n "$body" ] && args+=(--data-binary "$body")
    curl "${args[@]}" "$BACKEND_ENDPOINT$path"
}

NOTE=
if [ -z "${BENCH_NO_PYTHON:-}" ] && { [ -f "$CACHE/python-bookworm-rootfs.tar" ] || [ -f "$CACHE/oci/python/index.json" ]; }; then
    unset BAIC_NO_PYTHON
else
    export BAIC_NO_PYTHON=1
    if [ -n "${BENCH_NO_PYTHON:-}" ]; then NOTE="BENCH_NO_PYTHON set"; else NOTE="python image not cached in $CACHE"; fi
fi
"$BAIC" up --data-dir "$D" >"$W/up.log" 2>&1 || { cat "$W/up.log"; tail -20 "$D"/log/*.log; exit 1; }
. "$D/user.env"
HP=${BACKEND_ENDPOINT#http://}
if grep -q "aliases busybox, python" "$W/up.log"; then
    IMG=python CODE='print(1)'
else
    IMG=busybox CODE='echo 1'
    [ -n "$NOTE" ] || NOTE="baic up did not provide the python image"
fi

SESSION=bench-exec-$$
st=$(signed POST /session "{\"image\": \"$IMG\", \"name\": \"$SESSION\", \"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"256m\"}}}")
if [ "$st" != 201 ] || ! grep -q '"status": *"RUNNING"' "$W/body"; then
    echo "run.sh: create $SESSION: $st $(cat "$W/body")" >&2; tail -20 "$D/log/agent.log" >&2; exit 1
fi

"$PY" "$SRC/tests/bench/execute/client.py" "$BACKEND_ENDPOINT" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY" \
    "$SESSION" "$N" "$CODE" "$PY" -c 'print(1)' >"$W/times.json" || exit 1

RSS_AGENT=$(awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$D/run/agent.pid")/status")
RSS_MANAGER=$(awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$D/run/manager.pid")/status")

"$PY" - "$W/times.json" "$N" "$IMG" "$CODE" "$RSS_AGENT" "$RSS_MANAGER" "$NOTE" <<'PYEOF'
import json, math, os, sys
t = json.load(open(sys.argv[1]))
n, img, code, rss_a, rss_m, note = sys.argv[2:8]
def pct(v, p):
    v = sorted(v)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]
f = {}
for k, name in (("poll", "poll"), ("ws", "ws"), ("peer", "python3_start")):
    f[name + "_p50_ms"] = pct(t[k], 50)
    f[name + "_p99_ms"] = pct(t[k], 99)
ratio = f["poll_p50_ms"] / f["python3_start_p50_ms"]
print("execute, N=%s sequential round trips of %r in one %s session (query mode), %d cores"
      % (n, code, img, os.cpu_count()))
if note:
    print("NOTE: %s; measured busybox `echo 1` instead of python `print(1)`" % note)
print("%-34s %10s %10s" % ("", "p50_ms", "p99_ms"))
print("%-34s %10.2f %10.2f" % ("baic POST /session/{ref} (poll)", f["poll_p50_ms"], f["poll_p99_ms"]))
print("%-34s %10.2f %10.2f" % ("baic websocket (connect+run)", f["ws_p50_ms"], f["ws_p99_ms"]))
print("%-34s %10.2f %10.2f" % ("peer: /usr/bin/python3 -c 'print(1)'", f["python3_start_p50_ms"], f["python3_start_p99_ms"]))
print("poll p50 / python3 start p50: %.3f; target poll p50 <= 2 ms: %s"
      % (ratio, "met" if f["poll_p50_ms"] <= 2 else "NOT met"))
print("RSS after the runs: agent %s KiB, manager %s KiB" % (rss_a, rss_m))
print(" ".join("%s=%.2f" % kv for kv in f.items())
      + " ratio_poll_p50=%.3f agent_rss_kib=%s manager_rss_kib=%s image=%s" % (ratio, rss_a, rss_m, img))
PYEOF
