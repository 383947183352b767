"""One Usersnap feedback item → one data point (or one rejection).

A pure module: no I/O, no Dagster, no DuckDB. `map_item` accepts any JSON-shaped value (as parsed by
`usersnap_channels.jsonio.loads`, but also plain floats, non-JSON junk and non-dict items) and never
raises: an item that cannot be mapped becomes a `Rejection` value with a short, actionable reason, so
the partition that fetched it still succeeds.

The rules follow the product contract ("Mapping one Usersnap item to one data point"). Choices made
where the contract is silent:

* **Strict types.** Every top-level field we read must have the documented type or be null/absent:
  `feedback_number` must be a JSON integer within signed 64 bits (a bool, `12.0` or the string `"12"`
  is rejected); `public_link`, `email`, `status_type`, `priority` must be strings; `labels` a list of
  objects with a string `name`; `ordered_inputs` a list of objects whose `order` is an integer and whose
  `label`/`text_value` are strings and `boolean_value` a boolean (each when present and not null);
  `screenshot` an object whose `comments` is a list of objects with a string `comment`.
  `custom_data` is free user JSON: when it is not an object it simply yields no fields (contract).
* **Empty means absent.** `public_link`, `email`, `status`, `priority` are `None` when absent, null,
  empty or whitespace-only. Tags are kept exactly as given (order, duplicates, even an empty name).
* **Timestamps.** `created_at` must be ISO-8601 extended format *with* a `Z` or a UTC offset (a naive
  time is ambiguous and rejected); fractional seconds beyond microseconds are truncated.
* **Turns.** A text input is a turn when its `text_value` is not blank (`str.strip()` leaves
  something); the text is kept exactly as given (inner and outer whitespace, NUL bytes). A blank turn
  label becomes `None`. Inputs are sorted by `order` (stable); inputs without `order` come after, in
  list order.
* **Form fields.** One field per input at most: a boolean `boolean_value` wins over `value`. An input
  without a usable label is named `Input <order>`, or `Input <position in the list, 1-based>` when it
  has no `order` either. Names are unique per item *and origin*: `(name, origin)` is unique within a
  data point; a form label and a `custom_data` key may share a name.
* **Values.** `number` means the value text is a plain decimal number (`-3`, `4.5`, `1e3`, `+2`,
  `.5`; never `NaN`/`Infinity`/`0x10`/`1_000`) and keeps every digit as given. `custom_data` strings
  stay `text` even when they look numeric (the contract types custom data by its JSON type); only
  form `value` strings are sniffed. A non-finite float/Decimal (not valid JSON) becomes `text`.
  Lists, objects in form values, and lists in `custom_data` are `json`, written with `jsonio`.
* **custom_data.** Nested objects flatten with `.`; an empty nested object produces no field (there is
  no value to filter on; the raw item keeps it). When flattened names collide (`{"a.b": 1, "a": {"b":
  2}}`) the first keeps its name and later ones get ` (2)`, ` (3)` …, so nothing is lost.
* **Unicode.** DuckDB VARCHAR is UTF-8 and cannot hold lone surrogates: an item whose mapped strings
  contain one is rejected ("text contains invalid unicode (lone surrogate) in <where>"). NUL bytes are
  kept as they are. Reasons and payloads never contain lone surrogates (they are backslash-escaped).
* **Never imported.** `screenshot` (its image URL; only its comments survive, as turns and in the raw
  copy), `screen_recording`, `assignee_id`, `updated_at`, and resolved timestamps (top-level keys named
  or ending in `resolved_at` / `closed_at`) never reach a data point, the raw copy or a rejection
  payload. Keys inside `custom_data` are user data and are kept whatever their name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from usersnap_channels import jsonio

__all__ = [
    "NEVER_IMPORTED",
    "SCREENSHOT_COMMENT_LABEL",
    "TURN_SEPARATOR",
    "DataPoint",
    "Field",
    "Rejection",
    "Turn",
    "is_never_imported",
    "map_item",
    "parse_created_at",
    "storable_json",
    "strip_never_imported",
]

#: Top-level item keys that are never stored anywhere (data point, raw copy, rejection payload).
#: `screenshot` is special: its image URL goes, its comments stay (see `strip_never_imported`).
#: Any other top-level key ending in one of `RESOLVED_TIMESTAMP_SUFFIXES` is dropped too.
NEVER_IMPORTED: frozenset[str] = frozenset(
    {"screenshot", "screen_recording", "assignee_id", "updated_at", "resolved_at", "closed_at"}
)
#: A top-level key ending in one of these is a resolved timestamp (e.g. `last_resolved_at`).
RESOLVED_TIMESTAMP_SUFFIXES: tuple[str, ...] = ("resolved_at", "closed_at")

SCREENSHOT_COMMENT_LABEL = "Screenshot comment"
TURN_SEPARATOR = "\n\n"

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
#: Python refuses int→str beyond ~4300 digits; larger ints are written through Decimal instead.
_HUGE_INT_BITS = 13_000
_MAX_SHOWN = 80
_MAX_PROBLEMS = 3

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d+)?)?)?)",
    re.ASCII,
)
_NAIVE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Turn:
    """One conversation turn: a text input or a screenshot comment, numbered from 1."""

    turn: int
    label: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Field:
    """One filterable field; `value` is always text, `value_type` says how to read it."""

    name: str
    value: str
    value_type: str  # 'boolean' | 'number' | 'text' | 'json'
    origin: str  # 'form' | 'custom_data'


@dataclass(frozen=True, slots=True)
class DataPoint:
    """The mapped item; the caller adds channel/source/project columns and `imported_at`."""

    feedback_id: str
    feedback_number: int | None
    submitted_at: datetime
    link: str | None
    email: str | None
    status: str | None
    priority: str | None
    tags: tuple[str, ...]
    text: str
    turns: tuple[Turn, ...]
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """An item that could not be mapped; stored in `rejected_items`."""

    feedback_id: str | None
    reason: str
    payload: str


# --------------------------------------------------------------------------------------------------
# Never-imported fields and storable JSON


def is_never_imported(key: Any) -> bool:
    """Whether a top-level item key must never be stored (see `NEVER_IMPORTED`)."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in NEVER_IMPORTED or lowered.endswith(RESOLVED_TIMESTAMP_SUFFIXES)


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(v) for v in value]
    return value  # scalars are immutable


