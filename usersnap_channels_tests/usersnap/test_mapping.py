"""Unit tests for `usersnap_channels.usersnap.mapping`: one (or more) per mapping rule of the product spec."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from usersnap_channels import jsonio
from usersnap_channels.usersnap.mapping import (
    NEVER_IMPORTED,
    DataPoint,
    Field,
    Rejection,
    Turn,
    is_never_imported,
    map_item,
    parse_created_at,
    storable_json,
    strip_never_imported,
)

SCREENSHOT_URL = "https://img.usersnap.example/annotated-SECRET-123.png"
RECORDING_URL = "https://rec.usersnap.example/recording-SECRET-456.webm"
ASSIGNEE = "assignee-SECRET-789"
UPDATED = "2031-01-02T03:04:05.000006Z"
RESOLVED = "2032-02-03T04:05:06.000007Z"
SECRETS = (SCREENSHOT_URL, RECORDING_URL, ASSIGNEE, UPDATED, RESOLVED)


def make_item(**overrides: Any) -> dict[str, Any]:
    """A realistic, valid Usersnap item carrying every never-imported field."""
    item: dict[str, Any] = {
        "feedback_id": "9b2f6a52-0d3c-4f4a-9a53-0c1c2d3e4f50",
        "feedback_number": 42,
        "public_link": "https://app.usersnap.com/l/feedback/9b2f6a52",
        "project_id": "p-1",
        "created_at": "2026-11-01T10:11:12.123456Z",
        "updated_at": UPDATED,
        "resolved_at": RESOLVED,
        "status_type": "open",
        "priority": "high",
        "assignee_id": ASSIGNEE,
        "is_demo": False,
        "email": "ann@example.com",
        "client": {"url": "https://shop.example/cart", "browser_name": "Firefox"},
        "custom_data": {"plan": "pro"},
        "screenshot": {
            "annotated_image_url": SCREENSHOT_URL,
            "comments": [{"label": "1", "comment": "This button is broken"}],
        },
        "screen_recording": {"file_resource_url": RECORDING_URL, "mime_type": "video/webm"},
        "ordered_inputs": [{"order": 1, "label": "Comment", "text_value": "Checkout fails"}],
        "labels": [{"company_label_id": 1, "identifier": "bug", "name": "Bug", "color": "#f00"}],
    }
    item.update(overrides)
    return item


def mapped(item: Any) -> DataPoint:
    result = map_item(item)
    assert isinstance(result, DataPoint), result
    return result


def rejected(item: Any) -> Rejection:
    result = map_item(item)
    assert isinstance(result, Rejection), result
    return result


def form(dp: DataPoint) -> list[tuple[str, str, str]]:
    return [(f.name, f.value, f.value_type) for f in dp.fields if f.origin == "form"]


def custom(dp: DataPoint) -> list[tuple[str, str, str]]:
    return [(f.name, f.value, f.value_type) for f in dp.fields if f.origin == "custom_data"]


def inp(order: Any = None, label: Any = None, **kw: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"order": order, "label": label, "boolean_value": None, "text_value": None}
    entry.update(kw)
    return entry


# --- the whole item --------------------------------------------------------------------------------


def test_valid_item_maps_every_column() -> None:
    dp = mapped(make_item())
    assert dp.feedback_id == "9b2f6a52-0d3c-4f4a-9a53-0c1c2d3e4f50"
    assert dp.feedback_number == 42
    assert dp.submitted_at == datetime(2026, 11, 1, 10, 11, 12, 123456, tzinfo=UTC)
    assert dp.link == "https://app.usersnap.com/l/feedback/9b2f6a52"
    assert dp.email == "ann@example.com"
    assert dp.status == "open"
    assert dp.priority == "high"
    assert dp.tags == ("Bug",)
    assert dp.turns == (
        Turn(1, "Comment", "Checkout fails"),
        Turn(2, "Screenshot comment", "This button is broken"),
    )
    assert dp.text == "Checkout fails\n\nThis button is broken"
    assert dp.fields == (Field("plan", "pro", "text", "custom_data"),)


def test_data_point_never_contains_never_imported_values() -> None:
    text = repr(mapped(make_item()))
    for secret in SECRETS:
        assert secret not in text


def test_item_json_from_jsonio_maps() -> None:
    raw = jsonio.dumps(make_item(custom_data={"mrr": Decimal("1234.50")}))
    dp = mapped(jsonio.loads(raw))
    assert custom(dp) == [("mrr", "1234.50", "number")]


# --- created_at ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01T10:11:12.123456Z", datetime(2026, 11, 1, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2026-11-01T10:11:12Z", datetime(2026, 11, 1, 10, 11, 12, tzinfo=UTC)),
        ("2026-11-01T10:11:12.5+02:00", datetime(2026, 11, 1, 8, 11, 12, 500000, tzinfo=UTC)),
        ("2026-11-01T00:30:00-05:30", datetime(2026, 11, 1, 6, 0, 0, tzinfo=UTC)),
        ("2026-11-01 10:11:12+0000", datetime(2026, 11, 1, 10, 11, 12, tzinfo=UTC)),
        ("2026-11-01t10:11:12z", datetime(2026, 11, 1, 10, 11, 12, tzinfo=UTC)),
        ("2026-11-01T10:11:12.123456789Z", datetime(2026, 11, 1, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2026-11-01T10:11Z", datetime(2026, 11, 1, 10, 11, tzinfo=UTC)),
        ("  2026-11-01T10:11:12Z\n", datetime(2026, 11, 1, 10, 11, 12, tzinfo=UTC)),
    ],
)
def test_parse_created_at_accepts_iso_8601_with_offset(value: str, expected: datetime) -> None:
    parsed = parse_created_at(value)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "yesterday",
        "2026-11-01T10:11:12",  # naive: ambiguous
        "2026-11-01",
        "2026-13-01T10:11:12Z",
        "2026-11-01T24:00:01Z",
        "2026-11-01T23:59:60Z",
        "２０２６-11-01T10:11:12Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "2026-11-01T10:11:12Z trailing",
        1761991872,
        Decimal("1761991872.5"),
        True,
        ["2026-11-01T10:11:12Z"],
        {"date": "2026-11-01T10:11:12Z"},
        datetime(2026, 11, 1, tzinfo=UTC),  # not JSON: not a string
    ],
)
def test_parse_created_at_returns_none_when_unparsable(value: Any) -> None:
    assert parse_created_at(value) is None


def test_submitted_at_is_utc_and_keeps_microseconds() -> None:
    dp = mapped(make_item(created_at="2026-11-01T23:30:00.000001-01:00"))
    assert dp.submitted_at == datetime(2026, 11, 2, 0, 30, 0, 1, tzinfo=UTC)


# --- turns -----------------------------------------------------------------------------------------


def test_turns_follow_order_then_unordered_then_screenshot_comments() -> None:
    dp = mapped(
        make_item(
            ordered_inputs=[
                inp(3, "Third", text_value="c"),
                inp(None, "Unordered A", text_value="x"),
                inp(1, "First", text_value="a"),
                inp(2, "Second (dup order A)", text_value="b1"),
                inp(None, "Unordered B", text_value="y"),
                inp(2, "Second (dup order B)", text_value="b2"),
            ],
            screenshot={"annotated_image_url": SCREENSHOT_URL, "comments": [{"comment": "s1"}, {"comment": "s2"}]},
        )
    )
    assert [(t.turn, t.label, t.text) for t in dp.turns] == [
        (1, "First", "a"),
        (2, "Second (dup order A)", "b1"),
        (3, "Second (dup order B)", "b2"),
        (4, "Third", "c"),
        (5, "Unordered A", "x"),
        (6, "Unordered B", "y"),
        (7, "Screenshot comment", "s1"),
        (8, "Screenshot comment", "s2"),
    ]
    assert dp.text == "a\n\nb1\n\nb2\n\nc\n\nx\n\ny\n\ns1\n\ns2"


@pytest.mark.parametrize("blank", ["", " ", "\n\t ", "\u00a0", "\u2003\r\n"])
def test_blank_text_values_and_comments_are_not_turns(blank: str) -> None:
    dp = mapped(
        make_item(
            ordered_inputs=[inp(1, "Comment", text_value=blank), inp(2, "Other", text_value="kept")],
            screenshot={"comments": [{"comment": blank}, {"label": "2"}, {"comment": None}]},
        )
    )
    assert dp.turns == (Turn(1, "Other", "kept"),)


@pytest.mark.parametrize(
    ("label", "expected"),
    [("Comment", "Comment"), (None, None), ("", None), ("   ", None), (" spaced ", " spaced ")],
)
def test_turn_label_is_the_input_label(label: Any, expected: str | None) -> None:
    entry = inp(1, text_value="hi")
    if label is None:
        del entry["label"]
    else:
        entry["label"] = label
    dp = mapped(make_item(ordered_inputs=[entry], screenshot=None))
    assert dp.turns == (Turn(1, expected, "hi"),)


@pytest.mark.parametrize("text", ["  leading and trailing  ", "line1\n\nline2", "tab\tinside", "a\x00b", "ünï😀"])
def test_turn_text_is_kept_exactly_as_given(text: str) -> None:
    dp = mapped(make_item(ordered_inputs=[inp(1, "Comment", text_value=text)], screenshot=None))
    assert dp.turns[0].text == text
    assert dp.text == text


@pytest.mark.parametrize(
    "overrides",
    [
        {"ordered_inputs": [], "screenshot": None},
        {"ordered_inputs": None, "screenshot": {"comments": []}},
        {"ordered_inputs": [inp(1, "Rating", value="5")], "screenshot": {"annotated_image_url": SCREENSHOT_URL}},
    ],
)
def test_item_without_any_text_is_still_a_data_point(overrides: dict[str, Any]) -> None:
    item = make_item(**overrides)
    dp = mapped(item)
    assert dp.text == ""
    assert dp.turns == ()


def test_item_without_optional_keys_maps() -> None:
    dp = mapped({"feedback_id": "only-id", "created_at": "2026-11-01T00:00:00Z"})
    assert dp == DataPoint(
        feedback_id="only-id",
        feedback_number=None,
        submitted_at=datetime(2026, 11, 1, tzinfo=UTC),
        link=None,
        email=None,
        status=None,
        priority=None,
        tags=(),
        text="",
        turns=(),
        fields=(),
    )


def test_text_input_is_a_turn_not_a_field() -> None:
    dp = mapped(
        make_item(ordered_inputs=[inp(1, "Comment", text_value="hello", value=None)], custom_data=None, screenshot=None)
    )
    assert dp.fields == ()
    assert dp.turns == (Turn(1, "Comment", "hello"),)


# --- form fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (inp(1, "Yes?", boolean_value=True), ("Yes?", "true", "boolean")),
        (inp(1, "Yes?", boolean_value=False), ("Yes?", "false", "boolean")),
        (inp(1, "NPS", value="9"), ("NPS", "9", "number")),
        (inp(1, "Stars", value="4.5"), ("Stars", "4.5", "number")),
        (inp(1, "Delta", value="-3"), ("Delta", "-3", "number")),
        (inp(1, "Sci", value="1e3"), ("Sci", "1e3", "number")),
        (inp(1, "Plus", value="+2"), ("Plus", "+2", "number")),
        (inp(1, "Zip", value="007"), ("Zip", "007", "number")),
        (inp(1, "Big", value="12345678901234567"), ("Big", "12345678901234567", "number")),
        (inp(1, "Choice", value="Very happy"), ("Choice", "Very happy", "text")),
        (inp(1, "NaN", value="NaN"), ("NaN", "NaN", "text")),
        (inp(1, "Inf", value="Infinity"), ("Inf", "Infinity", "text")),
        (inp(1, "Underscore", value="1_000"), ("Underscore", "1_000", "text")),
        (inp(1, "Hex", value="0x10"), ("Hex", "0x10", "text")),
        (inp(1, "Spaced", value=" 9 "), ("Spaced", " 9 ", "text")),
        (inp(1, "Arabic digits", value="٣"), ("Arabic digits", "٣", "text")),
        (inp(1, "Empty", value=""), ("Empty", "", "text")),
        (inp(1, "Int", value=7), ("Int", "7", "number")),
        (inp(1, "HugeInt", value=12345678901234567), ("HugeInt", "12345678901234567", "number")),
        (
            inp(1, "Dec", value=Decimal("0.1000000000000000055511151231257827")),
            ("Dec", "0.1000000000000000055511151231257827", "number"),
        ),
        (inp(1, "Float", value=0.5), ("Float", "0.5", "number")),
        (inp(1, "BoolValue", value=True), ("BoolValue", "true", "boolean")),
        (inp(1, "Obj", value={"a": [1, Decimal("2.50")]}), ("Obj", '{"a":[1,2.50]}', "json")),
        (inp(1, "List", value=["x", "y"]), ("List", '["x","y"]', "json")),
        (inp(1, "Both", boolean_value=True, value="ignored"), ("Both", "true", "boolean")),
    ],
)
def test_form_field_values_and_types(entry: dict[str, Any], expected: tuple[str, str, str]) -> None:
    dp = mapped(make_item(ordered_inputs=[entry], custom_data=None))
    assert form(dp) == [expected]


@pytest.mark.parametrize(
    "entry",
    [inp(1, "Nothing"), inp(1, "Null value", value=None), inp(1, "Null bool", boolean_value=None)],
)
def test_input_without_value_is_not_a_field(entry: dict[str, Any]) -> None:
    assert form(mapped(make_item(ordered_inputs=[entry]))) == []


def test_text_input_with_a_value_is_a_turn_and_a_field() -> None:
    dp = mapped(make_item(ordered_inputs=[inp(1, "Other", text_value="free text", value="Other")], screenshot=None))
    assert dp.turns == (Turn(1, "Other", "free text"),)
    assert form(dp) == [("Other", "Other", "text")]


@pytest.mark.parametrize(
    ("entries", "names"),
    [
        ([inp(3, None, value="a")], ["Input 3"]),
        ([inp(3, "", value="a")], ["Input 3"]),
        ([inp(3, "  ", value="a")], ["Input 3"]),
        ([{"order": 5, "value": "a"}], ["Input 5"]),
        # no order either: the 1-based position in the list
        ([inp(1, "A", value="x"), {"value": "a"}], ["A", "Input 2"]),
        # repeated names get (2), (3)… in `order`, not in list order
        (
            [inp(3, "Rating", value="c"), inp(1, "Rating", value="a"), inp(2, "Rating", value="b")],
            ["Rating", "Rating (2)", "Rating (3)"],
        ),
        ([inp(1, "A", value="1"), inp(2, "A (2)", value="2"), inp(3, "A", value="3")], ["A", "A (2)", "A (3)"]),
        ([inp(1, "A", value="1"), inp(2, "A", value="2"), inp(3, "A (2)", value="3")], ["A", "A (2)", "A (2) (2)"]),
        ([inp(2, None, value="1"), inp(7, "Input 2", value="2")], ["Input 2", "Input 2 (2)"]),
    ],
)
def test_form_field_names(entries: list[dict[str, Any]], names: list[str]) -> None:
    dp = mapped(make_item(ordered_inputs=entries))
    assert [name for name, _, _ in form(dp)] == names


def test_form_fields_are_in_order() -> None:
    dp = mapped(make_item(ordered_inputs=[inp(2, "B", value="2"), inp(None, "C", value="3"), inp(1, "A", value="1")]))
    assert form(dp) == [("A", "1", "number"), ("B", "2", "number"), ("C", "3", "number")]


def test_form_and_custom_data_may_share_a_name() -> None:
    dp = mapped(make_item(ordered_inputs=[inp(1, "plan", value="free")], custom_data={"plan": "pro"}))
    assert [(f.name, f.origin) for f in dp.fields] == [("plan", "form"), ("plan", "custom_data")]


# --- custom data -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom_data", "expected"),
    [
        ({"user": {"id": 7}}, [("user.id", "7", "number")]),
        ({"a": {"b": {"c": "deep"}}}, [("a.b.c", "deep", "text")]),
        ({"mrr": 12345678901234567}, [("mrr", "12345678901234567", "number")]),
        ({"big": 10**40}, [("big", str(10**40), "number")]),
        ({"neg": -5}, [("neg", "-5", "number")]),
        (
            {"r": Decimal("0.1000000000000000055511151231257827")},
            [("r", "0.1000000000000000055511151231257827", "number")],
        ),
        ({"sci": Decimal("1E+400")}, [("sci", "1E+400", "number")]),
        ({"trailing": Decimal("2.50")}, [("trailing", "2.50", "number")]),
        ({"f": 0.1}, [("f", "0.1", "number")]),
        ({"nan": float("nan")}, [("nan", "NaN", "text")]),
        ({"dnan": Decimal("NaN")}, [("dnan", "NaN", "text")]),
        ({"on": True, "off": False}, [("on", "true", "boolean"), ("off", "false", "boolean")]),
        ({"role": "admin"}, [("role", "admin", "text")]),
        ({"numeric_string": "42"}, [("numeric_string", "42", "text")]),
        ({"empty_string": ""}, [("empty_string", "", "text")]),
        ({"list": [1, "a", None, {"x": Decimal("1.10")}]}, [("list", '[1,"a",null,{"x":1.10}]', "json")]),
        ({"empty_list": []}, [("empty_list", "[]", "json")]),
        ({"nul": None, "kept": 1}, [("kept", "1", "number")]),
        ({"user": {"id": None, "name": "Ann"}}, [("user.name", "Ann", "text")]),
        ({"empty": {}, "kept": 1}, [("kept", "1", "number")]),
        ({"user": {"prefs": {}}}, []),
        ({"Mixed Case Key ü": 1}, [("Mixed Case Key ü", "1", "number")]),
        ({"": "empty key"}, [("", "empty key", "text")]),
        # user data named like never-imported item fields is kept: only top-level item keys are dropped
        ({"assignee_id": "u1", "updated_at": "t"}, [("assignee_id", "u1", "text"), ("updated_at", "t", "text")]),
        # collisions: the first keeps its name, later ones get (2), (3)…
        ({"a.b": 1, "a": {"b": 2}}, [("a.b", "1", "number"), ("a.b (2)", "2", "number")]),
        (
            {"a": {"b": 1}, "a.b": 2, "x": {"a.b": 0}, "a.b (2)": 3},
            [
                ("a.b", "1", "number"),
                ("a.b (2)", "2", "number"),
                ("x.a.b", "0", "number"),
                ("a.b (2) (2)", "3", "number"),
            ],
        ),
    ],
)
def test_custom_data_fields(custom_data: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    dp = mapped(make_item(custom_data=custom_data, ordered_inputs=[]))
    assert custom(dp) == expected
    assert all(f.origin == "custom_data" for f in dp.fields)


@pytest.mark.parametrize("custom_data", [None, {}, [], [{"a": 1}], "plan=pro", 7, True, Decimal("1.5")])
def test_custom_data_null_empty_or_not_an_object_gives_no_fields(custom_data: Any) -> None:
    dp = mapped(make_item(custom_data=custom_data, ordered_inputs=[]))
    assert dp.fields == ()


def test_custom_data_absent_gives_no_fields() -> None:
    item = make_item(ordered_inputs=[])
    del item["custom_data"]
    assert mapped(item).fields == ()


def test_booleans_are_not_numbers() -> None:
    dp = mapped(make_item(custom_data={"t": True, "one": 1}, ordered_inputs=[inp(1, "v", value=False)]))
    assert [(f.name, f.value, f.value_type) for f in dp.fields] == [
        ("v", "false", "boolean"),
        ("t", "true", "boolean"),
        ("one", "1", "number"),
    ]


def test_numbers_survive_a_jsonio_round_trip_digit_for_digit() -> None:
    raw = (
        '{"feedback_id":"n","created_at":"2026-11-01T00:00:00Z","custom_data":{"a":12345678901234567,'
        '"b":0.1000000000000000055511151231257827,"c":1e3,"d":-0.0}}'
    )
    dp = mapped(jsonio.loads(raw))
    assert custom(dp) == [
        ("a", "12345678901234567", "number"),
        ("b", "0.1000000000000000055511151231257827", "number"),
        ("c", "1E+3", "number"),
        ("d", "-0.0", "number"),
    ]


# --- email, status, priority, link, tags -----------------------------------------------------------


@pytest.mark.parametrize("key", ["email", "status_type", "priority", "public_link"])
@pytest.mark.parametrize("value", ["<absent>", None, "", "   "])
def test_optional_strings_are_null_when_absent_or_empty(key: str, value: Any) -> None:
    item = make_item()
    if value == "<absent>":
        del item[key]
    else:
        item[key] = value
    dp = mapped(item)
    attribute = {"email": "email", "status_type": "status", "priority": "priority", "public_link": "link"}[key]
    assert getattr(dp, attribute) is None


@pytest.mark.parametrize(
    ("labels", "tags"),
    [
        ("<absent>", ()),
        (None, ()),
        ([], ()),
        ([{"name": "Bug"}, {"name": "UI", "color": "#0f0"}, {"name": "Bug"}], ("Bug", "UI", "Bug")),
        ([{"name": "z"}, {"name": "a"}], ("z", "a")),
    ],
)
def test_tags_are_label_names_in_order(labels: Any, tags: tuple[str, ...]) -> None:
    item = make_item()
    if labels == "<absent>":
        del item["labels"]
    else:
        item["labels"] = labels
    assert mapped(item).tags == tags


# --- rejections ------------------------------------------------------------------------------------

GOOD_ID = "9b2f6a52-0d3c-4f4a-9a53-0c1c2d3e4f50"


@pytest.mark.parametrize(
    ("overrides", "reason", "feedback_id"),
    [
        ({"feedback_id": None}, "missing feedback_id", None),
        ({"feedback_id": "<absent>"}, "missing feedback_id", None),
        ({"feedback_id": ""}, "feedback_id is blank", None),
        ({"feedback_id": "  "}, "feedback_id is blank", None),
        ({"feedback_id": 123}, "feedback_id is not a string (got number)", None),
        ({"created_at": "<absent>"}, "missing created_at", GOOD_ID),
        ({"created_at": "yesterday"}, "created_at is not an ISO-8601 timestamp: 'yesterday'", GOOD_ID),
        ({"created_at": 1761991872}, "created_at is not an ISO-8601 timestamp: 1761991872", GOOD_ID),
        ({"created_at": "2026-11-01T10:00:00"}, "created_at has no UTC offset", GOOD_ID),
        ({"feedback_number": "12"}, "feedback_number is not an integer: '12'", GOOD_ID),
        ({"feedback_number": True}, "feedback_number is not an integer: true", GOOD_ID),
        ({"feedback_number": Decimal("12.0")}, "feedback_number is not an integer: 12.0", GOOD_ID),
        ({"feedback_number": 2**63}, "feedback_number is out of the 64-bit integer range", GOOD_ID),
        ({"public_link": 5}, "public_link is not a string (got number)", GOOD_ID),
        ({"email": ["a@b.c"]}, "email is not a string (got list)", GOOD_ID),
        ({"status_type": {"name": "open"}}, "status_type is not a string (got object)", GOOD_ID),
        ({"priority": 3}, "priority is not a string (got number)", GOOD_ID),
        ({"labels": "Bug"}, "labels is not a list (got string)", GOOD_ID),
        ({"labels": {"name": "Bug"}}, "labels is not a list (got object)", GOOD_ID),
        ({"labels": ["Bug"]}, "labels[0] is not an object (got string)", GOOD_ID),
        ({"labels": [{"name": "ok"}, {"identifier": "bug"}]}, "labels[1].name is not a string (got null)", GOOD_ID),
        ({"labels": [{"name": 7}]}, "labels[0].name is not a string (got number)", GOOD_ID),
        ({"ordered_inputs": {"order": 1}}, "ordered_inputs is not a list (got object)", GOOD_ID),
        ({"ordered_inputs": "text"}, "ordered_inputs is not a list (got string)", GOOD_ID),
        ({"ordered_inputs": [None]}, "ordered_inputs[0] is not an object (got null)", GOOD_ID),
        (
            {"ordered_inputs": [inp(1, text_value=5)]},
            "ordered_inputs[0].text_value is not a string (got number)",
            GOOD_ID,
        ),
        ({"ordered_inputs": [inp(1, label=["x"])]}, "ordered_inputs[0].label is not a string (got list)", GOOD_ID),
        ({"ordered_inputs": [inp("1", "A")]}, "ordered_inputs[0].order is not an integer: '1'", GOOD_ID),
        ({"ordered_inputs": [inp(True, "A")]}, "ordered_inputs[0].order is not an integer: true", GOOD_ID),
        (
            {"ordered_inputs": [inp(1, "A", boolean_value="yes")]},
            "ordered_inputs[0].boolean_value is not a boolean (got string)",
            GOOD_ID,
        ),
        ({"screenshot": SCREENSHOT_URL}, "screenshot is not an object (got string)", GOOD_ID),
        ({"screenshot": [1]}, "screenshot is not an object (got list)", GOOD_ID),
        ({"screenshot": {"comments": "nice"}}, "screenshot.comments is not a list (got string)", GOOD_ID),
        ({"screenshot": {"comments": ["nice"]}}, "screenshot.comments[0] is not an object (got string)", GOOD_ID),
        (
            {"screenshot": {"comments": [{"comment": 1}]}},
            "screenshot.comments[0].comment is not a string (got number)",
            GOOD_ID,
        ),
    ],
)
def test_rejections(overrides: dict[str, Any], reason: str, feedback_id: str | None) -> None:
    item = make_item()
    for key, value in overrides.items():
        if value == "<absent>":
            del item[key]
        else:
            item[key] = value
    result = rejected(item)
    assert result.reason.startswith(reason), result.reason
    assert result.feedback_id == feedback_id
    for secret in SECRETS:
        assert secret not in result.payload
        assert secret not in result.reason


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (None, "item is not a JSON object (got null)"),
        ([], "item is not a JSON object (got list)"),
        ([{"feedback_id": "x"}], "item is not a JSON object (got list)"),
        ("feedback", "item is not a JSON object (got string)"),
        (7, "item is not a JSON object (got number)"),
        (Decimal("1.5"), "item is not a JSON object (got number)"),
        (True, "item is not a JSON object (got boolean)"),
        ({1, 2}, "item is not a JSON object (got set)"),
    ],
)
def test_non_object_items_are_rejected(item: Any, reason: str) -> None:
    result = rejected(item)
    assert result.reason == reason
    assert result.feedback_id is None
    assert isinstance(result.payload, str) and result.payload


def test_several_problems_are_reported_together() -> None:
    result = rejected(
        {"feedback_id": "x", "created_at": "nope", "labels": 1, "email": 2, "priority": 3, "status_type": 4}
    )
    assert result.reason == (
        "created_at is not an ISO-8601 timestamp: 'nope'; email is not a string (got number); "
        "status_type is not a string (got number); and 2 more"
    )


def test_rejection_payload_is_the_stripped_item_as_json() -> None:
    item = make_item(feedback_number="12", custom_data={"mrr": 12345678901234567, "r": Decimal("0.10")})
    result = rejected(item)
    assert jsonio.loads(result.payload) == strip_never_imported(item)
    assert '"mrr":12345678901234567' in result.payload
    assert '"r":0.10' in result.payload


def test_long_values_are_truncated_in_reasons() -> None:
    result = rejected(make_item(created_at="x" * 10_000))
    assert len(result.reason) < 200


def test_deeply_nested_item_is_rejected_not_raised() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = {"k": deep}
    result = map_item(make_item(custom_data=deep))
    assert isinstance(result, Rejection)
    assert result.reason == "item is nested too deeply to map"
    assert result.feedback_id == GOOD_ID
    assert SCREENSHOT_URL not in result.payload


# --- unicode ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"email": "ann\ud800@example.com"}, "email"),
        ({"priority": "\udfff"}, "priority"),
        ({"public_link": "https://x/\ud83d"}, "public_link"),
        ({"labels": [{"name": "ok"}, {"name": "b\ud800d"}]}, "labels[1].name"),
        ({"ordered_inputs": [inp(1, "Comment", text_value="hi \ud800")]}, "turn 1 text"),
        ({"ordered_inputs": [inp(1, "Lab\ud800el", text_value="hi")]}, "turn 1 label"),
        ({"screenshot": {"comments": [{"comment": "x\udc00"}]}}, "turn 2 text"),
        ({"ordered_inputs": [inp(1, "Choice", value="\ud800")]}, "form field 'Choice'"),
        ({"custom_data": {"k\ud800": 1}}, "custom_data field name 'k\\ud800'"),
        ({"custom_data": {"list": ["\ud800"]}}, "custom_data field 'list'"),
    ],
)
def test_lone_surrogates_in_mapped_strings_are_rejected(overrides: dict[str, Any], where: str) -> None:
    result = rejected(make_item(**overrides))
    assert result.reason == f"text contains invalid unicode (lone surrogate) in {where}"
    assert result.feedback_id == GOOD_ID
    result.payload.encode("utf-8")  # storable: no lone surrogate left
    result.reason.encode("utf-8")


def test_lone_surrogate_in_feedback_id_leaves_the_id_unreadable() -> None:
    result = rejected(make_item(feedback_id="abc\ud800"))
    assert result.feedback_id is None
    assert result.reason == "text contains invalid unicode (lone surrogate) in feedback_id"
    result.payload.encode("utf-8")


def test_lone_surrogate_outside_mapped_fields_is_fine() -> None:
    dp = mapped(make_item(client={"city_name": "\ud800"}))
    assert dp.feedback_id == GOOD_ID


def test_nul_bytes_are_kept() -> None:
    dp = mapped(
        make_item(
            email="a\x00b@example.com",
            ordered_inputs=[inp(1, "C\x00", text_value="x\x00y"), inp(2, "V", value="\x00")],
            custom_data={"k\x00": "v\x00"},
            screenshot=None,
        )
    )
    assert dp.email == "a\x00b@example.com"
    assert dp.turns == (Turn(1, "C\x00", "x\x00y"),)
    assert [(f.name, f.value) for f in dp.fields] == [("V", "\x00"), ("k\x00", "v\x00")]


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE data_points; --",
        'Robert"); DELETE FROM channels; --',
        "\x00\x00\x00",
        "$1 ? %s {0} \\N \\x00",
        "<script>alert(1)</script>",
        "x" * 1_000_000,
    ],
)
def test_hostile_strings_round_trip_unchanged(text: str) -> None:
    dp = mapped(
        make_item(
            ordered_inputs=[inp(1, text, text_value=text), inp(2, text, value=text)],
            custom_data={text: text},
            labels=[{"name": text}],
            screenshot={"comments": [{"comment": text}]},
        )
    )
    assert [t.text for t in dp.turns] == [text, text]
    assert dp.text == text + "\n\n" + text
    assert dp.tags == (text,)
    assert [(f.name, f.value) for f in dp.fields] == [(text, text), (text, text)]


# --- never imported --------------------------------------------------------------------------------


def test_never_imported_names() -> None:
    assert {"screenshot", "screen_recording", "assignee_id", "updated_at", "resolved_at"} <= NEVER_IMPORTED


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("screenshot", True),
        ("screen_recording", True),
        ("assignee_id", True),
        ("updated_at", True),
        ("resolved_at", True),
        ("closed_at", True),
        ("last_resolved_at", True),
        ("first_closed_at", True),
        ("Resolved_At", True),
        ("created_at", False),
        ("feedback_id", False),
        ("custom_data", False),
        (1, False),
        (None, False),
    ],
)
def test_is_never_imported(key: Any, expected: bool) -> None:
    assert is_never_imported(key) is expected


def test_strip_never_imported_removes_fields_and_keeps_screenshot_comments() -> None:
    item = make_item(last_resolved_at=RESOLVED, custom_data={"assignee_id": "user data", "updated_at": 1})
    original = copy.deepcopy(item)
    stripped = strip_never_imported(item)
    assert item == original  # the input is untouched
    for key in ("updated_at", "resolved_at", "last_resolved_at", "assignee_id", "screen_recording"):
        assert key not in stripped
    assert stripped["screenshot"] == {"comments": [{"label": "1", "comment": "This button is broken"}]}
    assert stripped["custom_data"] == {"assignee_id": "user data", "updated_at": 1}
    assert stripped["client"] == item["client"]
    text = jsonio.dumps(stripped)
    for secret in SECRETS:
        assert secret not in text


def test_strip_never_imported_is_a_deep_copy() -> None:
    item = make_item()
    stripped = strip_never_imported(item)
    stripped["custom_data"]["plan"] = "changed"
    stripped["screenshot"]["comments"][0]["comment"] = "changed"
    stripped["ordered_inputs"].append({})
    assert item["custom_data"]["plan"] == "pro"
    assert item["screenshot"]["comments"][0]["comment"] == "This button is broken"
    assert len(item["ordered_inputs"]) == 1


@pytest.mark.parametrize(
    ("screenshot", "expected"),
    [
        ({"annotated_image_url": SCREENSHOT_URL}, {}),
        ({"annotated_image_url": SCREENSHOT_URL, "comments": None}, {"comments": None}),
        ({"annotated_image_url": SCREENSHOT_URL, "comments": []}, {"comments": []}),
        (SCREENSHOT_URL, "<dropped>"),
        (None, "<dropped>"),
        ([SCREENSHOT_URL], "<dropped>"),
    ],
)
def test_strip_never_imported_screenshot_shapes(screenshot: Any, expected: Any) -> None:
    stripped = strip_never_imported(make_item(screenshot=screenshot))
    if expected == "<dropped>":
        assert "screenshot" not in stripped
    else:
        assert stripped["screenshot"] == expected


@pytest.mark.parametrize("item", [None, 1, "x", [1, {"assignee_id": "a"}], Decimal("1.5")])
def test_strip_never_imported_returns_non_dicts_as_they_are(item: Any) -> None:
    assert strip_never_imported(item) is item


# --- storable JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": Decimal("0.10"), "b": 12345678901234567}, '{"a":0.10,"b":12345678901234567}'),
        ("ü\x00", '"ü\\u0000"'),
        ("\ud800", '"\\\\ud800"'),
        ({"\udfff": 1}, '{"\\\\udfff":1}'),
        ([float("nan"), float("inf"), Decimal("-Infinity")], '["NaN","Infinity","-Infinity"]'),
        ({1: True, None: None}, '{"1":true,"null":null}'),
        ((1, 2), "[1,2]"),
    ],
)
def test_storable_json(value: Any, expected: str) -> None:
    text = storable_json(value)
    assert text == expected
    text.encode("utf-8")
    jsonio.loads(text)


def test_storable_json_writes_huge_ints() -> None:
    text = storable_json(10**5000)
    assert text == "1" + "0" * 5000
