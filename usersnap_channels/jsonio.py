"""JSON in and out without losing digits.

Usersnap's `custom_data` and input values may carry numbers such as `12345678901234567` or
`0.1000000000000000055511`; the product promises to keep every digit, so non-integer numbers are read
as `Decimal` and written back verbatim. Every JSON parse or dump of Usersnap data goes through here.
"""

from __future__ import annotations

from typing import Any

import simplejson


def loads(data: str | bytes) -> Any:
    """Parse JSON; floats become `Decimal`, integers stay exact `int`."""
    return simplejson.loads(data, use_decimal=True)


def dumps(obj: Any, *, strict: bool = False) -> str:
    """Serialise compactly; `Decimal` is written as a JSON number with its original digits.

    `strict=True` raises `ValueError` on NaN/Infinity, which are not JSON (DuckDB's JSON type refuses them).
    """
    return simplejson.dumps(obj, use_decimal=True, separators=(",", ":"), ensure_ascii=False, allow_nan=not strict)
