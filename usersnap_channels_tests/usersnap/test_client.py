"""The Usersnap client against the real local server over HTTP (JWTs verified, documented shapes)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import day_bounds
from usersnap_channels.usersnap.client import (
    Credentials,
    InvalidCredentials,
    RetryPolicy,
    UsersnapClient,
    UsersnapRequestError,
    parse_retry_after,
)

FAST_RETRY = RetryPolicy(max_transient=4, backoff_base_s=0.01, backoff_max_s=0.05)


def make_client(server: DevServer, workspace: str = "Acme", sleeps: list[float] | None = None) -> UsersnapClient:
    ws = server.workspace(workspace)

    def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return UsersnapClient(server.base_url, Credentials(ws.jwt_id, ws.jwt_secret), retry=FAST_RETRY, sleep=sleep)


def recent_window(server: DevServer, days: int) -> tuple[datetime, datetime]:
    """The last `days` whole UTC days of the server's seeded history, up to the end of its `now` day."""
    end = datetime.combine(server.now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return end - timedelta(days=days), end


def test_lists_the_projects_of_the_key_only(devserver: DevServer) -> None:
    with make_client(devserver, "Acme") as client:
        names = {p["name"] for p in client.list_projects()}
    assert names == {p["name"] for p in devserver.workspace("Acme").projects}
    assert names.isdisjoint({p["name"] for p in devserver.workspace("Globex").projects})


def test_every_item_of_a_window_comes_back_once_in_pages_of_50(devserver: DevServer) -> None:
    project = devserver.workspace("Acme").projects[0]
    start, end = recent_window(devserver, days=30)
    truth = devserver.items(project["project_id"], start, end)
    assert len(truth) > 100, "the window should need several pages"
    devserver.clear_log()
    with make_client(devserver) as client:
        pages = list(client.iter_feedback_pages(project["project_id"], start, end))
    got = [item["feedback_id"] for page in pages for item in page]
    assert got == [item["feedback_id"] for item in truth]
    assert len(got) == len(set(got))
    assert all(len(page) == 50 for page in pages[:-1]) and 0 < len(pages[-1]) <= 50
    filter_calls = [r for r in devserver.request_log if r.path.endswith("/feedbacks/filter")]
    assert len(filter_calls) == len(pages)
    assert {r.query.get("limit") for r in filter_calls} == {"50"}


def test_counts_match_the_server(devserver: DevServer) -> None:
    project = devserver.workspace("Globex").projects[0]
    start, end = day_bounds((datetime.now(UTC) - timedelta(days=3)).date())
    with make_client(devserver, "Globex") as client:
        assert client.count_feedback(project["project_id"], start, end) == len(
            devserver.items(project["project_id"], start, end)
        )
        assert client.count_feedback(project["project_id"]) == len(devserver.items(project["project_id"]))


def test_a_fresh_short_lived_token_per_request(devserver: DevServer) -> None:
    project = devserver.workspace("Acme").projects[0]
    start, end = recent_window(devserver, days=30)
    devserver.clear_log()
    with make_client(devserver) as client:
        client.list_projects()
        list(client.iter_feedback_pages(project["project_id"], start, end))
    log = [r for r in devserver.request_log if r.status == 200]
    assert len(log) >= 3
    assert len({r.token_sha for r in log}) == len(log), "a token must never be reused"
    assert all(r.kid == devserver.workspace("Acme").jwt_id for r in log)
    assert all(0 < r.exp - r.iat <= 60 for r in log)


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_429_is_waited_out_as_retry_after_says_and_resumed(devserver: DevServer, form: str) -> None:
    project = devserver.workspace("Acme").projects[0]
    start, end = recent_window(devserver, days=30)
    expected = [i["feedback_id"] for i in devserver.items(project["project_id"], start, end)]
    devserver.set_faults(burst_429=3, retry_after=form, retry_after_seconds=2)
    sleeps: list[float] = []
    with make_client(devserver, sleeps=sleeps) as client:
        got = [i["feedback_id"] for page in client.iter_feedback_pages(project["project_id"], start, end) for i in page]
    assert got == expected
    assert len(sleeps) == 3
    # seconds form: exactly 2 s; HTTP-date form: whole seconds, so within a second of 2 s ahead of now.
    assert all((s == 2.0) if form == "seconds" else (1.0 <= s <= 3.0) for s in sleeps), sleeps


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert (
        parse_retry_after("Wed, 25 Nov 2026 10:00:10 GMT", now=datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp())
        == 10.0
    )
    assert parse_retry_after("yesterday-ish") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("fault", ["burst_5xx", "burst_truncated"])
def test_5xx_and_truncated_bodies_are_retried(devserver: DevServer, fault: str) -> None:
    project = devserver.workspace("Acme").projects[1]
    start, end = recent_window(devserver, days=20)
    expected = [i["feedback_id"] for i in devserver.items(project["project_id"], start, end)]
    devserver.set_faults(**{fault: 2})
    sleeps: list[float] = []
    with make_client(devserver, sleeps=sleeps) as client:
        got = [i["feedback_id"] for page in client.iter_feedback_pages(project["project_id"], start, end) for i in page]
    assert got == expected
    assert len(sleeps) == 2


@pytest.mark.parametrize("fault", ["burst_5xx", "burst_truncated"])
def test_persistent_failures_end_in_a_clear_error_naming_project_and_window(devserver: DevServer, fault: str) -> None:
    project = devserver.workspace("Acme").projects[1]
    start, end = day_bounds(datetime.now(UTC).date())
    devserver.set_faults(**{fault: 1000})
    with make_client(devserver) as client, pytest.raises(UsersnapRequestError) as excinfo:
        list(client.iter_feedback_pages(project["project_id"], start, end))
    message = str(excinfo.value)
    assert project["project_id"] in message
    assert start.strftime("%Y-%m-%dT00:00:00Z") in message
    assert "Gave up after 4 tries" in message


def test_wrong_and_rotated_credentials_raise_invalid_credentials(devserver: DevServer) -> None:
    ws = devserver.workspace("Acme")
    wrong = UsersnapClient(devserver.base_url, Credentials(ws.jwt_id, "not-the-secret-" + "x" * 33), retry=FAST_RETRY)
    with pytest.raises(InvalidCredentials) as excinfo:
        wrong.list_projects()
    assert str(excinfo.value).startswith("Invalid credentials")
    assert "Settings → API" in str(excinfo.value)

    old = make_client(devserver)
    old.list_projects()
    new_id, new_secret = devserver.rotate_key("Acme")
    with pytest.raises(InvalidCredentials):
        old.list_projects()
    fresh = UsersnapClient(devserver.base_url, Credentials(new_id, new_secret), retry=FAST_RETRY)
    assert fresh.list_projects()


def test_no_write_call_and_no_secret_in_logs(devserver: DevServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ws = devserver.workspace("Acme")
    project = ws.projects[0]
    start, end = recent_window(devserver, days=5)
    devserver.set_faults(burst_429=1, burst_5xx=1, burst_truncated=1)
    client = make_client(devserver)
    client.list_projects()
    list(client.iter_feedback_pages(project["project_id"], start, end))
    client.count_feedback(project["project_id"], start, end)
    with pytest.raises(InvalidCredentials) as excinfo:
        UsersnapClient(
            devserver.base_url, Credentials(ws.jwt_id, ws.jwt_secret + "x"), retry=FAST_RETRY
        ).list_projects()
    assert devserver.write_attempts == []
    assert {r.method for r in devserver.request_log} <= {"GET", "POST"}
    assert all(r.path.endswith(("/projects", "/filter", "/count")) for r in devserver.request_log)
    for text in (caplog.text, repr(client), str(excinfo.value), repr(Credentials(ws.jwt_id, ws.jwt_secret))):
        assert ws.jwt_secret not in text
        assert "eyJ" not in text  # no JWT (base64 of '{"') in any log line or message
