"""Property tests for `usersnap_channels.usersnap.mapping`: it never raises and its output always obeys the rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from usersnap_channels import jsonio
from usersnap_channels.usersnap.mapping import (
    DataPoint,
    Rejection,
    map_item,
    raw_json,
    storable_json,
    strip_never_imported,
)

SCREENSHOT_URL = "https://img.usersnap.example/NEVER-IMPORTED-screenshot-url.png"
RECORDING_URL = "https://rec.usersnap.example/NEVER-IMPORTED-recording.webm"
ASSIGNEE = "NEVER-IMPORTED-assignee-id"
UPDATED = "NEVER-IMPORTED-updated-at"
RESOLVED = "NEVER-IMPORTED-resolved-at"
SECRETS = (SCREENSHOT_URL, RECORDING_URL, ASSIGNEE, UPDATED, RESOLVED)

HOSTILE = [
    "'; DROP TABLE x; --",
    'a"b\\c',
    "\x00",
    "nul\x00inside",
    "\r\n\t",
    "😀 ünï 中文",
    "\u2028\u2029",
    "%s %d {0} $1 ?",
]
ONE_MB = "x" * (1024 * 1024)

# Text that DuckDB can store (no lone surrogates; NUL allowed) and text that it cannot.
clean_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12) | st.sampled_from(HOSTILE)
surrogate = st.integers(0xD800, 0xDFFF).map(chr)
junk_text = st.text(st.characters(exclude_categories=("Cs",)) | surrogate | st.just("\x00"), max_size=12) | (
    st.sampled_from(HOSTILE)
)
non_blank = clean_text.filter(lambda s: s.strip() != "")

numbers = (
    st.integers()
    | st.integers(min_value=10**16, max_value=10**40)
    | st.integers(min_value=-(10**40), max_value=-(10**16))
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=None)
)
clean_scalars = st.none() | st.booleans() | numbers | clean_text
clean_json = st.recursive(
    clean_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(clean_text, kids, max_size=3),
    max_leaves=12,
)
junk_scalars = (
    st.none()
    | st.booleans()
    | numbers
    | st.floats()
    | st.decimals()
    | st.integers(min_value=2**63, max_value=2**200)
    | junk_text
)
junk_json = st.recursive(
    junk_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(junk_text, kids, max_size=4),
    max_leaves=20,
)

small_junk_json = st.recursive(
    junk_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(junk_text, kids, max_size=3),
    max_leaves=6,
)

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
timestamps = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31), timezones=offsets)

TOP_LEVEL_KEYS = [
    "feedback_id",
    "feedback_number",
    "public_link",
    "created_at",
    "status_type",
    "priority",
    "email",
    "custom_data",
    "screenshot",
    "ordered_inputs",
    "labels",
]


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def valid_inputs(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if draw(st.booleans()):
        entry["order"] = draw(optional(st.integers(-3, 12)))
    if draw(st.booleans()):
        entry["label"] = draw(optional(clean_text))
    kind = draw(st.sampled_from(["text", "boolean", "value", "text+value", "nothing"]))
    entry["text_value"] = draw(clean_text) if kind in ("text", "text+value") else None
    entry["boolean_value"] = draw(st.booleans()) if kind == "boolean" else None
    if kind in ("value", "text+value"):
        entry["value"] = draw(clean_text | numbers | st.booleans() | clean_json)
    return entry


def put(item: dict[str, Any], key: str, strategy: st.SearchStrategy[Any], draw: st.DrawFn) -> None:
    """Set `key` from `strategy`, or leave it absent."""
    if draw(st.booleans()) or key in ("feedback_id", "created_at"):
        item[key] = draw(strategy)


@st.composite
def valid_items(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    created = draw(timestamps)
    created_text = created.isoformat()
    if created.utcoffset() == timedelta(0) and draw(st.booleans()):
        created_text = created_text.replace("+00:00", "Z")
    item: dict[str, Any] = {}
    put(item, "feedback_id", non_blank, draw)
    put(item, "created_at", st.just(created_text), draw)
    put(item, "feedback_number", optional(st.integers(-(2**63), 2**63 - 1)), draw)
    for key in ("public_link", "status_type", "priority", "email"):
        put(item, key, optional(clean_text), draw)
    put(item, "custom_data", optional(st.dictionaries(clean_text, clean_json, max_size=5) | clean_json), draw)
    put(item, "ordered_inputs", optional(st.lists(valid_inputs(), max_size=6)), draw)
    put(item, "labels", optional(st.lists(st.fixed_dictionaries({"name": clean_text}), max_size=4)), draw)
    comments = st.lists(
        st.fixed_dictionaries({}, optional={"label": clean_text, "comment": optional(clean_text)}), max_size=3
    )
    put(
        item,
        "screenshot",
        optional(
            st.fixed_dictionaries(
                {"annotated_image_url": st.just(SCREENSHOT_URL)}, optional={"comments": optional(comments)}
            )
        ),
        draw,
    )
    # The never-imported fields, with values that must never show up anywhere.
    item["assignee_id"] = ASSIGNEE
    item["updated_at"] = UPDATED
    item["resolved_at"] = RESOLVED
    item["screen_recording"] = {"file_resource_url": RECORDING_URL, "mime_type": "video/webm"}
    keys = list(item)
    order = draw(st.permutations(keys))
    return {k: item[k] for k in order}, created


@st.composite
def almost_valid_items(draw: st.DrawFn) -> Any:
    item, _ = draw(valid_items())
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from([*TOP_LEVEL_KEYS, "<input>", "<label>", "<comment>", "<delete>"]))
        if target == "<delete>":
            if item:
                del item[draw(st.sampled_from(sorted(item)))]
        elif target == "<input>" and isinstance(item.get("ordered_inputs"), list) and item["ordered_inputs"]:
            entry = draw(st.sampled_from(item["ordered_inputs"]))
            if isinstance(entry, dict):  # an earlier round may have replaced the list with junk entries
                key = draw(st.sampled_from(["order", "label", "text_value", "boolean_value", "value"]))
                entry[key] = draw(junk_json)
        elif target == "<label>" and isinstance(item.get("labels"), list) and item["labels"]:
            item["labels"][0] = draw(junk_json | st.fixed_dictionaries({"name": junk_json}))
        elif target == "<comment>" and isinstance(item.get("screenshot"), dict):
            item["screenshot"]["comments"] = draw(junk_json | st.lists(st.fixed_dictionaries({"comment": junk_json})))
        elif target in TOP_LEVEL_KEYS:
            item[target] = draw(junk_json)
    return item


# --------------------------------------------------------------------------------------------------
# Checks shared by every property


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_result(result: Any) -> None:
    assert isinstance(result, DataPoint) != isinstance(result, Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, str) and result.reason.strip()
        assert isinstance(result.payload, str) and result.payload
        assert storable(result.reason) and storable(result.payload)
        assert result.feedback_id is None or (
            isinstance(result.feedback_id, str) and result.feedback_id.strip() and storable(result.feedback_id)
        )
        for secret in SECRETS:
            assert secret not in result.payload
            assert secret not in result.reason
        return
    dp = result
    strings = [dp.feedback_id, dp.text, *dp.tags]
    strings += [s for s in (dp.link, dp.email, dp.status, dp.priority) if s is not None]
    for turn in dp.turns:
        strings += [turn.text] + ([turn.label] if turn.label is not None else [])
    for field in dp.fields:
        strings += [field.name, field.value]
    assert all(isinstance(s, str) and storable(s) for s in strings)
    assert dp.feedback_id.strip()
    assert dp.submitted_at.tzinfo is UTC
    assert [t.turn for t in dp.turns] == list(range(1, len(dp.turns) + 1))
    assert all(t.text.strip() for t in dp.turns)
    assert dp.text == "\n\n".join(t.text for t in dp.turns)
    assert isinstance(dp.tags, tuple)
    assert all(f.value_type in ("boolean", "number", "text", "json") for f in dp.fields)
    assert all(f.origin in ("form", "custom_data") for f in dp.fields)
    keys = [(f.name, f.origin) for f in dp.fields]
    assert len(keys) == len(set(keys))
    for field in dp.fields:
        if field.value_type == "boolean":
            assert field.value in ("true", "false")
        elif field.value_type == "json":
            jsonio.loads(field.value)
        elif field.value_type == "number":
            assert Decimal(field.value).is_finite()
    text = repr(dp)
    for secret in SECRETS:
        assert secret not in text


# --------------------------------------------------------------------------------------------------
# An independent oracle for valid items


def expected_turns(item: dict[str, Any]) -> list[tuple[str | None, str]]:
    inputs = list(item.get("ordered_inputs") or [])
    ordered = [e for e in inputs if e.get("order") is not None]
    unordered = [e for e in inputs if e.get("order") is None]
    ordered = sorted(ordered, key=lambda e: e["order"])
    turns = []
    for entry in ordered + unordered:
        text = entry.get("text_value")
        if isinstance(text, str) and text.strip():
            label = entry.get("label")
            turns.append((label if label and label.strip() else None, text))
    shot = item.get("screenshot") or {}
    for comment in shot.get("comments") or []:
        text = comment.get("comment")
        if isinstance(text, str) and text.strip():
            turns.append(("Screenshot comment", text))
    return turns


def looks_numeric(text: str) -> bool:
    if not text.isascii() or text != text.strip() or "_" in text:
        return False
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def expected_value(value: Any, sniff: bool) -> tuple[str, str] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return ("true" if value else "false", "boolean")
    if isinstance(value, int):
        return (str(value), "number")
    if isinstance(value, float):
        return (repr(value), "number")
    if isinstance(value, Decimal):
        return (str(value), "number")
    if isinstance(value, str):
        return (value, "number" if sniff and looks_numeric(value) else "text")
    return ("<json>", "json")


def expected_form(item: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """(base name, raw value, sniff strings) per expected form field, in `order`."""
    inputs = list(enumerate(item.get("ordered_inputs") or []))
    ordered = sorted(((i, e) for i, e in inputs if e.get("order") is not None), key=lambda p: p[1]["order"])
    unordered = [(i, e) for i, e in inputs if e.get("order") is None]
    out = []
    for position, entry in ordered + unordered:
        value = entry.get("boolean_value")
        if value is None:
            value = entry.get("value")
        if value is None:
            continue
        label = entry.get("label")
        order = entry.get("order")
        base = label if label and label.strip() else f"Input {order if order is not None else position + 1}"
        out.append((base, value, True))
    return out


def leaves(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, bool]]:
    out = []
    for key, value in obj.items():
        path = prefix + key
        if isinstance(value, dict):
            out += leaves(value, path + ".")
        elif value is not None:
            out.append((path, value, False))
    return out


def check_named(fields: list[Any], expected: list[tuple[str, Any, bool]]) -> None:
    assert len(fields) == len(expected)
    for field, (base, value, sniff) in zip(fields, expected, strict=True):
        assert field.name == base or re.fullmatch(re.escape(base) + r" \(\d+\)", field.name), (field.name, base)
        text, value_type = expected_value(value, sniff)
        assert field.value_type == value_type
        if value_type == "json":
            assert field.value == jsonio.dumps(value)
            jsonio.loads(field.value)
        else:
            assert field.value == text
    names = [field.name for field in fields]
    assert len(names) == len(set(names))
    # The first field with a given base name keeps it unchanged.
    bases = [base for base, _, _ in expected]
    for i, (field, base) in enumerate(zip(fields, bases, strict=True)):
        if base not in bases[:i] and base not in names[:i]:
            assert field.name == base


# --------------------------------------------------------------------------------------------------
# Properties

SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(junk_json)
def test_any_json_value_never_raises(value: Any) -> None:
    check_result(map_item(value))


@SETTINGS
@given(
    st.fixed_dictionaries(
        {}, optional={key: small_junk_json for key in [*TOP_LEVEL_KEYS, "\ud800", "", "client", "is_demo"]}
    )
)
def test_any_json_object_never_raises(item: dict[str, Any]) -> None:
    item = {**item, "assignee_id": ASSIGNEE, "updated_at": UPDATED, "last_resolved_at": RESOLVED}
    check_result(map_item(item))


@SETTINGS
@given(almost_valid_items())
def test_almost_valid_items_never_raise_and_hide_never_imported(item: Any) -> None:
    check_result(map_item(item))
    raw = storable_json(strip_never_imported(item))
    assert storable(raw)
    for secret in SECRETS:
        assert secret not in raw


@SETTINGS
@given(valid_items())
def test_valid_items_map_to_data_points_that_follow_the_rules(case: tuple[dict[str, Any], datetime]) -> None:
    item, created = case
    dp = map_item(item)
    assert isinstance(dp, DataPoint), dp
    check_result(dp)
    assert dp.feedback_id == item["feedback_id"]
    assert dp.submitted_at == created.astimezone(UTC)
    assert dp.feedback_number == item.get("feedback_number")
    for key, attribute in (
        ("public_link", "link"),
        ("email", "email"),
        ("status_type", "status"),
        ("priority", "priority"),
    ):
        value = item.get(key)
        assert getattr(dp, attribute) == (value if value and value.strip() else None)
    assert dp.tags == tuple(label["name"] for label in item.get("labels") or [])
    assert [(t.label, t.text) for t in dp.turns] == expected_turns(item)
    check_named([f for f in dp.fields if f.origin == "form"], expected_form(item))
    custom = item.get("custom_data")
    check_named(
        [f for f in dp.fields if f.origin == "custom_data"],
        leaves(custom) if isinstance(custom, dict) else [],
    )
    assert [f.origin for f in dp.fields] == sorted((f.origin for f in dp.fields), key=lambda o: o != "form")


@SETTINGS
@given(valid_items(), st.sampled_from([*HOSTILE, ONE_MB]) | clean_text, st.integers(0, 20))
def test_hostile_text_round_trips_unchanged(case: tuple[dict[str, Any], datetime], text: str, order: int) -> None:
    item, _ = case
    item["ordered_inputs"] = [{"order": order, "label": "Comment", "text_value": text}]
    item["screenshot"] = {"annotated_image_url": SCREENSHOT_URL, "comments": [{"comment": text}]}
    dp = map_item(item)
    assert isinstance(dp, DataPoint), dp
    if text.strip():
        assert [t.text for t in dp.turns] == [text, text]
        assert dp.text == text + "\n\n" + text
    else:
        assert dp.turns == ()
        assert dp.text == ""


SURROGATE_SPOTS = [
    "feedback_id",
    "public_link",
    "email",
    "status_type",
    "priority",
    "labels",
    "text_value",
    "input_label",
    "value",
    "custom_key",
    "custom_value",
    "nested_custom_list",
    "screenshot_comment",
]


@SETTINGS
@given(valid_items(), st.sampled_from(SURROGATE_SPOTS), clean_text, surrogate, clean_text)
def test_lone_surrogate_in_any_mapped_string_is_rejected(
    case: tuple[dict[str, Any], datetime], spot: str, before: str, bad: str, after: str
) -> None:
    item, _ = case
    text = "x" + before + bad + after  # never blank
    inputs = item.get("ordered_inputs") or []
    if spot in ("feedback_id", "public_link", "email", "status_type", "priority"):
        item[spot] = text
    elif spot == "labels":
        item["labels"] = [*(item.get("labels") or []), {"name": text}]
    elif spot == "text_value":
        item["ordered_inputs"] = [*inputs, {"order": 1, "label": "L", "text_value": text}]
    elif spot == "input_label":
        item["ordered_inputs"] = [*inputs, {"order": 1, "label": text, "value": "v"}]
    elif spot == "value":
        item["ordered_inputs"] = [*inputs, {"order": 1, "label": "L", "value": text}]
    elif spot == "custom_key":
        item["custom_data"] = {text: 1}
    elif spot == "custom_value":
        item["custom_data"] = {"k": {"nested": text}}
    elif spot == "nested_custom_list":
        item["custom_data"] = {"k": [1, {"deep": text}]}
    else:
        item["screenshot"] = {"annotated_image_url": SCREENSHOT_URL, "comments": [{"comment": text}]}
    result = map_item(item)
    assert isinstance(result, Rejection), result
    assert result.reason.startswith("text contains invalid unicode (lone surrogate) in "), result.reason
    check_result(result)
    if spot == "feedback_id":
        assert result.feedback_id is None
    else:
        assert result.feedback_id == item["feedback_id"]


@SETTINGS
@given(almost_valid_items() | junk_json)
def test_raw_json_fast_path_equals_the_careful_path(item: Any) -> None:
    """`raw_json` is only an optimisation of `storable_json(strip_never_imported(item))`."""
    fast = raw_json(item)
    assert storable(fast)
    assert jsonio.loads(fast) == jsonio.loads(storable_json(strip_never_imported(item)))
