"""The local Usersnap dev server, exercised over real HTTP exactly as a client would see it.

Everything else in the project is tested against this server, so it has to be right about the wire
protocol: JWT rules, the paging cursor, error bodies, refused writes and the injected faults.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from usersnap_channels import jsonio
from usersnap_channels.devserver import DevServer, FaultConfig, Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
WRONG_AUTH = {"status": False, "msg": "Authorization failed", "errortype": "WRONG_AUTH", "errordata": {}}


def token(
    ws: Workspace,
    *,
    secret: str | None = None,
    kid: str | None = None,
    alg: str = "HS256",
    iat: float | None = None,
    lifetime: float = 60,
    claims: dict[str, Any] | None = None,
) -> str:
    now = int(time.time()) if iat is None else iat
    payload = {"iat": now, "exp": now + lifetime} if claims is None else claims
    return jwt.encode(
        payload, secret or ws.jwt_secret, algorithm=alg, headers={"kid": kid if kid is not None else ws.jwt_id}
    )


def auth(ws: Workspace, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(ws, **kw)}"}


def day_window(day: datetime) -> dict[str, Any]:
    start = day.strftime("%Y-%m-%dT00:00:00Z")
    end = (day + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    return {
        "query": [
            {"filter_type": "created_at", "operator": "gte", "value": start},
            {"filter_type": "created_at", "operator": "lt", "value": end},
        ],
        "order_by": {"order_by_type": "created_at", "direction": "asc"},
    }


def page_all(
    s: requests.Session, dev: DevServer, ws: Workspace, pid: str, body: dict[str, Any], limit: int = 50
) -> tuple[list[dict[str, Any]], list[int]]:
    """Follow the cursor to the end; returns items and the per-page counts."""
    items: list[dict[str, Any]] = []
    counts: list[int] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter", params=params, json=body, headers=auth(ws))
        assert r.status_code == 200, r.text
        data = jsonio.loads(r.content)["data"]
        assert data["count"] == len(data["feedbacks"]) <= limit
        items.extend(data["feedbacks"])
        counts.append(data["count"])
        if not data["has_more"]:
            assert data["next"] is None
            return items, counts
        assert data["next"]["limit"] == limit
        assert data["next"]["query_string"] == f"limit={limit}&after={data['next']['after']}"
        after = data["next"]["after"]


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(seed=42, days=20, items_per_day=50) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "dev" in request.fixturenames:
        server: DevServer = request.getfixturevalue("dev")
        server.reset_faults()
        server.clear_log()


@pytest.fixture
def small() -> Iterator[DevServer]:
    """A private server for tests that rotate or delete keys."""
    with DevServer(seed=3, days=3, items_per_day=3) as server:
        yield server


@pytest.fixture
def s() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def busy_day(dev: DevServer, pid: str, n: int = 137) -> datetime:
    """A day long before the seeded data, given `n` items (pinned: the seeding's per-day counts depend on
    the date and hour the server starts at)."""
    day = datetime.combine((dev.now - timedelta(days=dev.days + 40)).date(), datetime.min.time(), tzinfo=UTC)
    for k in range(n):
        dev.add_feedback(pid, created_at=day + timedelta(seconds=k * 600 + 1))
    return day


def jsonio_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --------------------------------------------------------------------------------------------------
# projects, paging, counts


def test_projects_are_scoped_to_the_keys_workspace(dev: DevServer, s: requests.Session) -> None:
    fields = {
        "project_id", "api_key", "company_id", "space_id", "created_at", "updated_at", "archived_at",
        "owner_id", "default_assignee_id", "name", "is_live", "feedback_count", "open_feedback_count",
    }  # fmt: skip
    for name, expected in (("Acme", {"Web App", "Mobile App", "Checkout"}), ("Globex", {"Customer Portal", "Billing"})):
        ws = dev.workspace(name)
        r = s.get(f"{dev.base_url}/projects", headers=auth(ws))
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("application/json")
        doc = r.json()
        assert doc["status"] is True and doc["data"]["has_more"] is False
        projects = doc["data"]["projects"]
        assert doc["data"]["count"] == len(projects) == len(expected)
        assert {p["name"] for p in projects} == expected
        for p in projects:
            assert set(p) == fields
            assert p["archived_at"] is None
            assert p["feedback_count"] == len(dev.items(p["project_id"])) > 0
            truth = dev.items(p["project_id"])
            assert p["open_feedback_count"] == sum(1 for i in truth if i["status_type"] == "open")


def test_day_window_pages_of_50_return_every_item_once_in_order(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[0]["project_id"]
    n = 137
    day = busy_day(dev, pid, n)
    truth = dev.items(pid, day, day + timedelta(days=1))
    items, counts = page_all(s, dev, ws, pid, day_window(day))
    assert [i["feedback_id"] for i in items] == [t["feedback_id"] for t in truth]
    assert items == truth  # byte-for-byte the same content, Decimals included
    assert counts == [50] * (n // 50) + ([n % 50] if n % 50 else [])
    stamps = [i["created_at"] for i in items]
    assert stamps == sorted(stamps)
    # the count endpoint agrees with the pages
    r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter/count", json=day_window(day), headers=auth(ws))
    assert r.json() == {"status": True, "data": {"total_count": n}}


def test_window_boundaries_are_gte_start_and_lt_end(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[1]["project_id"]
    day = datetime(2020, 1, 1, tzinfo=UTC)  # before the seed data: only our items live here
    for created in (
        day - timedelta(microseconds=1),
        day,
        day + timedelta(hours=12),
        day + timedelta(days=1) - timedelta(microseconds=1),
        day + timedelta(days=1),
    ):
        dev.add_feedback(pid, created_at=created)
    items, _ = page_all(s, dev, ws, pid, day_window(day))
    assert [i["created_at"] for i in items] == [
        "2020-01-01T00:00:00.000000Z",
        "2020-01-01T12:00:00.000000Z",
        "2020-01-01T23:59:59.999999Z",
    ]
    body = {"query": [{"filter_type": "created_at", "operator": "eq", "value": "2020-01-01T12:00:00Z"}]}
    r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter/count", json=body, headers=auth(ws))
    assert r.json()["data"]["total_count"] == 1


def test_item_created_while_paging_is_neither_skipped_nor_repeated(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Globex")
    pid = ws.projects[0]["project_id"]
    start = datetime.now(UTC) - timedelta(days=3)
    body = {"query": [{"filter_type": "created_at", "operator": "gte", "value": start.isoformat()}]}
    truth_before = dev.items(pid, start)
    assert len(truth_before) > 100
    url = f"{dev.base_url}/projects/{pid}/feedbacks/filter"
    first = s.post(url, params={"limit": 50}, json=body, headers=auth(ws)).json()["data"]
    added = dev.add_feedback(pid)  # created "now": later than everything
    items = list(first["feedbacks"])
    after = first["next"]["after"]
    while after:
        data = s.post(url, params={"limit": 50, "after": after}, json=body, headers=auth(ws)).json()["data"]
        items.extend(data["feedbacks"])
        after = data["next"]["after"] if data["has_more"] else None
    ids = [i["feedback_id"] for i in items]
    assert len(ids) == len(set(ids)) == len(truth_before) + 1
    assert ids == [t["feedback_id"] for t in truth_before] + [added["feedback_id"]]


def test_counts_equal_ground_truth(dev: DevServer, s: requests.Session) -> None:
    for ws in dev.workspaces:
        for p in ws.projects:
            r = s.get(f"{dev.base_url}/projects/{p['project_id']}/feedbacks/count", headers=auth(ws))
            assert r.json() == {"status": True, "data": {"total_count": len(dev.items(p["project_id"]))}}


def test_list_endpoint_is_newest_updated_first_and_pages_through_everything(
    dev: DevServer, s: requests.Session
) -> None:
    ws = dev.workspace("Globex")
    pid = ws.projects[1]["project_id"]
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        r = s.get(f"{dev.base_url}/projects/{pid}/feedbacks", params=params, headers=auth(ws))
        data = jsonio.loads(r.content)["data"]
        seen.extend(data["feedbacks"])
        if not data["has_more"]:
            break
        after = data["next"]["after"]
    assert len(seen) == len({i["feedback_id"] for i in seen}) == len(dev.items(pid))
    updated = [i["updated_at"] for i in seen]
    assert updated == sorted(updated, reverse=True)
    r = s.get(f"{dev.base_url}/projects/{pid}/feedbacks", headers=auth(ws))
    assert r.json()["data"]["count"] == 10  # default limit


def test_filter_by_state_and_descending_order(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[2]["project_id"]
    truth = dev.items(pid)
    body = {
        "query": [{"filter_type": "state", "operator": "in", "value": ["done", "closed"]}],
        "order_by": {"order_by_type": "created_at", "direction": "desc"},
    }
    items, _ = page_all(s, dev, ws, pid, body)
    expected = [t["feedback_id"] for t in reversed(truth) if t["status_type"] in ("done", "closed")]
    assert [i["feedback_id"] for i in items] == expected
    body = {"query": [{"filter_type": "state", "operator": "eq", "value": "open"}]}
    r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter/count", json=body, headers=auth(ws))
    assert r.json()["data"]["total_count"] == sum(1 for t in truth if t["status_type"] == "open")


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"limit": 0}, {}),
        ({"limit": 101}, {}),
        ({"limit": "ten"}, {}),
        ({"after": "00000000-0000-4000-8000-000000000000"}, {}),
        ({}, {"query": [{"filter_type": "created_at", "operator": "gte", "value": "yesterday"}]}),
        ({}, {"query": [{"filter_type": "colour", "operator": "eq", "value": "red"}]}),
        ({}, {"query": [{"filter_type": "created_at", "operator": "between", "value": "x"}]}),
        ({}, {"order_by": {"order_by_type": "created_at", "direction": "sideways"}}),
        ({}, {"query": "created_at > yesterday"}),
    ],
)
def test_bad_requests_are_validation_errors(
    dev: DevServer, s: requests.Session, params: dict[str, Any], body: dict[str, Any]
) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[0]["project_id"]
    r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter", params=params, json=body, headers=auth(ws))
    assert r.status_code == 400
    doc = r.json()
    assert doc["status"] is False and doc["errortype"] == "VALIDATION_ERROR" and isinstance(doc["errordata"], dict)
    r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter", data=b"{not json", headers=auth(ws) | {"X": "1"})
    assert r.status_code == 400


def test_other_workspace_is_403_and_unknown_project_is_404(dev: DevServer, s: requests.Session) -> None:
    acme, globex = dev.workspace("Acme"), dev.workspace("Globex")
    other = globex.projects[0]["project_id"]
    for method, suffix in (("GET", "/feedbacks"), ("GET", "/feedbacks/count"), ("POST", "/feedbacks/filter")):
        r = s.request(method, f"{dev.base_url}/projects/{other}{suffix}", json={}, headers=auth(acme))
        assert r.status_code == 403
        assert r.json()["errortype"] == "NO_ACCESS" and r.json()["status"] is False
    r = s.get(f"{dev.base_url}/projects/00000000-0000-4000-8000-000000000000/feedbacks", headers=auth(acme))
    assert r.status_code == 404 and r.json()["errortype"] == "NOT_FOUND"


# --------------------------------------------------------------------------------------------------
# authentication


@pytest.mark.parametrize(
    "case",
    ["wrong_secret", "unknown_kid", "hs512", "expired", "too_long", "missing_header", "no_bearer", "garbage",
     "no_iat", "no_exp", "alg_none", "no_kid"],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_bad_tokens_get_the_exact_wrong_auth_body(dev: DevServer, s: requests.Session, case: str) -> None:
    ws = dev.workspace("Acme")
    now = int(time.time())
    headers = {
        "wrong_secret": lambda: auth(ws, secret="not-the-secret-" + "x" * 32),
        "unknown_kid": lambda: auth(ws, kid="acme-000000000000"),
        "hs512": lambda: auth(ws, alg="HS512"),
        "expired": lambda: auth(ws, iat=now - 120, lifetime=60),
        "too_long": lambda: auth(ws, lifetime=301),
        "missing_header": lambda: {},
        "no_bearer": lambda: {"Authorization": token(ws)},
        "garbage": lambda: {"Authorization": "Bearer not.a.jwt"},
        "no_iat": lambda: auth(ws, claims={"exp": now + 60}),
        "no_exp": lambda: auth(ws, claims={"iat": now}),
        "alg_none": lambda: {
            "Authorization": "Bearer "
            + jwt.encode({"iat": now, "exp": now + 60}, None, algorithm="none", headers={"kid": ws.jwt_id})
        },
        "no_kid": lambda: {
            "Authorization": "Bearer " + jwt.encode({"iat": now, "exp": now + 60}, ws.jwt_secret, algorithm="HS256")
        },
    }[case]()
    dev.set_faults(burst_429=1)  # a bad token wins over faults and does not consume the burst
    r = s.get(f"{dev.base_url}/projects", headers=headers)
    assert r.status_code == 401
    assert r.json() == WRONG_AUTH
    assert dev.faults.burst_429 == 1
    assert dev.request_log[-1].status == 401


def test_lifetime_of_exactly_300_seconds_is_accepted(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    assert s.get(f"{dev.base_url}/projects", headers=auth(ws, lifetime=300)).status_code == 200
    rec = dev.request_log[-1]
    assert rec.kid == ws.jwt_id and rec.exp - rec.iat == 300


def test_rotated_and_deleted_keys(small: DevServer, s: requests.Session) -> None:
    acme = small.workspace("Acme")
    old_id, old_secret = acme.jwt_id, acme.jwt_secret
    old_headers = {"Authorization": "Bearer " + token(acme)}
    new_id, new_secret = small.rotate_key("Acme")
    assert (new_id, new_secret) != (old_id, old_secret)
    assert (acme.jwt_id, acme.jwt_secret) == (new_id, new_secret)
    assert small.env()["ACME_JWT_ID"] == new_id
    r = s.get(f"{small.base_url}/projects", headers=old_headers)
    assert r.status_code == 401 and r.json() == WRONG_AUTH
    assert s.get(f"{small.base_url}/projects", headers=auth(acme)).status_code == 200
    # the other workspace is unaffected; deleting a key kills it
    globex = small.workspace("Globex")
    assert s.get(f"{small.base_url}/projects", headers=auth(globex)).status_code == 200
    small.delete_key("Globex")
    r = s.get(f"{small.base_url}/projects", headers=auth(globex))
    assert r.status_code == 401 and r.json() == WRONG_AUTH


def test_the_token_never_reaches_the_log(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    tokens = [token(ws, iat=int(time.time()) - i) for i in range(3)]
    for t in tokens:
        s.get(f"{dev.base_url}/projects", headers={"Authorization": f"Bearer {t}"})
    s.get(f"{dev.base_url}/projects", headers={"Authorization": f"Bearer {tokens[0]}x"})
    dump = repr(dev.request_log) + json.dumps(dev.log_summary()) + repr(dev.write_attempts)
    for t in tokens:
        assert t not in dump
        assert t.split(".")[2] not in dump  # not even the signature
    assert ws.jwt_secret not in dump
    assert [r.token_sha for r in dev.request_log[:3]] == [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    assert dev.log_summary()["distinct_tokens"] == 4


# --------------------------------------------------------------------------------------------------
# writes are refused


def test_submit_endpoint_and_other_writes_are_refused_and_recorded(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    project = ws.projects[0]
    before = project["feedback_count"]
    r = s.post(f"{dev.base_url}/projects/{project['api_key']}/feedbacks", json={"x": 1}, headers=auth(ws))
    assert r.status_code == 405
    assert r.json()["status"] is False and r.json()["errortype"]
    for method in ("PUT", "PATCH", "DELETE"):
        r = s.request(method, f"{dev.base_url}/projects/{project['project_id']}/feedbacks", headers=auth(ws))
        assert r.status_code == 405
    assert (
        s.get(f"{dev.base_url}/projects/{project['project_id']}/feedbacks/filter", headers=auth(ws)).status_code == 405
    )
    assert [(w.method, w.status) for w in dev.write_attempts] == [
        ("POST", 405), ("PUT", 405), ("PATCH", 405), ("DELETE", 405), ("GET", 405),
    ]  # fmt: skip
    assert dev.write_attempts[0].path == f"/v0.1/projects/{project['api_key']}/feedbacks"
    assert all(w in dev.request_log for w in dev.write_attempts)
    assert project["feedback_count"] == before


# --------------------------------------------------------------------------------------------------
# faults


def test_429_with_retry_after_seconds_then_recovers(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    dev.set_faults(burst_429=2)
    for _ in range(2):
        r = s.get(f"{dev.base_url}/projects", headers=auth(ws))
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "1"
        assert r.json()["status"] is False
    assert s.get(f"{dev.base_url}/projects", headers=auth(ws)).status_code == 200
    assert [r.status for r in dev.request_log] == [429, 429, 200]


def test_429_with_retry_after_http_date(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    dev.set_faults(burst_429=1, retry_after="date")
    r = s.get(f"{dev.base_url}/projects", headers=auth(ws))
    assert r.status_code == 429
    when = email.utils.parsedate_to_datetime(r.headers["Retry-After"])
    ahead = (when - datetime.now(UTC)).total_seconds()
    assert r.headers["Retry-After"].endswith(" GMT")
    assert 0.0 <= ahead <= 2.5


def test_503_burst_has_a_json_error_body(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    dev.set_faults(burst_5xx=1)
    r = s.get(f"{dev.base_url}/projects", headers=auth(ws))
    assert r.status_code == 503
    assert r.json()["status"] is False and r.json()["errortype"]
    assert s.get(f"{dev.base_url}/projects", headers=auth(ws)).status_code == 200


def _raw_get(dev: DevServer, path: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """One request on a raw socket, read to EOF: (head, body) as the client really receives them."""
    with socket.create_connection(("127.0.0.1", dev.port), timeout=5) as sock:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        sock.sendall("\r\n".join(lines).encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body


def test_truncated_body_keeps_the_full_content_length_and_closes(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[0]["project_id"]
    dev.set_faults(burst_truncated=1)
    head, body = _raw_get(dev, f"/v0.1/projects/{pid}/feedbacks?limit=50", auth(ws))
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
    assert length > 1000 and len(body) == length // 2
    dev.set_faults(burst_truncated=1)
    with pytest.raises(requests.exceptions.RequestException):
        s.get(f"{dev.base_url}/projects/{pid}/feedbacks", params={"limit": 50}, headers=auth(ws))
    assert s.get(f"{dev.base_url}/projects", headers=auth(ws)).status_code == 200  # a new connection works


def test_dropped_connection(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    dev.set_faults(burst_drop=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(f"{dev.base_url}/projects", headers=auth(ws))
    assert dev.request_log[-1].fault == "drop"
    dev.set_faults(rate_drop=1.0)
    for _ in range(4):  # either no answer at all or a cut-off body
        with pytest.raises(requests.exceptions.RequestException):
            s.get(f"{dev.base_url}/projects", headers=auth(ws))
    dev.reset_faults()
    assert s.get(f"{dev.base_url}/projects", headers=auth(ws)).status_code == 200


def test_rates_are_seeded_and_admin_routes_are_never_faulted(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")

    def statuses() -> list[int]:
        dev.set_faults(rate_429=0.3, rate_5xx=0.2, seed=11, retry_after_seconds=0)
        out = [s.get(f"{dev.base_url}/projects", headers=auth(ws)).status_code for _ in range(60)]
        dev.reset_faults()
        return out

    first = statuses()
    assert statuses() == first
    counts = Counter(first)
    assert 5 <= counts[429] <= 35 and 3 <= sum(counts[c] for c in (500, 502, 503)) <= 25 and counts[200] > 10
    dev.set_faults(rate_5xx=1.0, burst_429=3)
    assert requests.get(f"{dev.root_url}/_dev/health").json()["ok"] is True
    assert dev.faults.burst_429 == 3


def test_delay(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    dev.set_faults(delay_s=0.2)
    t0 = time.perf_counter()
    assert s.get(f"{dev.base_url}/projects", headers=auth(ws)).status_code == 200
    assert time.perf_counter() - t0 >= 0.2


def test_fault_config_defaults_and_validation(dev: DevServer) -> None:
    assert FaultConfig() == FaultConfig(rate_429=0.0, retry_after="seconds", retry_after_seconds=1.0, seed=0)
    with pytest.raises(TypeError):
        dev.set_faults(nonsense=1)
    with pytest.raises(ValueError):
        dev.set_faults(rate_429=1.5)
    with pytest.raises(ValueError):
        dev.set_faults(retry_after="minutes")


# --------------------------------------------------------------------------------------------------
# malformed items


def test_malformed_items_are_served_in_their_day_window(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Globex")
    pid = ws.projects[1]["project_id"]
    day = datetime(2021, 6, 1, tzinfo=UTC)
    for hour, kind in ((1, "no_feedback_id"), (2, "bad_created_at"), (3, "wrong_types")):
        dev.add_malformed(pid, kind, created_at=day + timedelta(hours=hour))
    dev.add_feedback(pid, created_at=day + timedelta(hours=4))
    items, counts = page_all(s, dev, ws, pid, day_window(day), limit=1)  # the cursor passes all of them
    assert counts == [1, 1, 1, 1]
    assert "feedback_id" not in items[0]
    with pytest.raises(ValueError):
        datetime.fromisoformat(items[1]["created_at"])
    assert isinstance(items[2]["ordered_inputs"], str) and isinstance(items[2]["labels"], dict)
    assert items[2]["feedback_number"] == "x"
    assert items == dev.items(pid, day, day + timedelta(days=1))
    with pytest.raises(ValueError):
        dev.add_malformed(pid, "no_such_kind")


# --------------------------------------------------------------------------------------------------
# admin endpoints


def test_admin_endpoints(small: DevServer, s: requests.Session) -> None:
    root = f"{small.root_url}/_dev"
    assert s.get(f"{root}/health").json()["ok"] is True
    assert s.get(f"{root}/env").json() == small.env()
    acme = small.workspace("Acme")
    pid = acme.projects[0]["project_id"]

    faults = s.post(f"{root}/faults", json={"burst_5xx": 1}).json()
    assert faults["burst_5xx"] == 1 and small.faults.burst_5xx == 1
    assert s.post(f"{root}/faults", json={"bogus": 1}).status_code == 400
    assert s.post(f"{root}/faults/reset").json() == json.loads(json.dumps(FaultConfig().__dict__))

    item = s.post(f"{root}/feedback", json={"project_id": pid, "overrides": {"email": None, "priority": "urgent"}})
    item = jsonio.loads(item.content)
    assert item["email"] is None and item["priority"] == "urgent"
    bad = jsonio.loads(s.post(f"{root}/malformed", json={"project_id": pid, "kind": "no_feedback_id"}).content)
    assert "feedback_id" not in bad
    assert s.post(f"{root}/malformed", json={"project_id": pid, "kind": "nope"}).status_code == 400
    assert s.post(f"{root}/feedback", json={"project_id": "nope"}).status_code == 404

    day = datetime(2022, 3, 4, tzinfo=UTC)
    s.post(f"{root}/feedback", json={"project_id": pid, "created_at": "2022-03-04T10:00:00Z"})
    got = jsonio.loads(
        s.get(
            f"{root}/items", params={"project_id": pid, "start": "2022-03-04T00:00:00Z", "end": "2022-03-05T00:00:00Z"}
        ).content
    )
    assert got == small.items(pid, day, day + timedelta(days=1)) and len(got) == 1

    project = s.post(
        f"{root}/projects",
        json={
            "workspace": "Acme",
            "name": "Labs",
            "n_items": 7,
            "start": "2022-01-01T00:00:00Z",
            "end": "2022-01-08T00:00:00Z",
        },
    ).json()
    assert project["name"] == "Labs" and project["feedback_count"] == 7
    assert [i["created_at"][:10] for i in small.items(project["project_id"])] == [f"2022-01-0{d}" for d in range(1, 8)]
    assert "Labs" in {
        p["name"] for p in s.get(f"{small.base_url}/projects", headers=auth(acme)).json()["data"]["projects"]
    }

    s.post(f"{small.base_url}/projects/{pid}/feedbacks", headers=auth(acme))
    log = s.get(f"{root}/log").json()
    assert log["requests"] == 2 and len(log["write_attempts"]) == 1
    assert log["by_path"] == {"/v0.1/projects": 1, f"/v0.1/projects/{pid}/feedbacks": 1}
    assert log["max_token_lifetime"] == 60
    assert s.post(f"{root}/log/clear").json() == {"ok": True}
    assert s.get(f"{root}/log").json()["requests"] == 0

    keys = s.post(f"{root}/rotate", json={"workspace": "Acme"}).json()
    assert keys == {"jwt_id": acme.jwt_id, "jwt_secret": acme.jwt_secret}
    assert s.get(f"{small.base_url}/projects", headers=auth(acme)).status_code == 200
    assert s.post(f"{root}/delete-key", json={"workspace": "Acme"}).json() == {"ok": True}
    assert s.get(f"{small.base_url}/projects", headers=auth(acme)).status_code == 401

    ws = s.post(f"{root}/workspaces", json={"name": "Initech", "projects": {"TPS": 4}}).json()
    assert ws["name"] == "Initech" and ws["projects"][0]["feedback_count"] == 4
    assert small.env()["INITECH_JWT_ID"] == ws["jwt_id"]
    assert s.get(f"{root}/nope").status_code == 404
    assert not [r for r in small.request_log if r.path.startswith("/_dev")]  # admin calls are not API traffic


def test_add_workspace_and_project_in_python(small: DevServer, s: requests.Session) -> None:
    ws = small.add_workspace("Initech Corp", {"TPS Reports": 10, "Empty": 0})
    assert small.env()["INITECH_CORP_JWT_SECRET"] == ws.jwt_secret
    r = s.get(f"{small.base_url}/projects", headers=auth(ws)).json()["data"]
    assert {p["name"]: p["feedback_count"] for p in r["projects"]} == {"TPS Reports": 10, "Empty": 0}
    empty = next(p for p in ws.projects if p["name"] == "Empty")["project_id"]
    data = s.post(f"{small.base_url}/projects/{empty}/feedbacks/filter", json={}, headers=auth(ws)).json()["data"]
    assert data == {"has_more": False, "count": 0, "feedbacks": [], "next": None}


# --------------------------------------------------------------------------------------------------
# data realism and determinism


def test_seed_data_is_deterministic() -> None:
    now = datetime(2026, 11, 15, 10, 30, tzinfo=UTC)
    a = DevServer(seed=7, days=4, items_per_day=5, now=now)
    b = DevServer(seed=7, days=4, items_per_day=5, now=now)
    c = DevServer(seed=8, days=4, items_per_day=5, now=now)
    assert a.env() == b.env() != c.env()
    pa = [p["project_id"] for w in a.workspaces for p in w.projects]
    assert pa == [p["project_id"] for w in b.workspaces for p in w.projects]
    assert [a.items(p) for p in pa] == [b.items(p) for p in pa]
    assert all(i["created_at"] < "2026-11-15T10:30:00" for p in pa for i in a.items(p))


def test_seed_data_covers_the_field_variants(dev: DevServer) -> None:
    seeded_from = dev.now - timedelta(days=dev.days + 1)  # other tests add items long before that
    items = [i for ws in dev.workspaces for p in ws.projects for i in dev.items(p["project_id"], seeded_from)]
    assert len({i["feedback_id"] for i in items}) == len(items)
    times = {i["created_at"][11:] for i in items}
    assert "00:00:00.000000Z" in times and "23:59:59.999999Z" in times
    for i in items:
        assert i["updated_at"] >= i["created_at"]
        assert i["public_link"] == f"https://app.usersnap.com/l/feedback/{i['feedback_id']}"
        assert set(i["client"]) >= {"url", "client_type", "city_name", "country_name", "screen_width",
                                    "screen_height", "browser_full_name", "browser_os", "browser_name",
                                    "browser_version"}  # fmt: skip
    numbers = [i["feedback_number"] for i in dev.items(dev.workspaces[0].projects[0]["project_id"], seeded_from)]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)

    def texts(i: dict[str, Any]) -> list[str]:
        out = [x.get("text_value") or "" for x in i["ordered_inputs"]]
        out += [c["comment"] for c in (i["screenshot"] or {}).get("comments", [])]
        return [t for t in out if t.strip()]

    inputs = [x for i in items for x in i["ordered_inputs"]]
    custom = [i["custom_data"] for i in items]
    checks = {
        "no text at all": any(not texts(i) for i in items),
        "distinct texts": len({t for i in items for t in texts(i)}) > 300,
        "unlabelled input": any(x.get("label") is None for x in inputs),
        "blank text": any(isinstance(x.get("text_value"), str) and not x["text_value"].strip() for x in inputs),
        "sparse input": any("boolean_value" not in x for x in inputs),
        "yes/no": any(isinstance(x.get("boolean_value"), bool) for x in inputs),
        "rating/nps/choice": {"4", "9", "Pricing"} <= {x.get("value") for x in inputs},
        "duplicate labels": any(
            len([x["label"] for x in i["ordered_inputs"]]) > len({x["label"] for x in i["ordered_inputs"]})
            for i in items
        ),
        "custom null/empty": None in custom and {} in custom,
        "nested custom": any(isinstance(c, dict) and isinstance(c.get("user"), dict) for c in custom),
        "big int": any(isinstance(c, dict) and c.get("account_id") == 12345678901234567 for c in custom),
        "decimal": any(
            isinstance(v, Decimal) and float(v) != v for c in custom if isinstance(c, dict) for v in c.values()
        ),
        "null inside custom": any(isinstance(c, dict) and None in c.values() for c in custom),
        "empty comment": any(c["comment"] == "" for i in items for c in (i["screenshot"] or {}).get("comments", [])),
        "no screenshot": any(i["screenshot"] is None for i in items),
        "recording": any(i["screen_recording"] == {"file_resource_url": i["screen_recording"]["file_resource_url"],
                                                   "mime_type": "video/webm"} for i in items if i["screen_recording"]),
        "three labels": any(len(i["labels"]) == 3 for i in items),
        "no labels": any(i["labels"] == [] for i in items),
        "no email": any(i["email"] is None for i in items),
        "null priority": any(i["priority"] is None for i in items),
        "all statuses": {i["status_type"] for i in items} == {"open", "in_progress", "done", "closed"},
        "demo": any(i["is_demo"] for i in items),
    }  # fmt: skip
    assert [k for k, ok in checks.items() if not ok] == []


def test_decimals_round_trip_over_the_wire(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[0]["project_id"]
    created = datetime(2019, 5, 5, tzinfo=UTC)
    dev.add_feedback(pid, created_at=created, custom_data={"x": Decimal("0.1000000000000000055511"), "n": 10**20})
    r = s.post(f"{dev.base_url}/projects/{pid}/feedbacks/filter", json=day_window(created), headers=auth(ws))
    assert b'"x":0.1000000000000000055511' in r.content and b'"n":100000000000000000000' in r.content


# --------------------------------------------------------------------------------------------------
# transport and speed


def test_keep_alive_serves_many_requests_on_one_connection(dev: DevServer) -> None:
    ws = dev.workspace("Acme")
    conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/v0.1/projects", headers=auth(ws))
            resp = conn.getresponse()
            assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(resp.read())
            assert resp.headers.get("Connection") != "close"
        conn.request("DELETE", "/v0.1/projects", headers=auth(ws))  # errors keep the connection too
        resp = conn.getresponse()
        assert resp.status == 405 and resp.read()
        conn.request("GET", "/v0.1/projects", headers=auth(ws))
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_throughput_smoke(dev: DevServer, s: requests.Session) -> None:
    ws = dev.workspace("Acme")
    pid = ws.projects[0]["project_id"]
    url = f"{dev.base_url}/projects/{pid}/feedbacks/filter"
    body = {"query": [{"filter_type": "created_at", "operator": "gte", "value": "2000-01-01T00:00:00Z"}]}
    pages, items, after = 0, 0, None
    t0 = time.perf_counter()
    while pages < 200:
        params: dict[str, Any] = {"limit": 50, **({"after": after} if after else {})}
        r = s.post(url, params=params, json=body, headers=auth(ws))  # a fresh token per request, like the client
        data = jsonio.loads(r.content)["data"]
        pages, items = pages + 1, items + data["count"]
        after = data["next"]["after"] if data["has_more"] else None
    elapsed = time.perf_counter() - t0
    print(f"\ndev server throughput: {pages / elapsed:.0f} pages/s ({items / elapsed:.0f} items/s) with requests")
    assert pages == 200 and items > 0  # speed is measured by benchmarks/, not asserted here


# --------------------------------------------------------------------------------------------------
# foreground runner


def test_serve_writes_env_file_logs_without_tokens_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    code = f"from usersnap_channels.devserver import serve; serve(port=0, env_file={str(env_file)!r}, days=2)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 15
        while not (env_file.exists() and env_file.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline, "dev server did not come up"
            time.sleep(0.05)
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert {"ACME_JWT_ID", "ACME_JWT_SECRET", "GLOBEX_JWT_ID", "GLOBEX_JWT_SECRET"} <= set(values)
        base = values["USERSNAP_BASE_URL"]
        ws = Workspace("Acme", values["ACME_JWT_ID"], values["ACME_JWT_SECRET"], [])
        tok = token(ws)
        r = requests.get(f"{base}/projects", headers={"Authorization": f"Bearer {tok}"}, timeout=5)
        assert r.status_code == 200 and r.json()["data"]["count"] == 3
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "GET /v0.1/projects 200" in err
        assert tok not in err and values["ACME_JWT_SECRET"] not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_releases_the_port_and_cuts_keep_alive_connections() -> None:
    server = DevServer(days=1, items_per_day=1).start()
    ws = server.workspace("Acme")
    with requests.Session() as session:
        assert session.get(f"{server.base_url}/projects", headers=auth(ws)).status_code == 200
        port = server.port
        server.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(f"http://127.0.0.1:{port}/v0.1/projects", headers=auth(ws), timeout=2)
    assert math.isfinite(port)