def strip_never_imported(item: Any) -> Any:
    """A deep copy of `item` without the never-imported fields (for raw storage and rejections).

    `screenshot` keeps only its comments, as `{"comments": [...]}` (or `{}` when it had none), so the
    text users wrote on a screenshot survives; a screenshot that is not an object is dropped. Non-dict
    items are returned as they are.
    """
    if not isinstance(item, dict):
        return item
    out: dict[Any, Any] = {}
    for key, value in item.items():
        if key == "screenshot":
            if isinstance(value, dict):
                out[key] = {"comments": _copy_json(value["comments"])} if "comments" in value else {}
            continue
        if is_never_imported(key):
            continue
        out[key] = _copy_json(value)
    return out


def _has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def _escape_surrogates(text: str) -> str:
    if not _has_lone_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _jsonable(value: Any, escape: bool) -> Any:
    """`value` made writable by `jsonio.dumps` as valid JSON (optionally without lone surrogates)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _escape_surrogates(value) if escape else value
    if isinstance(value, int):
        return Decimal(value) if value.bit_length() > _HUGE_INT_BITS else value
    if isinstance(value, float):
        return value if math.isfinite(value) else _float_text(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else str(value)
    if isinstance(value, dict):
        return {_key_text(k, escape): _jsonable(v, escape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, escape) for v in value]
    text = repr(value)
    return _escape_surrogates(text) if escape else text


def storable_json(value: Any) -> str:
    """Compact JSON (via `jsonio`, digits kept) that any UTF-8 store accepts.

    Lone surrogates are backslash-escaped, non-finite floats become strings, non-JSON objects their
    repr. Does not strip anything: call `strip_never_imported` first for items.
    """
    return jsonio.dumps(_jsonable(value, escape=True))


def raw_json(item: Any) -> str:
    """`storable_json(strip_never_imported(item))`, fast for ordinary items.

    The common case needs no deep copy and no walk: drop the top-level never-imported keys, dump once
    in C, and let one UTF-8 encode prove there is no lone surrogate. Anything unusual takes the slow,
    careful path.
    """
    if isinstance(item, dict):
        try:
            shallow = {k: v for k, v in item.items() if k != "screenshot" and not is_never_imported(k)}
            shot = item.get("screenshot")
            if isinstance(shot, dict):
                shallow["screenshot"] = {"comments": shot["comments"]} if "comments" in shot else {}
            text = jsonio.dumps(shallow, strict=True)
            text.encode("utf-8")
            return text
        except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
            pass
    return storable_json(strip_never_imported(item))


def _payload(item: Any) -> str:
    try:
        stripped = strip_never_imported(item)
    except Exception:
        return f"<unserialisable {type(item).__name__}>"
    try:
        return storable_json(stripped)
    except Exception:
        pass
    try:
        return _escape_surrogates(repr(stripped))
    except Exception:
        return f"<unserialisable {type(item).__name__}>"


# --------------------------------------------------------------------------------------------------
# Values


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _int_text(value: int) -> str:
    if value.bit_length() > _HUGE_INT_BITS:
        return str(Decimal(value))
    return str(value)


def _key_text(key: Any, escape: bool = False) -> str:
    if isinstance(key, str):
        return _escape_surrogates(key) if escape else key
    if key is None or isinstance(key, bool | int | float | Decimal):
        text = jsonio.dumps(_jsonable(key, escape))
    else:
        text = repr(key)
    return _escape_surrogates(text) if escape else text


def _json_text(value: Any) -> str:
    # Lone surrogates are left in place on purpose: the data-point check must see and reject them.
    return jsonio.dumps(_jsonable(value, escape=False))


def _is_number_text(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def _typed(value: Any, sniff_strings: bool) -> tuple[str, str] | None:
    """(text, value_type) for a field value; None for null. Booleans are checked before ints."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("true" if value else "false", "boolean")
    if isinstance(value, int):
        return (_int_text(value), "number")
    if isinstance(value, float):
        return (_float_text(value), "number" if math.isfinite(value) else "text")
    if isinstance(value, Decimal):
        return (str(value), "number" if value.is_finite() else "text")
    if isinstance(value, str):
        if sniff_strings and _is_number_text(value):
            return (value, "number")
        return (value, "text")
    if isinstance(value, dict | list | tuple):
        return (_json_text(value), "json")
    return (repr(value), "text")


