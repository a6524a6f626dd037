#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds baic's stock kernel images (busybox, python) as OCI image layouts with umoci, no Docker.
#
#   build.sh [--cache DIR] [--only busybox|python] [--force]
#
# Layouts land in CACHE/oci/<image> (tags: busybox 1.35, python 3.11-bookworm); push.sh
# copies them to a registry. The python root filesystem comes from debootstrap, which
# takes minutes, so its result is kept as CACHE/python-bookworm-rootfs.tar and later
# runs start from that tarball. An image whose layout already has its tag is not rebuilt
# unless --force. Needs root (umoci keeps file owners only then).
# Exit status: 0, 77 when a needed tool is missing or we are not root, 1 on failure.
set -eu
set -o pipefail

CACHE=${BAIC_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baic/images}
ONLY=all
FORCE=0
SUITE=bookworm

while [ $# -gt 0 ]; do
    case $1 in
    --cache) CACHE=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h | --help) sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $ONLY in all | busybox | python) ;; *) echo "build.sh: --only busybox|python" >&2; exit 2 ;; esac

need() {
    local t
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            echo "build.sh: $t not found (contrib/install-deps.sh installs it)" >&2
            exit 77
        fi
    done
}
if [ "$(id -u)" != 0 ]; then
    echo "build.sh: must run as root (image files keep their owners)" >&2
    exit 77
fi
need umoci

mkdir -p "$CACHE/oci"
CACHE=$(cd "$CACHE" && pwd)

# Labels every baic image carries (api-contract §11); per-image ones are added by the caller.
common_labels=(
    --config.label ai.backend.kernelspec=1
    --config.label "ai.backend.features=batch query uid-match user-input"
    --config.label ai.backend.resource.min.cpu=1
)

has_tag() { # LAYOUT TAG
    [ -f "$1/index.json" ] && umoci ls --layout "$1" 2>/dev/null | grep -qx "$2"
}

# Makes LAYOUT:TAG an image whose single layer is the tree ROOTFS, then sets its config.
# umoci insert is avoided on purpose: in 0.4.7 its layers lack the tar footer.
make_image() { # LAYOUT TAG ROOTFS umoci-config-args...
    local layout=$1 tag=$2 rootfs=$3 work
    shift 3
    rm -rf "$layout"
    umoci init --layout "$layout"
    umoci new --image "$layout:$tag"
    work=$(mktemp -d "$CACHE/bundle.XXXXXX")
    umoci unpack --image "$layout:$tag" "$work/b" >/dev/null
    # Keep owners, modes, hard links, xattrs (file capabilities) of the tree.
    tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' -cf - . |
        tar -C "$work/b/rootfs" --numeric-owner --xattrs --xattrs-include='*' -xpf -
    umoci repack --image "$layout:$tag" "$work/b"
    rm -rf "$work"
    umoci config --image "$layout:$tag" --config.workingdir /home/work \
        --config.user 1000:1000 "${common_labels[@]}" "$@"
    umoci gc --layout "$layout"
}

add_work_user() { # ROOTFS SHELL
    local r=$1 sh=$2
    mkdir -p "$r/etc" "$r/home/work"
    grep -q '^root:' "$r/etc/passwd" 2>/dev/null || echo "root:x:0:0:root:/root:$sh" >>"$r/etc/passwd"
    grep -q '^root:' "$r/etc/group" 2>/dev/null || echo "root:x:0:" >>"$r/etc/group"
    grep -q '^work:' "$r/etc/passwd" || echo "work:x:1000:1000:work:/home/work:$sh" >>"$r/etc/passwd"
    grep -q '^work:' "$r/etc/group" || echo "work:x:1000:" >>"$r/etc/group"
    if [ -f "$r/etc/shadow" ] && ! grep -q '^work:' "$r/etc/shadow"; then
        echo 'work:*:19000:0:99999:7:::' >>"$r/etc/shadow"
    fi
    chown 1000:1000 "$r/home/work"
    chmod 755 "$r/home/work"
}

