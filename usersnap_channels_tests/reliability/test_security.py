"""Nothing leaked: after a whole life cycle through the real CLI (connect, sync, syncs under faults, a key
rotation and `update-credentials`, disconnect, delete) no JWT ID and no JWT secret the server ever issued
appears in the DuckDB file, anywhere under DAGSTER_HOME, in any CLI output, run config, tag or event; every
request carried a fresh token living at most 5 minutes; nothing wrote to Usersnap; TLS is always verified.

Both values are secret (the contract): messages name the variables that hold them, never a value.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import secrets
import traceback
from pathlib import Path

import dagster as dg
import pytest

from usersnap_channels import settings
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.devserver import DevServer
from usersnap_channels.usersnap.client import Credentials, InvalidCredentials, UsersnapClient, read_credentials
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.conftest import run_cli

PACKAGE = Path(__file__).resolve().parents[2] / "usersnap_channels"
ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
GLOBEX = ["--jwt-id-env", "GLOBEX_JWT_ID", "--jwt-secret-env", "GLOBEX_JWT_SECRET"]
#: A compact JWS (header.payload.): a full token must never be written anywhere either.
JWT_PATTERN = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")


class Session:
    """Runs the CLI and keeps every byte it printed."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []

    def __call__(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> str:
        result = run_cli(*args, env=env or self.env)
        text = result.stdout + result.stderr
        self.outputs.append(text)
        if expect is not None:
            assert result.returncode == expect, (args, result.returncode, text)
        return text


def test_no_secret_anywhere_after_a_full_life_cycle(env: dict[str, str], devserver: DevServer, tmp_path: Path) -> None:
    issued = {value for key, value in env.items() if key.endswith(("_JWT_SECRET", "_JWT_ID"))}
    wrong = "wrong-" + secrets.token_urlsafe(24)  # what a user might paste by mistake: secret as well
    wrong_id = "wrong-id-" + secrets.token_urlsafe(12)
    cli = Session(env)

    cli("projects", *ACME)
    refused = cli("projects", *ACME, env={**env, "ACME_JWT_SECRET": wrong}, expect=2)
    assert refused.startswith("Invalid credentials") and "ACME_JWT_ID / ACME_JWT_SECRET" in refused, refused
    cli("projects", *ACME, env={**env, "ACME_JWT_ID": wrong_id}, expect=2)
    # one project each keeps every sync small (fetched in threads, no worker processes to start)
    acme_project, globex_project = (devserver.workspace(ws).projects[0]["name"] for ws in ("Acme", "Globex"))
    cli("connect", "--channel", "Secure", "--source", "Acme", *ACME, "--project", acme_project, "--backfill", "7d")
    cli(
        "connect", "--channel", "Secure", "--source", "Globex", *GLOBEX, "--project", globex_project, "--backfill", "7d"
    )
    cli("sync")

    # syncs under every fault (a failed one is fine: the next sync completes it)
    devserver.add_feedback(devserver.workspace("Acme").projects[0]["project_id"])
    devserver.set_faults(rate_429=0.1, retry_after_seconds=0, rate_5xx=0.1, rate_truncated=0.05, rate_drop=0.05, seed=3)
    cli("sync", expect=None)
    devserver.reset_faults()

    # the key is rotated in Usersnap: the sync fails for that source only and says what to do
    new_id, new_secret = devserver.rotate_key("Acme")
    issued |= {new_id, new_secret}
    refused = cli("sync", expect=1)
    assert "Authorization failed for source 'Acme'" in refused and "update-credentials" in refused, refused
    assert "Acme" in cli("status")
    rotated = {**env, "ACME_NEW_JWT_ID": new_id, "ACME_NEW_JWT_SECRET": new_secret}
    ids = ["--jwt-id-env", "ACME_NEW_JWT_ID", "--jwt-secret-env", "ACME_NEW_JWT_SECRET"]
    cli("update-credentials", "--channel", "Secure", "--source", "Acme", *ids, env=rotated)
    cli("sync", env=rotated)
    cli("disconnect", "--channel", "Secure", "--source", "Globex", "--yes", env=rotated)
    cli("delete", "--channel", "Secure", "--source", "Acme", "--yes", env=rotated)

    needles = sorted(issued | {wrong, wrong_id})
    assert len(needles) == 8
    # the DuckDB file (checkpointed, so nothing hides in the WAL) and every file of the test's folders,
    # which hold DAGSTER_HOME (run and event storage, compute logs, schedules) and the database
    con = connect(env["USERSNAP_CHANNELS_DB"])
    con.execute("CHECKPOINT")
    con.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    home = Path(env["DAGSTER_HOME"])
    assert any(p.is_relative_to(home) and p.suffix == ".db" for p in files), "no Dagster storage found"
    assert Path(env["USERSNAP_CHANNELS_DB"]) in files
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in blob, f"a secret is in {path}"
        assert not JWT_PATTERN.search(blob), f"a full token is in {path}"
    for text in cli.outputs:
        for needle in needles:
            assert needle not in text
        assert not JWT_PATTERN.search(text.encode())
        assert "Traceback" not in text

    # run config, tags and every event of every run on the instance
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert {r.job_name for r in runs} >= {"usersnap_sync_job"}
        for run in runs:
            recorded = json.dumps([run.run_config, run.tags], default=str)
            recorded += "".join(repr(entry) for entry in instance.all_logs(run.run_id))
            for needle in needles:
                assert needle not in recorded, f"a secret is in run {run.run_id} ({run.job_name})"

    # every request carried a fresh, short-lived token; nothing but reads reached the server
    log = devserver.request_log
    assert len(log) > 50
    assert all(r.token_sha for r in log), "a request without a token"
    assert all(isinstance(r.iat, int) and isinstance(r.exp, int) and 0 < r.exp - r.iat <= 300 for r in log)
    assert len({r.token_sha for r in log}) == len(log), "a token was used twice"
    assert devserver.write_attempts == []
    reads = re.compile(r"/v0\.1/projects(/[^/]+/feedbacks(/count|/filter|/filter/count)?)?")
    assert all(
        (r.method, bool(reads.fullmatch(r.path))) in {("GET", True), ("POST", True)}
        and (r.method == "GET" or "/filter" in r.path)
        for r in log
    ), {(r.method, r.path) for r in log}


def test_errors_reprs_and_pickles_never_carry_the_secret(devserver: DevServer, monkeypatch) -> None:
    """What ends up in messages, event logs and between worker processes: exceptions, reprs, pickles."""
    ws = devserver.workspace("Acme")
    secret = "not-the-right-" + secrets.token_urlsafe(16)
    credentials = Credentials(ws.jwt_id, secret)
    with UsersnapClient(devserver.base_url, credentials) as client, pytest.raises(InvalidCredentials) as raised:
        client.list_projects()
    exc = raised.value
    texts = [
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        repr(credentials),
        str(credentials),
        repr(client),
        repr(pickle.loads(pickle.dumps(exc))),
    ]
    assert "SEC_ID" not in str(exc)  # built without variable names: "the key"
    monkeypatch.setenv("SEC_ID", ws.jwt_id)
    monkeypatch.setenv("SEC_SECRET", secret)
    resource = UsersnapResource(base_url=devserver.base_url, jwt_id_env="SEC_ID", jwt_secret_env="SEC_SECRET")
    spec = resource.client_spec() if hasattr(resource, "client_spec") else None
    texts += [repr(resource), json.dumps(resource._convert_to_config_dictionary(), default=str)]
    if spec is not None:  # what an import hands to its fetch worker processes
        blob = pickle.dumps(spec)
        assert secret.encode() not in blob
        texts.append(repr(spec))
        texts.append(json.dumps(dataclasses.asdict(spec), default=str))
    texts += [str(client_for(resource)), repr(client_for(resource)), str(read_credentials("SEC_ID", "SEC_SECRET"))]
    for text in texts:
        assert secret not in text, text
        assert ws.jwt_id not in text, text


def client_for(resource: UsersnapResource) -> UsersnapClient:
    client = resource.client()
    client.close()
    return client


def test_a_refused_key_is_named_by_its_variables(devserver: DevServer, monkeypatch) -> None:
    ws = devserver.workspace("Acme")
    monkeypatch.setenv("SEC_ID", ws.jwt_id)
    monkeypatch.setenv("SEC_SECRET", "not-the-right-secret-" + "x" * 32)  # full length, as a real one is
    client = UsersnapClient(devserver.base_url, read_credentials("SEC_ID", "SEC_SECRET"))
    with client, pytest.raises(InvalidCredentials) as raised:
        client.list_projects()
    message = str(raised.value)
    assert message.startswith("Invalid credentials (the key in SEC_ID / SEC_SECRET was refused"), message
    assert ws.jwt_id not in message and ws.jwt_id not in repr(client)


def test_tls_verification_is_never_disabled(monkeypatch) -> None:
    offenders = []
    patterns = [
        r"verify\s*=\s*False",
        r"\.verify\s*=",
        r"CERT_NONE",
        r"check_hostname\s*=\s*False",
        r"disable_warnings",
        r"_create_unverified_context",
        r"PYTHONHTTPSVERIFY",
        r"CURL_CA_BUNDLE",
    ]
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        offenders += [f"{path.name}: {p}" for p in patterns if re.search(p, text)]
    assert offenders == []
    assert settings.DEFAULT_BASE_URL.startswith("https://")

    monkeypatch.delenv("USERSNAP_BASE_URL", raising=False)
    monkeypatch.setenv("USERSNAP_JWT_ID", "id")
    monkeypatch.setenv("USERSNAP_JWT_SECRET", "secret")
    for client in (
        UsersnapClient(settings.DEFAULT_BASE_URL, Credentials("id", "secret")),
        UsersnapResource().client(),
    ):
        assert client.base_url.startswith("https://")
        session = client._session
        assert session.verify is True
        effective = session.merge_environment_settings(client.base_url + "/projects", {}, None, None, None)
        assert effective["verify"] not in (False, None, "", "0")
        client.close()