# --------------------------------------------------------------------------------------------------
# Timestamps


def _parse_timestamp(value: Any) -> tuple[datetime | None, str | None]:
    if value is None:
        return None, "missing created_at"
    if not isinstance(value, str):
        return None, f"created_at is not an ISO-8601 timestamp: {_show(value)}"
    text = value.strip()
    if _TIMESTAMP.fullmatch(text) is None:
        if _NAIVE_TIMESTAMP.fullmatch(text) is not None:
            return None, f"created_at has no UTC offset (expected Z or ±hh:mm): {_show(value)}"
        return None, f"created_at is not an ISO-8601 timestamp: {_show(value)}"
    if text[-1] == "z":
        text = text[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
            raise ValueError("naive")
        return parsed.astimezone(UTC), None
    except (ValueError, OverflowError):
        return None, f"created_at is not an ISO-8601 timestamp: {_show(value)}"


def parse_created_at(value: Any) -> datetime | None:
    """ISO-8601 with `Z` or an offset (microseconds kept) → an aware UTC datetime; else None."""
    try:
        return _parse_timestamp(value)[0]
    except Exception:
        return None


# --------------------------------------------------------------------------------------------------
# Mapping


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _show(value: Any) -> str:
    """A short, surrogate-free rendering of a value for a reason (strings quoted, numbers as JSON)."""
    try:
        if isinstance(value, str):
            text = repr(value[: _MAX_SHOWN + 1])
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
            text = f"<{value.bit_length()}-bit integer>"
        elif value is None or isinstance(value, bool | int | float | Decimal):
            text = jsonio.dumps(_jsonable(value, escape=True))
        else:
            text = f"<{_kind(value)}>"
    except Exception:
        text = f"<{type(value).__name__}>"
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "…"
    return _escape_surrogates(text)


def _wrong_type(where: str, expected: str, value: Any) -> str:
    return f"{where} is not {expected} (got {_kind(value)})"


@dataclass(slots=True)
class _Input:
    position: int  # 0-based index in ordered_inputs
    order: int | None
    label: str | None
    text_value: str | None
    boolean_value: bool | None
    value: Any


def _optional_text(item: dict[Any, Any], key: str, problems: list[str]) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(_wrong_type(key, "a string", value))
        return None
    return value if value.strip() else None


def _feedback_id(item: dict[Any, Any], problems: list[str]) -> str | None:
    value = item.get("feedback_id")
    if value is None:
        problems.append("missing feedback_id")
    elif not isinstance(value, str):
        problems.append(_wrong_type("feedback_id", "a string", value))
    elif not value.strip():
        problems.append("feedback_id is blank")
    elif _has_lone_surrogate(value):
        problems.append("text contains invalid unicode (lone surrogate) in feedback_id")
    else:
        return value
    return None


def _feedback_number(item: dict[Any, Any], problems: list[str]) -> int | None:
    value = item.get("feedback_number")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"feedback_number is not an integer: {_show(value)}")
        return None
    if not _INT64_MIN <= value <= _INT64_MAX:
        problems.append(f"feedback_number is out of the 64-bit integer range: {_show(value)}")
        return None
    return value


