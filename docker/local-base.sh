#!/usr/bin/env bash
# Makes a Debian bookworm base image without a registry: debootstrap's minbase from the Debian
# mirror apt already uses here, imported into podman. The Dockerfiles build on it with
# --build-arg BASE=localhost/debian-bookworm:base (and install Python and ffmpeg themselves).
#
#   docker/local-base.sh [IMAGE]     (root; IMAGE defaults to localhost/debian-bookworm:base)
set -euo pipefail

image="${1:-localhost/debian-bookworm:base}"
podman="${PODMAN:-podman}"
if $podman image exists "$image"; then
  echo "local-base.sh: $image exists"
  exit 0
fi

# The first deb822 or one-line source naming bookworm's main archive (not -security/-updates).
mirror="$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
  } | grep -E '/debian/?$' | head -n1
)" || true
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
echo "local-base.sh: debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
# Same mirror inside, and no apt lists left in the image.
echo "deb $mirror bookworm main" > "$rootfs/etc/apt/sources.list"
echo "deb $mirror bookworm-updates main" >> "$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
tar -C "$rootfs" -c . | $podman import --quiet - "$image" >/dev/null
echo "local-base.sh: imported $image"
