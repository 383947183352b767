"""A faithful local Usersnap REST API v0.1 server for tests and demos.

It speaks the same wire protocol as `platform.usersnap.com/v0.1` for the read endpoints the product
uses (JWT checks, paging cursor, filter bodies, error bodies), refuses and records every write, and
can inject the failures a real network produces (429 with both `Retry-After` forms, 5xx, truncated
bodies, dropped connections, latency). `/_dev/*` admin endpoints let a test in another process
steer it. Pages are built from cached per-item JSON bytes and `bisect` over a sorted index so one
client can pull thousands of pages per second.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import copy
import dataclasses
import email.utils
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jwt

from usersnap_channels import jsonio
from usersnap_channels.devserver import data

PREFIX = "/v0.1"
ADMIN_PREFIX = "/_dev"
MAX_TOKEN_LIFETIME_S = 300
IAT_SKEW_S = 2  # tolerate a client clock a hair ahead of ours, never an expired token
DEFAULT_LIMIT = 10
MAX_LIMIT = 100

DEFAULT_WORKSPACES: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("Acme", (("Web App", 1.25), ("Mobile App", 1.0), ("Checkout", 0.75))),
    ("Globex", (("Customer Portal", 1.1), ("Billing", 0.9))),
)

WRONG_AUTH_BODY = {"status": False, "msg": "Authorization failed", "errortype": "WRONG_AUTH", "errordata": {}}


# --------------------------------------------------------------------------------------------------
# public value types


@dataclass
class Workspace:
    """One Usersnap workspace: its current API key and its project objects (kept current)."""

    name: str
    jwt_id: str
    jwt_secret: str
    projects: list[dict[str, Any]]


@dataclass
class FaultConfig:
    """What goes wrong, and how often; applies to `/v0.1` routes only, after the auth check."""

    rate_429: float = 0.0
    retry_after: str = "seconds"  # "seconds" | "date"
    retry_after_seconds: float = 1.0
    rate_5xx: float = 0.0
    rate_truncated: float = 0.0
    rate_drop: float = 0.0
    delay_s: float = 0.0
    burst_429: int = 0
    burst_5xx: int = 0
    burst_truncated: int = 0
    burst_drop: int = 0  # extra: the next N API requests get the socket closed without a response
    seed: int = 0


@dataclass
class RequestRecord:
    """One request as the server saw it; `token_sha` is a digest so the log never holds a token."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    kid: str | None = None
    iat: Any = None
    exp: Any = None
    at: float = 0.0
    token_sha: str | None = None
    fault: str | None = None
    workspace: str | None = None


class _ApiError(Exception):
    """An error answered with Usersnap's error body shape."""

    def __init__(self, status: int, errortype: str, msg: str, errordata: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.body = {"status": False, "msg": msg, "errortype": errortype, "errordata": errordata or {}}


def _validation(msg: str, **errordata: Any) -> _ApiError:
    return _ApiError(400, "VALIDATION_ERROR", msg, errordata)


# --------------------------------------------------------------------------------------------------
# the item store


class _Rec:
    """An item plus its sort keys and cached JSON bytes (serialised once, reset on change)."""

    __slots__ = ("_raw", "item", "key", "project_id", "sid", "ukey")

    def __init__(
        self, sid: str, key: tuple[int, str], ukey: tuple[int, str], item: dict[str, Any], project_id: str
    ) -> None:
        self.sid = sid
        self.key = key
        self.ukey = ukey
        self.item = item
        self.project_id = project_id
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        raw = self._raw
        if raw is None:
            raw = self._raw = jsonio.dumps(self.item).encode("utf-8")
        return raw

    def invalidate(self) -> None:
        self._raw = None


class _ProjectState:
    """Per project: items sorted by (created_at, id) and by (updated_at, id), parallel key lists."""

    def __init__(self, project: dict[str, Any], workspace: str, factory: data.ItemFactory) -> None:
        self.project = project
        self.workspace = workspace
        self.factory = factory
        self.keys: list[tuple[int, str]] = []
        self.recs: list[_Rec] = []
        self.ukeys: list[tuple[int, str]] = []
        self.urecs: list[_Rec] = []
        self.next_number = 1
        self.open_count = 0
        self.added = 0  # items added after seeding; each gets its own RNG stream

    def added_factory(self) -> data.ItemFactory:
        """The factory for the next item added after seeding, on its own seeded stream."""
        self.added += 1
        return self.factory.for_item(f"added:{self.added}")

    def insert(self, rec: _Rec) -> None:
        i = bisect.bisect_right(self.keys, rec.key)
        self.keys.insert(i, rec.key)
        self.recs.insert(i, rec)
        j = bisect.bisect_right(self.ukeys, rec.ukey)
        self.ukeys.insert(j, rec.ukey)
        self.urecs.insert(j, rec)
        if rec.item.get("status_type") == "open":
            self.open_count += 1
        self.project["feedback_count"] = len(self.recs)
        self.project["open_feedback_count"] = self.open_count


Predicate = Callable[[_Rec], bool]


@dataclass
class _Query:
    """A parsed filter body: created_at bounds (for bisect), other predicates, and the ordering."""

    lo_us: int | None = None  # inclusive
    hi_us: int | None = None  # exclusive
    preds: list[Predicate] = field(default_factory=list)
    order: str = "created_at"
    desc: bool = False


def _like_regex(pattern: str, flags: int) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), flags | re.DOTALL)


