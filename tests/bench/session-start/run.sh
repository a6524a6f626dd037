#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Session start latency: signed POST /session until RUNNING on runtime/oci, beside a bare
# `crun run --detach` of the same unpacked image root filesystem, in the same run.
#
#   tests/bench/session-start/run.sh [BUILD_DIR]     (root; default BUILD_DIR: <repo>/build)
#
# Starts `baic up` in a scratch data dir (BAIC_BENCH_DIR to keep one), runs N (BENCH_N, 20)
# sequential create -> RUNNING (timed by curl: the POST returns once the session runs),
# each followed by DELETE (waited for, not timed), per image: busybox, and python when its
# image is cached in BAIC_BENCH_CACHE (default /var/tmp/baic-e2e-cache) or BENCH_PYTHON=1
# (which builds it: minutes). The peer: `crun run --detach` of a bundle whose root is the
# image's unpacked rootfs in the agent's store, with the same memory and CPU limits, timed
# until crun returns (container process started), then killed and deleted. One warm-up
# round per image is not counted (it pulls and unpacks the image). Last line: key=value.
set -u
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
BAIC=$BUILD/core/cli/baic
SIGN=$SRC/tests/bench/sign.sh
N=${BENCH_N:-20}
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (containers)" >&2; exit 77; }
for t in crun curl openssl unshare; do command -v $t >/dev/null || { echo "run.sh: $t missing" >&2; exit 77; }; done

OWN_DIR=
if [ -n "${BAIC_BENCH_DIR:-}" ]; then W=$BAIC_BENCH_DIR; mkdir -p "$W"; else W=$(mktemp -d /tmp/baic-bench.XXXXXX); OWN_DIR=1; fi
chmod 711 "$W"
D=$W/data
CACHE=${BAIC_BENCH_CACHE:-/var/tmp/baic-e2e-cache}
mkdir -p "$CACHE" "$D"
[ -e "$D/cache" ] || ln -s "$CACHE" "$D/cache"
PEER_ROOT=$W/crun-root
cleanup() {
    for c in $(crun --root "$PEER_ROOT" list -q 2>/dev/null); do crun_ delete -f "$c" >/dev/null 2>&1; done
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    [ -n "$OWN_DIR" ] && rm -rf "$W"
}
trap cleanup EXIT

if [ -f "$CACHE/python-bookworm-rootfs.tar" ] || [ -f "$CACHE/oci/python/index.json" ] || [ -n "${BENCH_PYTHON:-}" ]; then
    unset BAIC_NO_PYTHON
else
    export BAIC_NO_PYTHON=1
