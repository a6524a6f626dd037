#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The run command: installs what is missing, builds, installs under $PREFIX
# (default /usr/local) and starts the whole system with `baic up`.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
prefix=${PREFIX:-/usr/local}
data_dir=${BAIC_DATA_DIR:-/var/lib/baic}

sh contrib/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build build -j"$(nproc)"
cmake --install build >/dev/null
echo "installed baic under $prefix"
"$prefix/bin/baic-plugins" --path "$prefix/lib/baic/plugins" || true
exec "$prefix/bin/baic" up --data-dir "$data_dir"
