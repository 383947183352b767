#!/usr/bin/env bash
# A local stand-in for the public python:3.11-slim base, for machines that reach Debian's packages but no
# container registry: Debian bookworm (minbase) with Python 3.11 and venv, made by debootstrap and imported
# into podman. The root filesystem tarball is cached, so only the first run downloads anything.
# Prints the image name. Env: CONTAINER_CACHE, BASE_TAG, DEBIAN_MIRROR.
set -euo pipefail
CACHE=${CONTAINER_CACHE:-$HOME/.cache/usersnap_channels/container}
TAG=${BASE_TAG:-localhost/usersnap-channels-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TARBALL=$CACHE/base-bookworm.tar

if podman image exists "$TAG"; then echo "$TAG"; exit 0; fi
mkdir -p "$CACHE"
if [ ! -f "$TARBALL" ]; then
	command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >&2
	rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
	trap 'rm -rf "$rootfs"' EXIT
	debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
		bookworm "$rootfs" "$MIRROR" >&2
	# what python:3.11-slim leaves out too: package lists, caches, docs
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
		"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
	tar --numeric-owner -C "$rootfs" -cf "$TARBALL.partial" .
	mv "$TARBALL.partial" "$TARBALL"
fi
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$TAG" >&2
echo "$TAG"
