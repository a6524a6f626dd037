#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Storage benchmark: a 1 GiB upload (tus PATCH) and download through baic-storage-proxy,
# beside cp of the same file on the same disk and nginx (PUT with dav, GET static) in the same run,
# with curl and with a client that keeps the bytes in the kernel (xfer.c: sendfile up, splice down).
# usage: tests/bench/storage/run.sh [BUILD_DIR]   (default: build)
# BENCH_MIB (1024), BENCH_RUNS (3, best of), BENCH_DIR (/var/tmp: the disk under test).
# Ends with one key=value line (with the load average at the start and the end: figures
# taken on a busy machine are scheduling shares more than speeds).
set -eu
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
mib=${BENCH_MIB:-1024}
runs=${BENCH_RUNS:-3}
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx is not installed (contrib/install-deps.sh)" >&2; exit 1; }
sp=$build/core/storage-proxy/baic-storage-proxy
xfer=$build/tests/bench/baic-bench-xfer
for b in "$sp" "$xfer"; do [ -x "$b" ] || { echo "$b is not built" >&2; exit 1; }; done

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/baic-bench-storage.XXXXXX")
sp_pid=
cleanup() {
    [ -n "$sp_pid" ] && kill "$sp_pid" 2>/dev/null || true
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s%N; }
# best OUTVAR PRE CMD...: runs PRE then CMD, $runs times; keeps CMD's fastest time in ns
best() {
    var=$1; pre=$2; shift 2
    b=
    i=0
    while [ $i -lt "$runs" ]; do
        $pre
        t0=$(now); "$@"; t1=$(now)
        t=$((t1 - t0))
        if [ -z "$b" ] || [ "$t" -lt "$b" ]; then b=$t; fi
        i=$((i + 1))
    done
    eval "$var=$b"
}
mibs() { awk -v b="$((mib * 1048576))" -v ns="$1" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

mport=$(port); cport=$(port); nport=$(port)
mkdir -p "$work/vol" "$work/www" "$work/nginx-tmp" "$work/dav"
secret=bench-manager-secret-0123456789
cat >"$work/sp.toml" <<CFG
[storage-proxy]
listen_manager = "127.0.0.1:$mport"
listen_client = "127.0.0.1:$cport"
manager_secret = "$secret"
jwt_secret = "bench-jwt-secret-0123456789abcdef"
log_level = "warn"

[volume.bench]
backend = "vfs"
path = "$work/vol"
CFG
BAIC_PLUGIN_DIR=$build/plugins-out "$sp" -c "$work/sp.toml" >"$work/sp.log" 2>&1 &
sp_pid=$!
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
user root;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $work/nginx-tmp;
    server {
        listen 127.0.0.1:$nport;
        location /dav/ { root $work; dav_methods PUT; create_full_put_path on;
                         client_max_body_size 0; client_body_buffer_size 1m; }
        location / { root $work/www; }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"

echo "making a $mib MiB file in $work" >&2
head -c $((mib * 1048576)) /dev/urandom >"$work/src.bin"
ln "$work/src.bin" "$work/www/src.bin"
sync

m() { curl -sf -H "X-BackendAI-Storage-Auth-Token: $secret" -H 'Content-Type: application/json' \
    --data-binary "$2" "http://127.0.0.1:$mport$1"; }
i=0
until curl -sf -o /dev/null -H "X-BackendAI-Storage-Auth-Token: $secret" "http://127.0.0.1:$mport/volumes"; do i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/sp.log"; exit 1; }; sleep 0.05; done
vf=bench/0123456789abcdef0123456789abcdef
curl -sf -o /dev/null -H "X-BackendAI-Storage-Auth-Token: $secret" \
    --data-binary "{\"volume\":\"bench\",\"vfid\":\"$vf\"}" "http://127.0.0.1:$mport/folder/create"
tok() { m "/folder/file/$1" "{\"volume\":\"bench\",\"vfid\":\"$vf\",\"relpath\":\"big.bin\",\"size\":$((mib * 1048576))}" |
    sed -n 's/.*"token": *"\([^"]*\)".*/\1/p'; }
utok=$(tok upload)
dtok=$(tok download)

# Every peer writes a new file: the previous run's output goes first, and sync makes each
# run start without another's dirty pages being written back under it (outside the timing).
pre_cp() { rm -f "$work/cp.bin"; sync; }
pre_up() { rm -f "$work/vol/bench/0123456789abcdef0123456789abcdef/big.bin"; sync; }
pre_dl() { rm -f "$work/dl.bin"; sync; }
pre_put() { rm -f "$work/dav/up.bin"; sync; }
cp_run() { cp "$work/src.bin" "$work/cp.bin"; }
cat_run() { cat "$work/src.bin" >"$work/cp.bin"; }  # the same copy through user space
up_run() { curl -sf -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' -T "$work/src.bin" \
    "http://127.0.0.1:$cport/upload?token=$utok"; }
down_run() { curl -sf -o "$work/dl.bin" "http://127.0.0.1:$cport/download?token=$dtok"; }
nput_run() { curl -sf -o /dev/null -T "$work/src.bin" "http://127.0.0.1:$nport/dav/up.bin"; }
nget_run() { curl -sf -o "$work/dl.bin" "http://127.0.0.1:$nport/src.bin"; }
# The same transfers with a client that copies nothing through user space (xfer.c): curl
# reads and writes every byte in small pieces, so it sets the pace for both servers.
X=$xfer
upx_run() { $X patch "http://127.0.0.1:$cport/upload?token=$utok" "$work/src.bin" 'Tus-Resumable:1.0.0' \
    'Upload-Offset:0' 'Content-Type:application/offset+octet-stream'; }
downx_run() { $X get "http://127.0.0.1:$cport/download?token=$dtok" "$work/dl.bin"; }
nputx_run() { $X put "http://127.0.0.1:$nport/dav/up.bin" "$work/src.bin"; }
ngetx_run() { $X get "http://127.0.0.1:$nport/src.bin" "$work/dl.bin"; }
# The same downloads into /dev/null: the servers' ceiling, without the client's disk writes.
down0_run() { curl -sf -o /dev/null "http://127.0.0.1:$cport/download?token=$dtok"; }
nget0_run() { curl -sf -o /dev/null "http://127.0.0.1:$nport/src.bin"; }

load0=$(cut -d' ' -f1 /proc/loadavg)
best t_cp pre_cp cp_run
best t_cat pre_cp cat_run
# transfers SUFFIX: upload and download through the proxy (bytes compared) and nginx, with
# the client of the up$SUFFIX_run ... functions: "" curl, x xfer.c. Sets t_up$SUFFIX etc.
transfers() {
    best "t_up$1" pre_up "up$1_run"
    cmp -s "$work/src.bin" "$work/vol/bench/0123456789abcdef0123456789abcdef/big.bin" ||
        { echo "uploaded bytes differ (client ${1:-curl})" >&2; exit 1; }
    best "t_down$1" pre_dl "down$1_run"
    cmp -s "$work/src.bin" "$work/dl.bin" || { echo "downloaded bytes differ (client ${1:-curl})" >&2; exit 1; }
    best "t_nput$1" pre_put "nput$1_run"
    best "t_nget$1" pre_dl "nget$1_run"
}
transfers ""
transfers x
best t_down0 pre_dl down0_run
best t_nget0 pre_dl nget0_run

load1=$(cut -d' ' -f1 /proc/loadavg)
echo "file: $mib MiB, best of $runs, $(nproc) cores, load average $load0 -> $load1; cp, proxy and nginx on the same disk ($work)"
printf '%-28s %8s MiB/s\n' "cp" "$(mibs "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "cat > file" "$(mibs "$t_cat")" "$(ratio "$t_cat" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "baic-storage-proxy upload" "$(mibs "$t_up")" "$(ratio "$t_up" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "nginx PUT (dav)" "$(mibs "$t_nput")" "$(ratio "$t_nput" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "baic-storage-proxy download" "$(mibs "$t_down")" "$(ratio "$t_down" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "nginx GET (sendfile)" "$(mibs "$t_nget")" "$(ratio "$t_nget" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp, %s x nginx)\n' "proxy upload, splice client" "$(mibs "$t_upx")" "$(ratio "$t_upx" "$t_cp")" "$(ratio "$t_upx" "$t_nputx")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "nginx PUT, splice client" "$(mibs "$t_nputx")" "$(ratio "$t_nputx" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x cp, %s x nginx)\n' "proxy download, splice client" "$(mibs "$t_downx")" "$(ratio "$t_downx" "$t_cp")" "$(ratio "$t_downx" "$t_ngetx")"
printf '%-28s %8s MiB/s  (%s x cp)\n' "nginx GET, splice client" "$(mibs "$t_ngetx")" "$(ratio "$t_ngetx" "$t_cp")"
printf '%-28s %8s MiB/s  (%s x nginx)\n' "proxy download, /dev/null" "$(mibs "$t_down0")" "$(ratio "$t_down0" "$t_nget0")"
printf '%-28s %8s MiB/s\n' "nginx GET, /dev/null" "$(mibs "$t_nget0")"
echo "storage_bench cp_mibs=$(mibs "$t_cp") cat_mibs=$(mibs "$t_cat") upload_mibs=$(mibs "$t_up") download_mibs=$(mibs "$t_down") nginx_put_mibs=$(mibs "$t_nput") nginx_get_mibs=$(mibs "$t_nget") upload_vs_cp=$(ratio "$t_up" "$t_cp") download_vs_cp=$(ratio "$t_down" "$t_cp") upload_vs_nginx=$(ratio "$t_up" "$t_nput") download_vs_nginx=$(ratio "$t_down" "$t_nget") upload_splice_mibs=$(mibs "$t_upx") download_splice_mibs=$(mibs "$t_downx") nginx_put_splice_mibs=$(mibs "$t_nputx") nginx_get_splice_mibs=$(mibs "$t_ngetx") upload_splice_vs_cp=$(ratio "$t_upx" "$t_cp") download_splice_vs_cp=$(ratio "$t_downx" "$t_cp") download_devnull_mibs=$(mibs "$t_down0") nginx_get_devnull_mibs=$(mibs "$t_nget0") load_start=$load0 load_end=$load1"
