# SPDX-License-Identifier: Apache-2.0
# A private image registry and baic's stock images for tests and `baic up`: source this file.
#
#   start_registry DIR         docker-registry on a free loopback port with storage in DIR;
#                              prints "127.0.0.1:PORT" once /v2/ answers
#   stop_registry DIR          stops it (by the PID it wrote into DIR)
#   ensure_images CACHE REG [busybox|python|all]
#                              builds the images into CACHE (once; build.sh skips what
#                              exists) and pushes them to REG
#
# The registry is stopped by its own PID, never by name. Exit status: 0, 77 ("skip") when
# a binary is missing or we are not root (image builds need it), 1 on failure.

BAIC_DOCKER_REGISTRY=${BAIC_DOCKER_REGISTRY:-$(command -v docker-registry || echo /usr/bin/docker-registry)}
_baic_images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../contrib/images" && pwd)

_baic_reg_port() {
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

start_registry() {
    local dir=$1 port try i secret
    if [ -z "$dir" ]; then echo "start_registry: DIR missing" >&2; return 1; fi
    if [ ! -x "$BAIC_DOCKER_REGISTRY" ]; then
        echo "start_registry: docker-registry not found (install docker-registry)" >&2
        return 77
    fi
    mkdir -p "$dir/storage" || return 1
    dir=$(cd "$dir" && pwd)
    for try in 1 2 3 4 5; do
        port=$(_baic_reg_port) || return 1
        secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        # Our own config: the packaged one listens on every address and wants htpasswd.
        cat >"$dir/config.yml" <<CFG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $secret
CFG
        "$BAIC_DOCKER_REGISTRY" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
        echo $! >"$dir/registry.pid"
        for i in $(seq 1 100); do
            if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
                echo "127.0.0.1:$port" >"$dir/registry.addr"
                echo "127.0.0.1:$port"
                return 0
            fi
            kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
            sleep 0.05
        done
        # Lost the port race or failed to start: stop what we started and retry.
        kill "$(cat "$dir/registry.pid")" 2>/dev/null
        wait "$(cat "$dir/registry.pid")" 2>/dev/null
        rm -f "$dir/registry.pid"
    done
    echo "start_registry: could not start, see $dir/registry.log" >&2
    return 1
}

stop_registry() {
    local dir=$1 pid i
    [ -f "$dir/registry.pid" ] || return 0
    pid=$(cat "$dir/registry.pid")
    kill "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    rm -f "$dir/registry.pid" "$dir/registry.addr"
    return 0
}

ensure_images() {
    local cache=$1 reg=$2 only=${3:-all} rc
    if [ -z "$cache" ] || [ -z "$reg" ]; then echo "ensure_images: CACHE REGISTRY [image]" >&2; return 1; fi
    "$_baic_images_dir/build.sh" --cache "$cache" --only "$only" >&2
    rc=$?
    [ $rc = 0 ] || return $rc
    "$_baic_images_dir/push.sh" "$reg" --cache "$cache" --only "$only" >&2
}