_FIELD_OF_FILTER = {
    "state": "status_type",
    "email": "email",
    "assignee": "assignee_id",
    "feedback_number": "feedback_number",
}
_OPERATORS = ("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "like", "ilike")
_FILTER_TYPES = ("assignee", "created_at", "email", "feedback_number", "nps", "one_to_five", "state", "thumb")
_ORDER_TYPES = ("created_at", "rating", "updated_at", "likes")


def _field_predicate(filter_type: str, op: str, value: Any) -> Predicate:
    """Predicate on a plain item field (state → status_type, email, assignee, feedback_number)."""
    name = _FIELD_OF_FILTER[filter_type]
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise _validation(f"operator {op} needs a list value", value=["must be a list"])
        allowed = set(value)
        if op == "in":
            return lambda r: r.item.get(name) in allowed
        return lambda r: r.item.get(name) not in allowed
    if op == "eq":
        return lambda r: r.item.get(name) == value
    if op == "neq":
        return lambda r: r.item.get(name) != value
    if op in ("like", "ilike"):
        if not isinstance(value, str):
            raise _validation(f"operator {op} needs a string value", value=["must be a string"])
        rx = _like_regex(value, re.IGNORECASE if op == "ilike" else 0)
        return lambda r: isinstance(r.item.get(name), str) and rx.fullmatch(r.item[name]) is not None
    if filter_type != "feedback_number" or not isinstance(value, int) or isinstance(value, bool):
        raise _validation(f"operator {op} is not supported for {filter_type}", operator=[op])
    cmp = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}[op]

    def pred(r: _Rec) -> bool:
        n = r.item.get(name)
        return isinstance(n, int) and not isinstance(n, bool) and cmp(n, value)

    return pred