fi
"$BAIC" up --data-dir "$D" >"$W/up.log" 2>&1 || { cat "$W/up.log"; exit 1; }
. "$D/user.env"
HP=${BACKEND_ENDPOINT#http://}
IMAGES=busybox
grep -q "aliases busybox, python" "$W/up.log" && IMAGES="busybox python"

# crun as the agent runs it: on hybrid-cgroup hosts crun 1.8 needs cgroup2 out of sight.
if [ ! -f /sys/fs/cgroup/cgroup.controllers ] && grep -q " /sys/fs/cgroup/unified cgroup2" /proc/mounts; then
    crun_() { unshare --mount --propagation private /bin/sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun --root "$PEER_ROOT" "$@"; }
else
    crun_() { crun --root "$PEER_ROOT" "$@"; }
fi

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# signed METHOD PATH [BODY] -> curl's total time in ms on stdout; status in $W/status, body in $W/body
# (files: callers take the time through $(...), a subshell)
signed() {
    local method=$1 path=$2 body=${3:-} out
    local args=(-s -o "$W/body" -w '%{http_code} %{time_total}' -X "$method" --max-time 120)
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" "$method" "$path" "$HP" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY")
    [ -n "$body" ] && args+=(--data-binary "$body")
    out=$(curl "${args[@]}" "$BACKEND_ENDPOINT$path")
    echo "${out% *}" >"$W/status"
    awk -v t="${out#* }" 'BEGIN { printf "%.1f\n", t * 1000 }'
}
status_of() { signed GET "/session/$1" >/dev/null; "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$W/body" 2>/dev/null; }
wait_ended() {
    local end=$(( $(date +%s) + 30 )) s
    while [ "$(date +%s)" -lt $end ]; do
        s=$(status_of "$1"); case $s in TERMINATED | CANCELLED | ERROR) return 0 ;; esac; sleep 0.05
    done
    echo "run.sh: $1 did not end" >&2; return 1
}
pct() { "$PY" -c '
import math, sys
v = sorted(float(x) for x in sys.argv[2:])
p = float(sys.argv[1])
print("%.1f" % v[max(0, math.ceil(p / 100 * len(v)) - 1)] if v else "nan")' "$@"; }

declare -A P50 P95 COLD
run_baic() { # IMAGE
    local img=$1 i t times=() name
    for i in $(seq 0 "$N"); do
        name=bench-$img-$i-$$
        t=$(signed POST /session "{\"image\": \"$img\", \"name\": \"$name\", \"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"128m\"}}}")
        T_STATUS=$(cat "$W/status")
        if [ "$T_STATUS" != 201 ] || ! grep -q '"status": *"RUNNING"' "$W/body"; then
            echo "run.sh: create $name: $T_STATUS $(cat "$W/body")" >&2; exit 1
        fi
        if [ "$i" = 0 ]; then COLD[$img]=$t; else times+=("$t"); fi
        signed DELETE "/session/$name" >/dev/null
        wait_ended "$name" || exit 1
    done
    P50[$img]=$(pct 50 "${times[@]}")
    P95[$img]=$(pct 95 "${times[@]}")
}

# The agent's unpacked image (runtime/oci store): IMAGE_DIR/rootfs/<key>/rootfs.
image_rootfs() { ls -d "$D"/agent/oci/images/rootfs/*"$1"*/rootfs 2>/dev/null | head -1; }

run_crun() { # IMAGE
    local img=$1 rootfs b i t0 t1 times=() name
    rootfs=$(image_rootfs "$img")
    [ -n "$rootfs" ] || { echo "run.sh: no unpacked $img under $D/agent/oci/images/rootfs" >&2; exit 1; }
    b=$W/bundle-$img
    rm -rf "$b" && mkdir -p "$b"
    (cd "$b" && crun spec)
    # Same image root (read-only, no overlay: the floor), same limits, an idle process.
    "$PY" - "$b/config.json" "$rootfs" <<'EOF'
import json, sys
p, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]
c["process"]["cwd"] = "/"
c["linux"]["resources"] = {"memory": {"limit": 134217728}, "cpu": {"quota": 100000, "period": 100000}}
json.dump(c, open(p, "w"))
EOF
    mkdir -p "$PEER_ROOT"
    for i in $(seq 0 "$N"); do
        name=bench-peer-$img-$i-$$
        "$PY" - "$b/config.json" "/baic-bench/$name" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); c["linux"]["cgroupsPath"] = sys.argv[2]; json.dump(c, open(sys.argv[1], "w"))
EOF
        t0=$(date +%s%N)
        crun_ run --detach --bundle "$b" "$name" </dev/null >/dev/null 2>"$W/crun.err" || { cat "$W/crun.err" >&2; exit 1; }
        t1=$(date +%s%N)
        [ "$i" = 0 ] || times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }')")
        crun_ kill "$name" KILL >/dev/null 2>&1
        crun_ delete -f "$name" >/dev/null 2>&1
    done
    P50[crun_$img]=$(pct 50 "${times[@]}")
    P95[crun_$img]=$(pct 95 "${times[@]}")
}

for img in $IMAGES; do
    run_baic "$img"
    run_crun "$img"
done
sleep 3 # idle: heartbeats only
RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$D/run/agent.pid")/status")

echo "session-start, N=$N sequential, runtime/oci (crun), limits cpu 1 mem 128m, $(nproc) cores"
printf '%-10s %12s %12s %14s %14s %10s %10s\n' image baic_p50_ms baic_p95_ms crun_p50_ms crun_p95_ms ratio_p50 cold_ms
line=
for img in $IMAGES; do
    r50=$(awk -v a="${P50[$img]}" -v b="${P50[crun_$img]}" 'BEGIN { printf "%.2f", a / b }')
    r95=$(awk -v a="${P95[$img]}" -v b="${P95[crun_$img]}" 'BEGIN { printf "%.2f", a / b }')
    printf '%-10s %12s %12s %14s %14s %10s %10s\n' "$img" "${P50[$img]}" "${P95[$img]}" \
        "${P50[crun_$img]}" "${P95[crun_$img]}" "$r50" "${COLD[$img]}"
    line="$line ${img}_p50_ms=${P50[$img]} ${img}_p95_ms=${P95[$img]} ${img}_crun_p50_ms=${P50[crun_$img]} ${img}_crun_p95_ms=${P95[crun_$img]} ${img}_ratio_p50=$r50 ${img}_ratio_p95=$r95"
done
echo "agent idle RSS: $RSS KiB (target <= 16384)"
echo "${line# } agent_rss_kib=$RSS"
