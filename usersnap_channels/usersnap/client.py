"""The Usersnap REST API v0.1 client: read calls only, a fresh JWT per request, bounded retries.

It knows nothing of Dagster or DuckDB; the resource hands it to assets, sensors and the CLI.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
import urllib3

from usersnap_channels import jsonio
from usersnap_channels.settings import PAGE_SIZE, TOKEN_LIFETIME_S

log = logging.getLogger(__name__)

# Usersnap issues the secrets; their length is not ours to choose, so PyJWT's advice is noise on every call.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)

INVALID_CREDENTIALS_GUIDANCE = (
    "The JWT ID or JWT Secret is wrong, the key was deleted in Usersnap, or its creator lost Admin "
    "access. Generate a fresh key under Settings → API in Usersnap and try again."
)

#: Statuses worth another try: Usersnap's rate limit and its gateway/server hiccups.
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class UsersnapError(Exception):
    """Any failure talking to Usersnap."""


class InvalidCredentials(UsersnapError):
    """Usersnap answered 401 WRONG_AUTH: the key is wrong, deleted or rotated."""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        lead = "Invalid credentials" + (f" ({detail})" if detail else "")
        super().__init__(f"{lead}.\n{INVALID_CREDENTIALS_GUIDANCE}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the detail, not the full message, when crossing a process boundary.
        return (self.__class__, (self.detail,))


class MissingCredentials(UsersnapError):
    """A credential environment variable named by a source is not set."""


class UsersnapAccessError(UsersnapError):
    """403/404: the key cannot see that project (any more)."""


class UsersnapRequestError(UsersnapError):
    """A request that failed for good: a 4xx we cannot fix by retrying, or retries exhausted."""


class UsersnapWrongBaseUrl(UsersnapRequestError):
    """A 404 from a base URL that is not the API root (no `/v0.1`, or `/projects` itself not found): about
    USERSNAP_BASE_URL, not about the key or a project."""


class UsersnapUnreachable(UsersnapRequestError):
    """Retries exhausted without ever getting a connection (refused, unknown host, connect timeout): most
    likely a wrong USERSNAP_BASE_URL or no network, rather than a flaky Usersnap."""


@dataclass(frozen=True)
class Credentials:
    """One Usersnap API key and the names of the variables it came from.

    Neither value shows in repr, str, logs or errors: messages name the variables instead.
    """

    jwt_id: str = field(repr=False)
    jwt_secret: str = field(repr=False)
    jwt_id_env: str | None = None
    jwt_secret_env: str | None = None

    def describe(self) -> str:
        """How messages name this key: by its variables, never by a value."""
        if self.jwt_id_env and self.jwt_secret_env:
            return f"the key in {self.jwt_id_env} / {self.jwt_secret_env}"
        return "the key"

    def __str__(self) -> str:
        return f"Credentials({self.describe()})"


def read_credentials(jwt_id_env: str, jwt_secret_env: str, *, where: str = "") -> Credentials:
    """The key from the environment variables a source names; a clear error naming any that is missing.

    `where` says which process looked (the sensor runs in the Dagster daemon, not in the user's shell).
    """
    missing = [name for name in (jwt_id_env, jwt_secret_env) if not os.environ.get(name)]
    if missing:
        raise MissingCredentials(
            f"Environment variable{'' if len(missing) == 1 else 's'} {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set"
            f"{where}: export the JWT ID and JWT Secret from Settings → API in Usersnap under those names."
        )
    return Credentials(os.environ[jwt_id_env], os.environ[jwt_secret_env], jwt_id_env, jwt_secret_env)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one request.

    429s are waited out (their `Retry-After`, capped) up to `max_rate_limited` times; 5xx, dropped
    connections and truncated or unparsable bodies get `max_transient` tries with exponential backoff.
    """

    max_transient: int = 6
    max_rate_limited: int = 30
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0
    retry_after_default_s: float = 5.0


def feedback_window_query(start: datetime, end: datetime) -> dict[str, Any]:
    """The filter body for items with start <= created_at < end, oldest first."""
    return {
        "query": [
            {"filter_type": "created_at", "operator": "gte", "value": _iso(start)},
            {"filter_type": "created_at", "operator": "lt", "value": _iso(end)},
        ],
        "order_by": {"order_by_type": "created_at", "direction": "asc"},
    }


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class ClientSpec:
    """Everything needed to build a client, without a secret: the key is read from the named variables
    where the client is built (possibly another process), so it never travels through config or pipes."""

    base_url: str
    jwt_id_env: str
    jwt_secret_env: str
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retry: RetryPolicy = RetryPolicy()

    def build(self) -> UsersnapClient:
        return UsersnapClient(
            self.base_url,
            read_credentials(self.jwt_id_env, self.jwt_secret_env),
            timeout=(self.connect_timeout_s, self.read_timeout_s),
            retry=self.retry,
        )


class UsersnapClient:
    """Talks to one Usersnap workspace with one key.

    Every request carries a freshly minted HS256 JWT (header `kid`, `iat`, `exp` a minute ahead, a
    unique `jti`), so a token is never reused and a leaked one dies within a minute.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        token_lifetime_s: int = TOKEN_LIFETIME_S,
    ) -> None:
        if not 0 < token_lifetime_s <= 300:
            raise ValueError("token lifetime must be between 1 and 300 seconds")
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self._session.headers.update({"Accept": "application/json", "User-Agent": "usersnap-channels"})
        self._sleep = sleep
        self._token_lifetime_s = token_lifetime_s
        self.requests_made = 0

    def _api_root(self) -> bool:
        """Whether the base URL's path ends with the API version, as every Usersnap API root does."""
        return urlsplit(self.base_url).path.rstrip("/").endswith("/v0.1")

    def __repr__(self) -> str:
        return f"UsersnapClient(base_url={self.base_url!r}, {self._credentials.describe()})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> UsersnapClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the read calls we use -------------------------------------------------------------------

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project the key can see (follows `has_more` should Usersnap ever page them)."""
        projects: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            data = self._call("GET", "/projects", params=params, what="listing projects")
            page = data.get("projects") or []
            projects.extend(page)
            if not data.get("has_more") or not page:
                return projects
            params = {"after": page[-1].get("project_id")}

    def iter_feedback_pages(
        self, project_id: str, start: datetime, end: datetime, *, page_size: int = PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of items with start <= created_at < end, oldest first, following the cursor."""
        what = f"feedback of project {project_id} from {_iso(start)} to {_iso(end)}"
        body = feedback_window_query(start, end)
        params: dict[str, Any] = {"limit": page_size}
        seen_cursors: set[str] = set()
        while True:
            data = self._call("POST", f"/projects/{project_id}/feedbacks/filter", params=params, json=body, what=what)
            items = data.get("feedbacks") or []
            if items:
                yield items
            nxt = data.get("next")
            if not data.get("has_more") or not nxt or not items:
                return
            cursor = nxt.get("after") if isinstance(nxt, dict) else None
            if not cursor or cursor in seen_cursors:
                raise UsersnapRequestError(f"Usersnap returned a repeating or empty cursor while paging {what}")
            seen_cursors.add(cursor)
            params = {"limit": nxt.get("limit") or page_size, "after": cursor}

    def count_feedback(self, project_id: str, start: datetime | None = None, end: datetime | None = None) -> int:
        """How many items Usersnap holds for the project (within the window, when given)."""
        if start is None or end is None:
            data = self._call("GET", f"/projects/{project_id}/feedbacks/count", what=f"counting {project_id}")
        else:
            data = self._call(
                "POST",
                f"/projects/{project_id}/feedbacks/filter/count",
                json=feedback_window_query(start, end),
                what=f"counting feedback of project {project_id} from {_iso(start)} to {_iso(end)}",
            )
        return int(data["total_count"])

    # -- transport --------------------------------------------------------------------------------

    def _token(self) -> str:
        now = int(time.time())
        return jwt.encode(
            {"iat": now, "exp": now + self._token_lifetime_s, "jti": uuid.uuid4().hex},
            self._credentials.jwt_secret,
            algorithm="HS256",
            headers={"kid": self._credentials.jwt_id},
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """One read call with the retry policy; returns the response's `data` object."""
        policy = self._retry
        transient_failures = 0
        rate_limited = 0
        body = jsonio.dumps(json).encode() if json is not None else None
        while True:
            headers = {"Authorization": f"Bearer {self._token()}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            self.requests_made += 1
            problem: str
            unreachable = False
            wait: float | None = None
            try:
                response = self._session.request(
                    method, self.base_url + path, params=params, data=body, headers=headers, timeout=self._timeout
                )
                content = response.content  # reads the whole body: truncation raises here
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                problem = f"connection problem ({type(exc).__name__})"
                unreachable = _never_connected(exc)
            else:
                status = response.status_code
                if status == 200:
                    try:
                        payload = jsonio.loads(content)
                        return payload["data"]
                    except (ValueError, KeyError, TypeError):
                        problem = f"unparsable or truncated response body ({len(content)} bytes)"
                elif status == 401:
                    raise InvalidCredentials(f"{self._credentials.describe()} was refused while {what}")
                elif status == 404 and (not self._api_root() or path == "/projects"):
                    raise UsersnapWrongBaseUrl(
                        f"Usersnap answered 404 ({_error_message(content)}) while {what}: USERSNAP_BASE_URL "
                        f"{self.base_url} is not the API root; it should end with /v0.1 "
                        "(e.g. https://platform.usersnap.com/v0.1)"
                    )
                elif status in (403, 404):
                    raise UsersnapAccessError(
                        f"Usersnap answered {status} ({_error_message(content)}) while {what}: the key "
                        "cannot see this project any more, or it was deleted"
                    )
                elif status == 429:
                    rate_limited += 1
                    if rate_limited > policy.max_rate_limited:
                        raise UsersnapRequestError(
                            f"Usersnap kept rate-limiting (429 {rate_limited} times) while {what}; try again later"
                        )
                    wait = parse_retry_after(response.headers.get("Retry-After"))
                    wait = min(policy.retry_after_default_s if wait is None else wait, policy.retry_after_max_s)
                    log.warning("Usersnap rate limit while %s; waiting %.1f s as Retry-After asks", what, wait)
                    self._sleep(wait)
                    continue
                elif status in _TRANSIENT_STATUSES:
                    problem = f"HTTP {status}"
                else:
                    raise UsersnapRequestError(f"Usersnap answered {status} ({_error_message(content)}) while {what}")
            transient_failures += 1
            if transient_failures >= policy.max_transient:
                raise (UsersnapUnreachable if unreachable else UsersnapRequestError)(
                    f"Gave up after {transient_failures} tries while {what}: last problem was {problem}"
                )
            wait = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (transient_failures - 1))
            wait *= 0.5 + random.random() / 2  # jitter, so parallel workers do not retry in lockstep
            log.warning("Usersnap %s while %s; retry %d in %.1f s", problem, what, transient_failures, wait)
            self._sleep(wait)


def _never_connected(exc: Exception) -> bool:
    """Whether the request failed before any connection existed (as opposed to one dropped mid-answer)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _error_message(content: bytes) -> str:
    """The `msg`/`errortype` of a Usersnap error body, or a short excerpt."""
    try:
        body = jsonio.loads(content)
        return f"{body.get('errortype')}: {body.get('msg')}"
    except (ValueError, AttributeError):
        return content[:200].decode("utf-8", "replace")
