#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian package baic needs to build, test and run. Idempotent.
set -eu

PKGS="
build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
libltdl-dev libuv1-dev libjansson-dev libpq-dev libhiredis-dev libssl-dev check
libhttp-parser-dev libwslay-dev libjwt-dev libcurl4-openssl-dev libarchive-dev libzstd-dev
postgresql-15 postgresql-client-15 redis-server
python3 wrk nginx-light curl ca-certificates procps iproute2
crun runc skopeo umoci docker-registry debootstrap busybox-static binutils file
docker.io
xfsprogs nfs-common nfs-kernel-server
"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# Node.js (for the JS-client conformance tests) may come from another source than
# Debian's archive; only ask Debian for it when no node is on PATH.
if ! command -v node >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
else
    echo "install-deps: all packages present"
fi

# Debian's docker-registry package enables a service listening on every address
# without authentication, and docker.io a system dockerd with its own bridge and
# iptables rules; baic runs private instances of both (the registry on loopback, a
# dockerd per test), so the services this run just installed are stopped where systemd
# manages them. Services of packages that were already there are left alone.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    case " $missing " in *" docker-registry "*)
        systemctl disable --now docker-registry >/dev/null 2>&1 || true ;;
    esac
    case " $missing " in *" nfs-kernel-server "*)
        systemctl disable --now nfs-server >/dev/null 2>&1 || true ;;
    esac
    case " $missing " in *" docker.io "*)
        for unit in docker.socket docker containerd; do
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        done ;;
    esac
fi
