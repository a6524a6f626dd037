#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Pushes the image layouts build.sh made to a registry: push.sh REGISTRY [--cache DIR] [--only NAME].
#
# REGISTRY is host:port of a plain-HTTP registry (the loopback docker-registry that
# `baic up` and the tests start). Repositories: stable/busybox:<ver>, stable/python:<ver>.
# Exit status: 0, 77 when skopeo is missing, 1 on failure.
set -eu

CACHE=${BAIC_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baic/images}
ONLY=all
REG=${1:-}
[ -n "$REG" ] || { echo "usage: push.sh REGISTRY [--cache DIR] [--only busybox|python]" >&2; exit 2; }
shift
while [ $# -gt 0 ]; do
    case $1 in
    --cache) CACHE=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "push.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v skopeo >/dev/null 2>&1 || { echo "push.sh: skopeo not found" >&2; exit 77; }
command -v umoci >/dev/null 2>&1 || { echo "push.sh: umoci not found" >&2; exit 77; }

pushed=0
for name in busybox python; do
    [ "$ONLY" = all ] || [ "$ONLY" = "$name" ] || continue
    layout=$CACHE/oci/$name
    [ -f "$layout/index.json" ] || { [ "$ONLY" = all ] && continue; echo "push.sh: no $layout (run build.sh)" >&2; exit 1; }
    for tag in $(umoci ls --layout "$layout"); do
        # The registry is plain HTTP on loopback: without the flag skopeo insists on HTTPS.
        skopeo copy -q --dest-tls-verify=false "oci:$layout:$tag" "docker://$REG/stable/$name:$tag"
        echo "push.sh: $REG/stable/$name:$tag"
        pushed=$((pushed + 1))
    done
done
[ $pushed -gt 0 ] || { echo "push.sh: nothing to push under $CACHE/oci" >&2; exit 1; }
