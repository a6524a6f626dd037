#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The test command: installs what is missing, builds twice (normal and ASan/UBSan),
# runs every test, builds the example plugin out of tree against the installed SDK,
# and runs each fuzz target briefly. Exits non-zero on the first failure.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
jobs=$(nproc)
fuzz_secs=${BAIC_FUZZ_SECONDS:-15}

step() { printf '\n=== %s\n' "$*"; }

step "install dependencies"
sh contrib/install-deps.sh

step "build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "tests"
(cd build && ctest --output-on-failure -j"$jobs")

step "install to a scratch prefix and build the example plugin out of tree"
prefix=$(mktemp -d /tmp/baic-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix" >/dev/null
sh contrib/example-plugin/build-and-load.sh "$prefix"

step "build with AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DBAIC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

step "tests under ASan/UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")

step "fuzzing (${fuzz_secs}s per target)"
sh tests/fuzz/run.sh "$fuzz_secs"

step "all tests passed"
