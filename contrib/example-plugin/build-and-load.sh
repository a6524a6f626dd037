#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the example plugin out of tree against the SDK installed under PREFIX, using
# pkg-config only, then has the installed registry list it and load it for real.
# usage: build-and-load.sh PREFIX
set -eu
prefix=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/baic-example.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$here/example.c" "$here/Makefile" "$work/"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists baic-sdk || { echo "baic-sdk.pc not found under $prefix" >&2; exit 1; }
make -s -C "$work"
out=$("$prefix/bin/baic-plugins" --path "$work")
echo "$out"
echo "$out" | grep -q '^monitor/example ' || { echo "example plugin not listed" >&2; exit 1; }
"$prefix/bin/baic-plugins" --path "$work" --load monitor/example
echo "example plugin: built out of tree and loaded"