build_busybox() {
    local layout=$CACHE/oci/busybox ver tag root f
    need busybox
    [ -x /bin/busybox ] || { echo "build.sh: /bin/busybox missing (busybox-static)" >&2; exit 77; }
    if ! file_is_static /bin/busybox; then
        echo "build.sh: /bin/busybox is not static (install busybox-static)" >&2
        exit 77
    fi
    ver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null | sed -E 's/^[0-9]+://; s/^([0-9]+\.[0-9]+).*/\1/')
    tag=${ver:-1.35}
    if [ $FORCE = 0 ] && has_tag "$layout" "$tag"; then
        echo "build.sh: busybox:$tag present in $layout"
        return 0
    fi
    root=$(mktemp -d "$CACHE/busybox-root.XXXXXX")
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,home/work}
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    # One symlink per applet at the path busybox itself names (bin/sh, usr/bin/env ...).
    for f in $(/bin/busybox --list-full); do
        [ "$f" = bin/busybox ] || [ -e "$root/$f" ] || ln -s /bin/busybox "$root/$f"
    done
    add_work_user "$root" /bin/sh
    make_image "$layout" "$tag" "$root" \
        --config.label ai.backend.base-distro=busybox \
        --config.label ai.backend.runtime-type=app \
        --config.label ai.backend.runtime-path=/bin/sh \
        --config.label ai.backend.resource.min.mem=16m \
        --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.env HOME=/home/work \
        --config.cmd /bin/sh
    rm -rf "$root"
    echo "build.sh: built busybox:$tag in $layout"
}

file_is_static() {
    # A static binary has no program interpreter; avoid needing file(1) for this.
    ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'
}

# The Debian archive URL the machine itself uses, from its apt sources (deb822 first).
apt_mirror() {
    local f url
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # A stanza is blank-line separated; take URIs of one whose Suites has the plain suite.
        url=$(awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; ok = 0; deb = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^#/) continue
                    if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris = u[1] }
                    if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
                }
                if (deb && ok && uris != "") { print uris; exit }
            }' "$f")
        [ -n "$url" ] && { echo "$url"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        url=$(awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$f")
        [ -n "$url" ] && { echo "$url"; return 0; }
    done
    return 1
}

build_python() {
    local layout=$CACHE/oci/python tar=$CACHE/python-$SUITE-rootfs.tar tag root mirror pyver
    if [ -f "$tar" ]; then
        echo "build.sh: reusing cached rootfs $tar"
    else
        need debootstrap
        mirror=$(apt_mirror) || { echo "build.sh: no $SUITE mirror in the apt sources" >&2; exit 1; }
        root=$(mktemp -d "$CACHE/python-root.XXXXXX")
        echo "build.sh: debootstrap $SUITE from $mirror (minutes)"
        debootstrap --variant=minbase --include=python3 "$SUITE" "$root" "$mirror" \
            >"$CACHE/debootstrap.log" 2>&1 || {
            echo "build.sh: debootstrap failed, see $CACHE/debootstrap.log" >&2
            rm -rf "$root"
            exit 1
        }
        # What a kernel never needs: downloaded packages and indexes (~40 MB).
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
            "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/debootstrap
        add_work_user "$root" /bin/bash
        tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -cf "$tar.tmp" .
        mv "$tar.tmp" "$tar"
        rm -rf "$root"
    fi
    root=$(mktemp -d "$CACHE/python-root.XXXXXX")
    tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tar"
    pyver=$(readlink "$root/usr/bin/python3" | sed -n 's/^python\([0-9.]*\)$/\1/p')
    tag=${pyver:-3}-$SUITE
    if [ $FORCE = 0 ] && has_tag "$layout" "$tag"; then
        echo "build.sh: python:$tag present in $layout"
        rm -rf "$root"
        return 0
    fi
    make_image "$layout" "$tag" "$root" \
        --config.label ai.backend.base-distro=debian12 \
        --config.label ai.backend.runtime-type=python \
        --config.label ai.backend.runtime-path=/usr/bin/python3 \
        --config.label ai.backend.resource.min.mem=64m \
        --config.label ai.backend.envs.corecount=OPENBLAS_NUM_THREADS,OMP_NUM_THREADS \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --config.env LANG=C.UTF-8 --config.env HOME=/home/work \
        --config.cmd /usr/bin/python3
    rm -rf "$root"
    echo "build.sh: built python:$tag in $layout"
}

case $ONLY in
busybox) build_busybox ;;
python) build_python ;;
all) build_busybox; build_python ;;
esac