def _tags(item: dict[Any, Any], problems: list[str]) -> tuple[str, ...]:
    labels = item.get("labels")
    if labels is None:
        return ()
    if not isinstance(labels, list | tuple):
        problems.append(_wrong_type("labels", "a list", labels))
        return ()
    tags: list[str] = []
    for i, label in enumerate(labels):
        if not isinstance(label, dict):
            problems.append(_wrong_type(f"labels[{i}]", "an object", label))
            continue
        name = label.get("name")
        if not isinstance(name, str):
            problems.append(_wrong_type(f"labels[{i}].name", "a string", name))
            continue
        tags.append(name)
    return tuple(tags)


def _inputs(item: dict[Any, Any], problems: list[str]) -> list[_Input]:
    raw = item.get("ordered_inputs")
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        problems.append(_wrong_type("ordered_inputs", "a list", raw))
        return []
    inputs: list[_Input] = []
    for i, entry in enumerate(raw):
        where = f"ordered_inputs[{i}]"
        if not isinstance(entry, dict):
            problems.append(_wrong_type(where, "an object", entry))
            continue
        ok = True
        order = entry.get("order")
        if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
            problems.append(f"{where}.order is not an integer: {_show(order)}")
            ok = False
        label = entry.get("label")
        if label is not None and not isinstance(label, str):
            problems.append(_wrong_type(f"{where}.label", "a string", label))
            ok = False
        text_value = entry.get("text_value")
        if text_value is not None and not isinstance(text_value, str):
            problems.append(_wrong_type(f"{where}.text_value", "a string", text_value))
            ok = False
        boolean_value = entry.get("boolean_value")
        if boolean_value is not None and not isinstance(boolean_value, bool):
            problems.append(_wrong_type(f"{where}.boolean_value", "a boolean", boolean_value))
            ok = False
        if ok:
            inputs.append(_Input(i, order, label, text_value, boolean_value, entry.get("value")))
    # Stable sort: by order; inputs without order after the ordered ones, in list order.
    inputs.sort(key=lambda inp: (inp.order is None, inp.order if inp.order is not None else 0))
    return inputs


def _screenshot_comments(item: dict[Any, Any], problems: list[str]) -> list[str]:
    shot = item.get("screenshot")
    if shot is None:
        return []
    if not isinstance(shot, dict):
        # Never show the value: it may be the image URL.
        problems.append(_wrong_type("screenshot", "an object", shot))
        return []
    comments = shot.get("comments")
    if comments is None:
        return []
    if not isinstance(comments, list | tuple):
        problems.append(_wrong_type("screenshot.comments", "a list", comments))
        return []
    texts: list[str] = []
    for i, entry in enumerate(comments):
        if not isinstance(entry, dict):
            problems.append(_wrong_type(f"screenshot.comments[{i}]", "an object", entry))
            continue
        comment = entry.get("comment")
        if comment is None:
            continue
        if not isinstance(comment, str):
            problems.append(_wrong_type(f"screenshot.comments[{i}].comment", "a string", comment))
            continue
        if comment.strip():
            texts.append(comment)
    return texts