def _parse_query(body: bytes) -> _Query:
    """Validate a filter body the way Usersnap does (400 VALIDATION_ERROR on anything off)."""
    q = _Query()
    if not body.strip():
        return q
    try:
        doc = jsonio.loads(body)
    except ValueError as exc:
        raise _validation(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _validation("request body must be a JSON object")
    conditions = doc.get("query", [])
    if conditions is None:
        conditions = []
    if not isinstance(conditions, list):
        raise _validation("query must be a list", query=["must be a list"])
    for i, cond in enumerate(conditions):
        if not isinstance(cond, dict):
            raise _validation("query entries must be objects", query=[f"entry {i} is not an object"])
        ftype, op, value = cond.get("filter_type"), cond.get("operator"), cond.get("value")
        if ftype not in _FILTER_TYPES:
            raise _validation(f"unknown filter_type {ftype!r}", filter_type=[f"must be one of {_FILTER_TYPES}"])
        if op not in _OPERATORS:
            raise _validation(f"unknown operator {op!r}", operator=[f"must be one of {_OPERATORS}"])
        if ftype == "created_at":
            _add_created_condition(q, op, value)
        elif ftype in _FIELD_OF_FILTER:
            q.preds.append(_field_predicate(ftype, op, value))
        else:
            raise _validation(f"filter_type {ftype} is not supported by the dev server", filter_type=[ftype])
    order = doc.get("order_by")
    if order is not None:
        if not isinstance(order, dict):
            raise _validation("order_by must be an object", order_by=["must be an object"])
        otype = order.get("order_by_type", "created_at")
        direction = order.get("direction", "asc")
        if otype not in _ORDER_TYPES:
            raise _validation(f"unknown order_by_type {otype!r}", order_by_type=[f"must be one of {_ORDER_TYPES}"])
        if otype not in ("created_at", "updated_at"):
            raise _validation(f"order_by_type {otype} is not supported by the dev server", order_by_type=[otype])
        if direction not in ("asc", "desc"):
            raise _validation(f"unknown direction {direction!r}", direction=["must be asc or desc"])
        q.order, q.desc = otype, direction == "desc"
    return q


def _add_created_condition(q: _Query, op: str, value: Any) -> None:
    try:
        us = data.to_us(data.parse_iso(value))
    except (ValueError, TypeError):
        raise _validation(
            f"created_at value {value!r} is not an ISO-8601 timestamp", value=["must be an ISO-8601 timestamp"]
        ) from None
    lo, hi = None, None
    if op == "gte":
        lo = us
    elif op == "gt":
        lo = us + 1
    elif op == "lt":
        hi = us
    elif op == "lte":
        hi = us + 1
    elif op == "eq":
        lo, hi = us, us + 1
    elif op == "neq":
        q.preds.append(lambda r: r.key[0] != us)
        return
    else:
        raise _validation(f"operator {op} is not supported for created_at", operator=[op])
    if lo is not None:
        q.lo_us = lo if q.lo_us is None else max(q.lo_us, lo)
    if hi is not None:
        q.hi_us = hi if q.hi_us is None else min(q.hi_us, hi)


def _scan(
    keys: list[tuple[int, str]],
    recs: list[_Rec],
    lo: int,
    hi: int,
    preds: list[Predicate],
    desc: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> tuple[list[_Rec], bool]:
    """One page from recs[lo:hi] in the given direction, strictly after the cursor's key."""
    if not desc:
        start = lo if after is None else max(lo, bisect.bisect_right(keys, after))
        if not preds:
            stop = min(hi, start + limit)
            return recs[start:stop], stop < hi
        out: list[_Rec] = []
        for i in range(start, hi):
            r = recs[i]
            if all(p(r) for p in preds):
                if len(out) == limit:
                    return out, True
                out.append(r)
        return out, False
    stop = hi if after is None else min(hi, bisect.bisect_left(keys, after))
    if not preds:
        start = max(lo, stop - limit)
        return recs[start:stop][::-1], start > lo
    out = []
    for i in range(stop - 1, lo - 1, -1):
        r = recs[i]
        if all(p(r) for p in preds):
            if len(out) == limit:
                return out, True
            out.append(r)
    return out, False


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server that can also cut its open keep-alive connections on stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dev: DevServer) -> None:
        self.dev = dev
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class _Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler; every response is one write with a Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "UsersnapDevServer/0.1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed eventually
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # the dev server logs its own way
        return

    def do_GET(self) -> None:
        self.server.dev._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def read_body(self) -> bytes:
        """Read the whole request body so the connection stays usable for the next request."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = (), cut: int | None = None) -> None:
        """Write status line, headers and body in a single send (no Nagle/delayed-ACK stalls).

        `cut` sends only that many body bytes while still announcing the full Content-Length.
        """
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n",
            f"Server: {self.server_version}\r\n",
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n",
            "Content-Type: application/json; charset=utf-8\r\n",
            f"Content-Length: {len(body)}\r\n",
        ]
        lines.extend(f"{k}: {v}\r\n" for k, v in headers)
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        payload = b"" if self.command == "HEAD" else body if cut is None else body[:cut]
        self.wfile.write(head + payload)


def _b64_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _peek_jwt(token: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Unverified (header, payload) of a compact JWS; (None, {}) when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, {}
    try:
        head, payload = _b64_json(parts[0]), _b64_json(parts[1])
    except (ValueError, binascii.Error):
        return None, {}
    if not isinstance(head, dict):
        return None, {}
    return head, payload if isinstance(payload, dict) else {}


def _dump(obj: Any) -> bytes:
    return jsonio.dumps(obj).encode("utf-8")


def _json_param(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return data.parse_iso(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be an ISO-8601 timestamp, got {value!r}") from None


# --------------------------------------------------------------------------------------------------
# the server


class DevServer:
    """Local Usersnap: seeded workspaces, projects and items, served over real HTTP."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 42,
        days: int = 190,
        items_per_day: float = 6.0,
        now: datetime | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.seed = seed
        self.days = days
        self.items_per_day = items_per_day
        self.now = data.utc(now) if now is not None else datetime.now(UTC)
        self.faults = FaultConfig()
        self._fault_lock = threading.Lock()
        self._fault_rng = random.Random(0)
        self._fault_seed = 0
        self.request_log: list[RequestRecord] = []
        self.write_attempts: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._lock = threading.RLock()
        self.workspaces: list[Workspace] = []
        self._contexts: dict[str, data.WorkspaceContext] = {}
        self._generation: dict[str, int] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # jwt_id -> (workspace, secret)
        self._projects: dict[str, _ProjectState] = {}
        self._by_sid: dict[str, _Rec] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.access_log: Callable[[str], None] | None = None  # serve() prints one line per request
        for name, projects in DEFAULT_WORKSPACES:
            ws = self._new_workspace(name)
            for project_name, weight in projects:
                self._seed_project(ws, project_name, weight)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self._requested_port), self)
        return self._httpd

    def start(self) -> DevServer:
        """Serve in a background daemon thread; returns self for `with DevServer().start() as d`."""
        httpd = self._bind()
        if self._thread is None:
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="usersnap-devserver", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut open keep-alive connections, release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        httpd.close_connections()
        httpd.server_close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("DevServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """API root such as `http://127.0.0.1:54321/v0.1` (valid once started)."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}{PREFIX}"

    @property
    def root_url(self) -> str:
        """Server root without the API prefix (admin endpoints live under `/_dev`)."""
        return self.base_url[: -len(PREFIX)]

    # -- workspaces, keys, projects ------------------------------------------------------------------

    def _new_workspace(self, name: str) -> Workspace:
        with self._lock:
            if any(w.name == name for w in self.workspaces):
                raise ValueError(f"workspace {name!r} already exists")
            if any(data.env_prefix(w.name) == data.env_prefix(name) for w in self.workspaces):
                raise ValueError(f"workspace {name!r} would share environment variable names with another")
            self._contexts[name] = data.make_workspace_context(self.seed, name)
            self._generation[name] = 0
            jwt_id, secret = data.make_keypair(self.seed, name, 0)
            ws = Workspace(name=name, jwt_id=jwt_id, jwt_secret=secret, projects=[])
            self._keys[jwt_id] = (name, secret)
            self.workspaces.append(ws)
            return ws

    def workspace(self, name: str) -> Workspace:
        """Look a workspace up by name (exact, then case-insensitive)."""
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        for ws in self.workspaces:
            if ws.name.lower() == name.lower():
                return ws
        raise KeyError(f"no workspace {name!r}; have {[w.name for w in self.workspaces]}")

    def _add_project_state(self, ws: Workspace, name: str, earliest: datetime) -> _ProjectState:
        ctx = self._contexts[ws.name]
        project = data.make_project(ctx, name, earliest=earliest)
        state = _ProjectState(project, ws.name, data.ItemFactory(self.seed, ctx, project))
        self._projects[project["project_id"]] = state
        ws.projects.append(project)
        return state

    def _seed_project(self, ws: Workspace, name: str, weight: float) -> None:
        earliest = self.now - timedelta(days=self.days + 1)
        with self._lock:
            state = self._add_project_state(ws, name, earliest)
            rng = random.Random(f"{self.seed}:times:{state.project['project_id']}")
            for created in data.seed_times(rng, self.now, self.days, self.items_per_day * weight):
                self._insert(state, state.factory.make(created, state.next_number, self.now), created)

    def add_workspace(self, name: str, projects: dict[str, int]) -> Workspace:
        """An extra workspace with its own key; each project gets n items evenly over the last `days`."""
        ws = self._new_workspace(name)
        for project_name, n_items in projects.items():
            self.add_project(name, project_name, n_items)
        return ws

    def add_project(
        self, workspace: str, name: str, n_items: int = 0, *, start: datetime | None = None, end: datetime | None = None
    ) -> dict[str, Any]:
        """A new project with `n_items` evenly spread in [start, end) (default: the last `days` days)."""
        ws = self.workspace(workspace)
        end = data.utc(end) if end is not None else max(self.now, datetime.now(UTC))
        start = data.utc(start) if start is not None else end - timedelta(days=self.days)
        times = data.even_times(start, end, n_items)
        with self._lock:
            state = self._add_project_state(ws, name, start)
            now = max(end, datetime.now(UTC))
            for created in times:
                self._insert(state, state.factory.make(created, state.next_number, now), created)
            return state.project

    def _insert(self, state: _ProjectState, item: dict[str, Any], created: datetime) -> _Rec:
        """Index an item under its sort key (kept apart from the served `created_at`, which may be junk)."""
        fid = item.get("feedback_id")
        sid = fid if isinstance(fid, str) and fid and fid not in self._by_sid else None
        if sid is None:
            if isinstance(fid, str) and fid in self._by_sid:
                raise ValueError(f"feedback_id {fid} already exists")
            sid = data.new_uuid(state.factory.rng)  # hidden cursor id for an item without one
        created_us = data.to_us(created)
        try:
            updated_us = data.to_us(data.parse_iso(item.get("updated_at")))
        except (ValueError, TypeError):
            updated_us = created_us
        rec = _Rec(sid, (created_us, sid), (updated_us, sid), item, state.project["project_id"])
        state.insert(rec)
        self._by_sid[sid] = rec
        if isinstance(item.get("feedback_number"), int):
            state.next_number = max(state.next_number, item["feedback_number"] + 1)
        else:
            state.next_number += 1
        return rec

    def _state(self, project_id: str) -> _ProjectState:
        try:
            return self._projects[project_id]
        except KeyError:
            raise KeyError(f"no project {project_id!r}") from None

    def _creation_time(self, state: _ProjectState, created_at: datetime | None) -> datetime:
        """`created_at`, or now — never before the project's latest item, so new items come last."""
        if created_at is not None:
            return data.utc(created_at)
        now = datetime.now(UTC)
        if state.keys:
            now = max(now, data.from_us(state.keys[-1][0] + 1))
        return now

    def add_feedback(self, project_id: str, *, created_at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
        """A new valid item (now, or at `created_at`); `overrides` replace fields. Returns a copy."""
        with self._lock:
            state = self._state(project_id)
            created = self._creation_time(state, created_at)
            item = state.added_factory().make(created, state.next_number, max(created, self.now))
            item.update(overrides)
            self._insert(state, item, created)
            return copy.deepcopy(item)

    def add_malformed(self, project_id: str, kind: str, *, created_at: datetime | None = None) -> dict[str, Any]:
        """An item the importer must reject; still found by a created_at window on its day."""
        with self._lock:
            state = self._state(project_id)
            created = self._creation_time(state, created_at)
            item = state.added_factory().malformed(kind, created, state.next_number, max(created, self.now))
            self._insert(state, item, created)
            return copy.deepcopy(item)

    def items(
        self, project_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Ground truth: deep copies of every item with start <= created_at < end, ascending."""
        with self._lock:
            state = self._state(project_id)
            lo = 0 if start is None else bisect.bisect_left(state.keys, (data.to_us(start), ""))
            hi = len(state.keys) if end is None else bisect.bisect_left(state.keys, (data.to_us(end), ""))
            return [copy.deepcopy(r.item) for r in state.recs[lo:hi]]

    def rotate_key(self, workspace: str) -> tuple[str, str]:
        """Issue a new key; the previous one is answered 401 WRONG_AUTH from now on."""
        with self._lock:
            ws = self.workspace(workspace)
            self._keys.pop(ws.jwt_id, None)
            self._generation[ws.name] += 1
            ws.jwt_id, ws.jwt_secret = data.make_keypair(self.seed, ws.name, self._generation[ws.name])
            self._keys[ws.jwt_id] = (ws.name, ws.jwt_secret)
            return ws.jwt_id, ws.jwt_secret

    def delete_key(self, workspace: str) -> None:
        """Delete the workspace's key (env() keeps returning the dead pair, as a user's shell would)."""
        with self._lock:
            self._keys.pop(self.workspace(workspace).jwt_id, None)

    def env(self) -> dict[str, str]:
        """`<WORKSPACE>_JWT_ID` / `<WORKSPACE>_JWT_SECRET` for every workspace's current key."""
        out: dict[str, str] = {}
        for ws in self.workspaces:
            prefix = data.env_prefix(ws.name)
            out[f"{prefix}_JWT_ID"] = ws.jwt_id
            out[f"{prefix}_JWT_SECRET"] = ws.jwt_secret
        return out

    # -- faults ------------------------------------------------------------------------------------

    def set_faults(self, **kwargs: Any) -> None:
        """Update FaultConfig fields by name (unknown names or bad values raise)."""
        names = {f.name: f for f in dataclasses.fields(FaultConfig)}
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"unknown fault setting {key!r}; expected one of {sorted(names)}")
            if key == "retry_after":
                if value not in ("seconds", "date"):
                    raise ValueError("retry_after must be 'seconds' or 'date'")
            elif key in ("burst_429", "burst_5xx", "burst_truncated", "burst_drop", "seed"):
                if isinstance(value, bool) or int(value) != value or int(value) < 0:
                    raise ValueError(f"{key} must be a non-negative integer")
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value) or value < 0 or (key.startswith("rate_") and value > 1):
                    raise ValueError(f"{key} out of range")
        with self._fault_lock:
            for key, value in kwargs.items():
                if key == "retry_after":
                    setattr(self.faults, key, value)
                elif key in ("burst_429", "burst_5xx", "burst_truncated", "burst_drop", "seed"):
                    setattr(self.faults, key, int(value))
                else:
                    setattr(self.faults, key, float(value))
            if "seed" in kwargs:  # setting a seed (even the same one) restarts the fault sequence
                self._fault_seed = self.faults.seed
                self._fault_rng = random.Random(self._fault_seed)

    def reset_faults(self) -> None:
        with self._fault_lock:
            self.faults = FaultConfig()
            self._fault_seed = 0
            self._fault_rng = random.Random(0)

    def _next_fault(self) -> tuple[str | None, FaultConfig]:
        """Decide this request's fault (bursts first, then rates) under the lock; sleep outside it."""
        with self._fault_lock:
            f = self.faults
            if f.seed != self._fault_seed:
                self._fault_seed = f.seed
                self._fault_rng = random.Random(f.seed)
            snapshot = dataclasses.replace(f)
            kind: str | None = None
            if f.burst_429 > 0:
                f.burst_429 -= 1
                kind = "429"
            elif f.burst_5xx > 0:
                f.burst_5xx -= 1
                kind = "503"
            elif f.burst_truncated > 0:
                f.burst_truncated -= 1
                kind = "truncated"
            elif f.burst_drop > 0:
                f.burst_drop -= 1
                kind = "drop"
            else:
                rng = self._fault_rng
                if f.rate_429 > 0 and rng.random() < f.rate_429:
                    kind = "429"
                elif f.rate_5xx > 0 and rng.random() < f.rate_5xx:
                    kind = rng.choice(("500", "502", "503"))
                elif f.rate_truncated > 0 and rng.random() < f.rate_truncated:
                    kind = "truncated"
                elif f.rate_drop > 0 and rng.random() < f.rate_drop:
                    kind = rng.choice(("drop", "drop_mid"))
        if snapshot.delay_s > 0:
            time.sleep(snapshot.delay_s)
        return kind, snapshot

    # -- log ---------------------------------------------------------------------------------------

    def clear_log(self) -> None:
        with self._log_lock:
            self.request_log.clear()
            self.write_attempts.clear()

    def _record(self, rec: RequestRecord, write_attempt: bool = False) -> None:
        with self._log_lock:
            self.request_log.append(rec)
            if write_attempt:
                self.write_attempts.append(rec)

    def log_summary(self) -> dict[str, Any]:
        """What `GET /_dev/log` answers: counts, refused writes, and token hygiene facts."""
        with self._log_lock:
            log = list(self.request_log)
            writes = list(self.write_attempts)
        lifetimes = [r.exp - r.iat for r in log if isinstance(r.exp, int | float) and isinstance(r.iat, int | float)]
        return {
            "requests": len(log),
            "write_attempts": [dataclasses.asdict(r) for r in writes],
            "by_path": dict(Counter(r.path for r in log)),
            "by_status": {str(k): v for k, v in Counter(r.status for r in log).items()},
            "distinct_tokens": len({r.token_sha for r in log if r.token_sha}),
            "requests_with_token": sum(1 for r in log if r.token_sha),
            "max_token_lifetime": max(lifetimes, default=None),
        }

    # -- auth --------------------------------------------------------------------------------------

    def _authenticate(self, header: str | None, rec: RequestRecord) -> str | None:
        """The key's workspace, or None; fills kid/iat/exp/token_sha of `rec` for the log."""
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        rec.token_sha = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        head, unverified = _peek_jwt(token)  # cheap look for the kid and the log; PyJWT verifies below
        if head is None:
            return None
        kid = head.get("kid")
        rec.kid = kid if isinstance(kid, str) else None
        rec.iat, rec.exp = unverified.get("iat"), unverified.get("exp")
        if head.get("alg") != "HS256" or not isinstance(kid, str):
            return None
        with self._lock:
            entry = self._keys.get(kid)
        if entry is None:
            return None
        workspace, secret = entry
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"require": ["exp", "iat"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            return None
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
            return None
        now = time.time()
        if exp <= now or iat > now + IAT_SKEW_S or exp <= iat or exp - iat > MAX_TOKEN_LIFETIME_S:
            return None
        return workspace

    # -- request handling --------------------------------------------------------------------------

    def _access(self, method: str, path: str, status: int, t0: float, fault: str | None = None) -> None:
        if self.access_log is not None:
            ms = (time.perf_counter() - t0) * 1000
            tag = f" [{fault}]" if fault else ""
            self.access_log(f"{method} {path} {status} {ms:.1f}ms{tag}")

    def _handle(self, h: _Handler) -> None:
        t0 = time.perf_counter()
        at = time.time()
        method = h.command
        split = urlsplit(h.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            body = h.read_body()
        except (ValueError, OSError):
            h.close_connection = True
            h.send(400, _dump(_validation("unreadable request body").body))
            return
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            status, payload = self._admin(method, path, query, body)
            self._access(method, path, status, t0)
            h.send(status, payload)
            return
        rec = RequestRecord(method=method, path=path, query=query, status=0, at=at)
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            err = _ApiError(404, "NOT_FOUND", f"no such path {path}; the API lives under {PREFIX}")
            self._finish(h, rec, err.status, _dump(err.body), t0, write_attempt=method not in ("GET", "HEAD"))
            return
        route = _route(method, path[len(PREFIX) :])
        if route is None:
            err = _ApiError(
                405,
                "METHOD_NOT_ALLOWED",
                f"{method} {path} is not allowed: this server only answers the read endpoints",
            )
            self._finish(h, rec, 405, _dump(err.body), t0, write_attempt=True, headers=(("Allow", "GET, POST"),))
            return
        workspace = self._authenticate(h.headers.get("Authorization"), rec)
        if workspace is None:
            self._finish(h, rec, 401, _dump(WRONG_AUTH_BODY), t0)
            return
        rec.workspace = workspace
        fault, cfg = self._next_fault()
        rec.fault = fault
        if fault == "429":
            if cfg.retry_after == "date":
                when = math.ceil(time.time() + max(cfg.retry_after_seconds, 1.0))  # HTTP dates are whole seconds
                retry = email.utils.formatdate(when, usegmt=True)
            else:
                retry = str(max(0, math.ceil(cfg.retry_after_seconds)))
            err = _ApiError(429, "TOO_MANY_REQUESTS", "Rate limit exceeded, retry later")
            self._finish(h, rec, 429, _dump(err.body), t0, headers=(("Retry-After", retry),))
            return
        if fault in ("500", "502", "503"):
            status = int(fault)
            kinds = {500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE"}
            err = _ApiError(status, kinds[status], _REASONS[status])
            self._finish(h, rec, status, _dump(err.body), t0)
            return
        if fault == "drop":
            h.close_connection = True
            self._finish(h, rec, 0, None, t0)
            return
        try:
            status, payload = self._api(route, workspace, query, body)
        except _ApiError as err:
            status, payload = err.status, _dump(err.body)
        except Exception as exc:  # a dev-server bug: answer like a real 500 and say why on stderr
            print(f"usersnap dev server: {method} {path} failed: {exc!r}", file=sys.stderr)
            status, payload = 500, _dump(_ApiError(500, "INTERNAL_ERROR", "Internal server error").body)
        if fault == "drop_mid":
            h.close_connection = True
            self._finish(h, rec, status, payload, t0, cut=len(payload) // 3)
        elif fault == "truncated":
            h.close_connection = True
            self._finish(h, rec, status, payload, t0, cut=len(payload) // 2)
        else:
            self._finish(h, rec, status, payload, t0)

    def _finish(
        self,
        h: _Handler,
        rec: RequestRecord,
        status: int,
        payload: bytes | None,
        t0: float,
        *,
        write_attempt: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
        cut: int | None = None,
    ) -> None:
        """Record and log first (a client that got the answer always finds it logged), then answer."""
        rec.status = status
        self._record(rec, write_attempt)
        self._access(rec.method, rec.path, status, t0, rec.fault)  # before answering: a killed process keeps it
        if payload is not None:
            with contextlib.suppress(OSError):
                h.send(status, payload, headers, cut=cut)

    # -- API routes --------------------------------------------------------------------------------

    def _project_for(self, project_id: str, workspace: str) -> _ProjectState:
        state = self._projects.get(project_id)
        if state is None:
            raise _ApiError(404, "NOT_FOUND", f"Project {project_id} not found")
        if state.workspace != workspace:
            raise _ApiError(403, "NO_ACCESS", "You have no access to this project")
        return state

    def _api(
        self, route: tuple[str, str | None], workspace: str, query: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        name, project_id = route
        if name == "projects":
            with self._lock:
                projects = [s.project for s in self._projects.values() if s.workspace == workspace]
                payload = {"status": True, "data": {"has_more": False, "count": len(projects), "projects": projects}}
                return 200, _dump(payload)
        assert project_id is not None
        with self._lock:
            state = self._project_for(project_id, workspace)
        if name == "count":
            with self._lock:
                n = len(state.recs)
            return 200, _dump({"status": True, "data": {"total_count": n}})
        q = _Query(order="updated_at", desc=True) if name == "list" else _parse_query(body)
        if name == "filter_count":
            with self._lock:
                keys, recs, lo, hi, preds = self._plan(state, q)
                n = sum(1 for i in range(lo, hi) if all(p(recs[i]) for p in preds)) if preds else hi - lo
            return 200, _dump({"status": True, "data": {"total_count": n}})
        limit = _parse_limit(query.get("limit"))
        after_id = query.get("after") or None
        with self._lock:
            after_key: tuple[int, str] | None = None
            if after_id is not None:
                rec = self._by_sid.get(after_id)
                if rec is None or rec.project_id != project_id:
                    raise _validation(f"after: unknown feedback id {after_id!r}", after=["unknown feedback id"])
                after_key = rec.ukey if q.order == "updated_at" else rec.key
            keys, recs, lo, hi, preds = self._plan(state, q)
            page, more = _scan(keys, recs, lo, hi, preds, q.desc, after_key, limit)
            raws = [r.raw for r in page]
            last = page[-1].sid if page else None
        if more and last is not None:
            nxt = _dump({"query_string": f"limit={limit}&after={quote(last, safe='')}", "limit": limit, "after": last})
        else:
            nxt = b"null"
        parts = (
            b'{"status":true,"data":{"has_more":',
            b"true" if more else b"false",
            b',"count":',
            str(len(page)).encode(),
            b',"feedbacks":[',
            b",".join(raws),
            b'],"next":',
            nxt,
            b"}}",
        )
        return 200, b"".join(parts)

    def _plan(
        self, state: _ProjectState, q: _Query
    ) -> tuple[list[tuple[int, str]], list[_Rec], int, int, list[Predicate]]:
        """Which sorted list to walk, the bisected range, and the predicates left to check per item."""
        preds = list(q.preds)
        if q.order == "created_at":
            keys, recs = state.keys, state.recs
            lo = 0 if q.lo_us is None else bisect.bisect_left(keys, (q.lo_us, ""))
            hi = len(keys) if q.hi_us is None else bisect.bisect_left(keys, (q.hi_us, ""))
            return keys, recs, lo, max(lo, hi), preds
        keys, recs = state.ukeys, state.urecs
        lo_us, hi_us = q.lo_us, q.hi_us
        if lo_us is not None:
            preds.append(lambda r: r.key[0] >= lo_us)
        if hi_us is not None:
            preds.append(lambda r: r.key[0] < hi_us)
        return keys, recs, 0, len(keys), preds

    # -- admin routes --------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """`/_dev/*`: no auth, never faulted, not in the request log."""
        try:
            doc: Any = jsonio.loads(body) if body.strip() else {}
            if not isinstance(doc, dict):
                raise ValueError("body must be a JSON object")
            sub = path[len(ADMIN_PREFIX) :].rstrip("/")
            return 200, _dump(self._admin_route(method, sub, query, doc))
        except LookupError as exc:
            return 404, _dump({"ok": False, "error": str(exc.args[0] if exc.args else exc)})
        except (ValueError, TypeError) as exc:
            return 400, _dump({"ok": False, "error": str(exc)})

    def _admin_route(self, method: str, sub: str, query: dict[str, str], doc: dict[str, Any]) -> Any:
        get, post = method in ("GET", "HEAD"), method == "POST"
        if get and sub == "/health":
            return {"ok": True, "base_url": self.base_url if self._httpd else None}
        if get and sub == "/env":
            return self.env()
        if get and sub == "/faults":
            return dataclasses.asdict(self.faults)
        if post and sub == "/faults":
            self.set_faults(**doc)
            return dataclasses.asdict(self.faults)
        if post and sub == "/faults/reset":
            self.reset_faults()
            return dataclasses.asdict(self.faults)
        if post and sub == "/feedback":
            overrides = doc.get("overrides") or {}
            if not isinstance(overrides, dict):
                raise ValueError("overrides must be an object")
            return self.add_feedback(
                _require(doc, "project_id"), created_at=_json_param(doc.get("created_at"), "created_at"), **overrides
            )
        if post and sub == "/malformed":
            return self.add_malformed(
                _require(doc, "project_id"),
                _require(doc, "kind"),
                created_at=_json_param(doc.get("created_at"), "created_at"),
            )
        if post and sub == "/rotate":
            jwt_id, secret = self.rotate_key(_require(doc, "workspace"))
            return {"jwt_id": jwt_id, "jwt_secret": secret}
        if post and sub == "/delete-key":
            self.delete_key(_require(doc, "workspace"))
            return {"ok": True}
        if get and sub == "/log":
            summary = self.log_summary()
            if query.get("full"):
                with self._log_lock:
                    summary["records"] = [dataclasses.asdict(r) for r in self.request_log]
            return summary
        if post and sub == "/log/clear":
            self.clear_log()
            return {"ok": True}
        if get and sub == "/items":
            return self.items(
                _require(query, "project_id"),
                _json_param(query.get("start"), "start"),
                _json_param(query.get("end"), "end"),
            )
        if post and sub == "/projects":
            return self.add_project(
                _require(doc, "workspace"),
                _require(doc, "name"),
                int(doc.get("n_items", 0)),
                start=_json_param(doc.get("start"), "start"),
                end=_json_param(doc.get("end"), "end"),
            )
        if get and sub == "/workspaces":
            return [dataclasses.asdict(w) for w in self.workspaces]
        if post and sub == "/workspaces":
            projects = doc.get("projects") or {}
            if not isinstance(projects, dict):
                raise ValueError("projects must be an object {name: n_items}")
            ws = self.add_workspace(_require(doc, "name"), {str(k): int(v) for k, v in projects.items()})
            return dataclasses.asdict(ws)
        raise LookupError(f"no admin endpoint {method} {ADMIN_PREFIX}{sub}")


def _require(doc: dict[str, Any], key: str) -> Any:
    value = doc.get(key)
    if value is None or value == "":
        raise ValueError(f"{key} is required")
    return value


def _parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _validation(
            f"limit must be an integer between 1 and {MAX_LIMIT}", limit=[f"must be between 1 and {MAX_LIMIT}"]
        )
    return int(raw)


def _route(method: str, sub: str) -> tuple[str, str | None] | None:
    """Map a read call to (route name, project id); None means refused (405 + write attempt)."""
    parts = sub.split("/")[1:] if sub.startswith("/") else []
    if not parts or any(p == "" for p in parts) or parts[0] != "projects":
        return None
    if method == "GET":
        if len(parts) == 1:
            return "projects", None
        if len(parts) == 3 and parts[2] == "feedbacks":
            return "list", parts[1]
        if len(parts) == 4 and parts[2:] == ["feedbacks", "count"]:
            return "count", parts[1]
    elif method == "POST":
        if len(parts) == 4 and parts[2:] == ["feedbacks", "filter"]:
            return "filter", parts[1]
        if len(parts) == 5 and parts[2:] == ["feedbacks", "filter", "count"]:
            return "filter_count", parts[1]
    return None


# --------------------------------------------------------------------------------------------------
# foreground runner


def _write_env_file(path: str, dev: DevServer) -> None:
    """`NAME=value` lines (mode 0600) so a demo shell can `set -a; . file` the dev credentials."""
    lines = [f"USERSNAP_BASE_URL={dev.base_url}", *(f"{k}={v}" for k, v in dev.env().items())]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 42,
    env_file: str | None = None,
    days: int = 190,
    items_per_day: float = 6.0,
) -> None:
    """Run the dev server in the foreground until Ctrl-C or SIGTERM; one stderr line per request."""
    dev = DevServer(host=host, port=port, seed=seed, days=days, items_per_day=items_per_day)
    dev.access_log = lambda line: print(line, file=sys.stderr, flush=True)
    httpd = dev._bind()
    if env_file:
        _write_env_file(env_file, dev)
    total = sum(len(s.recs) for s in dev._projects.values())
    print(
        f"Usersnap dev server on {dev.base_url} (seed {seed}, {total} items, {len(dev.workspaces)} workspaces)",
        file=sys.stderr,
    )
    for ws in dev.workspaces:
        names = ", ".join(f"{p['name']} ({p['feedback_count']})" for p in ws.projects)
        print(f"  {ws.name}: key {data.env_prefix(ws.name)}_JWT_ID/_JWT_SECRET; projects: {names}", file=sys.stderr)
    print(
        f"  credentials: {env_file or f'GET {dev.root_url}{ADMIN_PREFIX}/env'}; Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        dev._httpd = None
        httpd.close_connections()
        httpd.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
