#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang and runs each for a bounded time.
# usage: tests/fuzz/run.sh [seconds-per-target]   (default 20)
set -eu
secs=${1:-20}
src=$(cd "$(dirname "$0")/../.." && pwd)
bld=${BAIC_FUZZ_BUILD:-$src/build-fuzz}
CC=clang cmake -S "$src" -B "$bld" -DBAIC_FUZZ=ON -DBAIC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$bld" -j"$(nproc)" >/dev/null
status=0
for f in "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$f" .c)
    corpus="$src/tests/fuzz/corpus/${name#fuzz_}"
    work="$bld/fuzz-corpus/${name#fuzz_}"
    mkdir -p "$work"
    set -- "$work"
    [ -d "$corpus" ] && set -- "$@" "$corpus"
    echo "fuzz: $name for ${secs}s"
    if ! "$bld/tests/fuzz/$name" -max_total_time="$secs" -max_len=8192 -print_final_stats=0 \
        "$@" >"$bld/$name.log" 2>&1; then
        echo "fuzz: $name FAILED, see $bld/$name.log" >&2
        tail -40 "$bld/$name.log" >&2
        status=1
    fi
done
exit $status