class _Names:
    """Hands out unique names: a repeated name gets ` (2)`, ` (3)` … (skipping any already taken)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, name: str) -> str:
        candidate = name
        n = 1
        while candidate in self._used:
            n += 1
            candidate = f"{name} ({n})"
        self._used.add(candidate)
        return candidate


def _form_fields(inputs: list[_Input]) -> list[Field]:
    names = _Names()
    fields: list[Field] = []
    for inp in inputs:
        if inp.boolean_value is not None:
            typed: tuple[str, str] | None = ("true" if inp.boolean_value else "false", "boolean")
        else:
            typed = _typed(inp.value, sniff_strings=True)
        if typed is None:
            continue
        if inp.label is not None and inp.label.strip():
            base = inp.label
        else:
            base = f"Input {inp.order if inp.order is not None else inp.position + 1}"
        fields.append(Field(names.claim(base), typed[0], typed[1], "form"))
    return fields


def _flatten(obj: dict[Any, Any], prefix: str | None, out: list[tuple[str, Any]]) -> None:
    for key, value in obj.items():
        name = _key_text(key)
        full = name if prefix is None else f"{prefix}.{name}"
        if value is None:
            continue
        if isinstance(value, dict):
            if value:  # an empty nested object has nothing to filter on: no field
                _flatten(value, full, out)
            continue
        out.append((full, value))


def _custom_fields(item: dict[Any, Any]) -> list[Field]:
    custom = item.get("custom_data")
    if not isinstance(custom, dict) or not custom:
        return []
    flat: list[tuple[str, Any]] = []
    _flatten(custom, None, flat)
    names = _Names()
    fields: list[Field] = []
    for name, value in flat:
        typed = _typed(value, sniff_strings=False)
        if typed is None:  # pragma: no cover - nulls are skipped while flattening
            continue
        fields.append(Field(names.claim(name), typed[0], typed[1], "custom_data"))
    return fields


def _surrogate_location(dp: DataPoint) -> str | None:
    texts = [dp.link, dp.email, dp.status, dp.priority, dp.text, *dp.tags]
    texts += [t.label for t in dp.turns] + [f.name for f in dp.fields] + [f.value for f in dp.fields]
    if not _has_lone_surrogate("".join(t for t in texts if t is not None)):
        return None  # one search over everything: the common case
    checks: list[tuple[str, str | None]] = [
        ("public_link", dp.link),
        ("email", dp.email),
        ("status_type", dp.status),
        ("priority", dp.priority),
    ]
    checks += [(f"labels[{i}].name", tag) for i, tag in enumerate(dp.tags)]
    for turn in dp.turns:
        checks += [(f"turn {turn.turn} label", turn.label), (f"turn {turn.turn} text", turn.text)]
    for field in dp.fields:
        checks += [
            (f"{field.origin} field name {_show(field.name)}", field.name),
            (f"{field.origin} field {_show(field.name)}", field.value),
        ]
    for where, text in checks:
        if text is not None and _has_lone_surrogate(text):
            return where
    return None


def _reject(item: Any, feedback_id: str | None, problems: list[str]) -> Rejection:
    shown = problems[:_MAX_PROBLEMS]
    reason = "; ".join(shown)
    if len(problems) > len(shown):
        reason += f"; and {len(problems) - len(shown)} more"
    return Rejection(feedback_id, _escape_surrogates(reason), _payload(item))


def _map(item: Any) -> DataPoint | Rejection:
    if not isinstance(item, dict):
        return _reject(item, None, [_wrong_type("item", "a JSON object", item)])
    problems: list[str] = []
    feedback_id = _feedback_id(item, problems)
    submitted_at, why = _parse_timestamp(item.get("created_at"))
    if why is not None:
        problems.append(why)
    feedback_number = _feedback_number(item, problems)
    link = _optional_text(item, "public_link", problems)
    email = _optional_text(item, "email", problems)
    status = _optional_text(item, "status_type", problems)
    priority = _optional_text(item, "priority", problems)
    tags = _tags(item, problems)
    inputs = _inputs(item, problems)
    comments = _screenshot_comments(item, problems)
    if problems or feedback_id is None or submitted_at is None:
        return _reject(item, feedback_id, problems or ["item could not be mapped"])

    turn_texts: list[tuple[str | None, str]] = [
        (inp.label if inp.label is not None and inp.label.strip() else None, inp.text_value)
        for inp in inputs
        if inp.text_value is not None and inp.text_value.strip()
    ]
    turn_texts += [(SCREENSHOT_COMMENT_LABEL, comment) for comment in comments]
    turns = tuple(Turn(n, label, text) for n, (label, text) in enumerate(turn_texts, start=1))
    fields = tuple(_form_fields(inputs) + _custom_fields(item))
    dp = DataPoint(
        feedback_id=feedback_id,
        feedback_number=feedback_number,
        submitted_at=submitted_at,
        link=link,
        email=email,
        status=status,
        priority=priority,
        tags=tags,
        text=TURN_SEPARATOR.join(turn.text for turn in turns),
        turns=turns,
        fields=fields,
    )
    where = _surrogate_location(dp)
    if where is not None:
        return _reject(item, feedback_id, [f"text contains invalid unicode (lone surrogate) in {where}"])
    return dp


def _readable_feedback_id(item: Any) -> str | None:
    try:
        value = item.get("feedback_id") if isinstance(item, dict) else None
        if isinstance(value, str) and value.strip() and not _has_lone_surrogate(value):
            return value
    except Exception:
        pass
    return None


def map_item(item: Any) -> DataPoint | Rejection:
    """Map one Usersnap feedback item; never raises (a bad item is a `Rejection`)."""
    try:
        return _map(item)
    except RecursionError:
        reason = "item is nested too deeply to map"
    except Exception as exc:
        reason = f"item could not be mapped ({type(exc).__name__})"
    try:
        return _reject(item, _readable_feedback_id(item), [reason])
    except Exception:
        return Rejection(None, reason, f"<unserialisable {type(item).__name__}>")
