"""The Vega, Vega-Lite and Vega-Embed runtime that every report inlines, so it opens with the network off.

`vl-convert-python` ships these libraries (BSD-3) with its own JavaScript engine and bundles them into one
script that sets `window.vega`, `window.vegaLite` and `window.vegaEmbed`. Bundling takes seconds, so the
result is kept per process and in a cache file keyed by the library versions.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import altair as alt
import vl_convert as vlc


def vegalite_version() -> str | None:
    """The Vega-Lite version of Altair's specs when vl-convert has it (else its newest)."""
    wanted = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    return wanted if wanted in vlc.get_vegalite_versions() else None


def versions() -> str:
    """What the page says it runs: Vega, Vega-Lite and Vega-Embed versions."""
    vl = vegalite_version() or vlc.get_vegalite_versions()[-1]
    return f"Vega {vlc.get_vega_version()}, Vega-Lite {vl}, Vega-Embed {vlc.get_vega_embed_version()}"


@functools.cache
def javascript() -> str:
    """The runtime as one script (for a `<script type="module">`: its top-level names stay in its scope)."""
    key = hashlib.sha256(f"{vlc.__version__ if hasattr(vlc, '__version__') else ''}|{versions()}".encode()).hexdigest()
    cache = _cache_dir() / f"vega-runtime-{key[:16]}.js"
    try:
        return cache.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vlc.javascript_bundle(vl_version=vegalite_version())
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(bundle, encoding="utf-8")
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home: bundle again next time
    return bundle


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "usersnap_channels"
