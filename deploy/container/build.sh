#!/usr/bin/env bash
# Builds the code location's image from the Containerfile with podman and prints its name.
#   default     BASE_IMAGE (python:3.11-slim) from its registry; pip installs from the package index
#   OFFLINE=1   the local Debian base (base.sh) and the local wheelhouse (wheelhouse.sh), `--network none`:
#               how a machine that reaches no container registry builds it (both cached, so reruns are fast)
# Env: IMAGE, BASE_IMAGE, OFFLINE, CONTAINER_CACHE, PODMAN_RUNTIME (runc by default; see the README).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
IMAGE=${IMAGE:-localhost/usersnap-channels:dev}

args=(build --runtime "${PODMAN_RUNTIME:-runc}" --ulimit nofile=4096:4096 --ulimit nproc=4096:4096
	-f "$REPO/Containerfile" -t "$IMAGE")
if [ "${OFFLINE:-0}" = 1 ]; then
	base=$("$HERE/base.sh")
	wheels=$("$HERE/wheelhouse.sh")
	args+=(--network none --build-arg "BASE_IMAGE=$base" --build-context "wheels=$wheels")
elif [ -n "${BASE_IMAGE:-}" ]; then
	args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if ! podman "${args[@]}" "$REPO" >&2; then
	[ "${OFFLINE:-0}" = 1 ] || echo "build failed; without a reachable registry: make image OFFLINE=1" >&2
	exit 1
fi
# the image this tag named before, now untagged, would keep its layers on disk forever (ignored if in use)
current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
echo "$IMAGE"
