"""Every `curl` example of the README's dev-server admin endpoints is sent to a started server, as written
(port and project id substituted), and must answer with the documented status and keys: the docs cannot rot.
Answers are never printed (some hold the dev keys)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from usersnap_channels.devserver import DevServer

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
DOC_PORT = "127.0.0.1:8765"


@dataclass(frozen=True)
class Example:
    line: str
    method: str
    url: str
    body: str | None
    status: int
    keys: tuple[str, ...]


def _section() -> str:
    found = re.search(r"### Admin endpoints \(`/_dev/`\)\n(.*?)\n\*\*Rehearse a key rotation\*\*", README, re.S)
    assert found, "the README's admin endpoints section is missing"
    return found.group(1)


def parse(line: str) -> Example:
    """One README line `curl -s [-X M] URL [-d BODY]   # STATUS {`key`, …}: what it does`."""
    command, _, comment = line.partition("   # ")
    words = shlex.split(command.replace("$P", "PROJECT_ID"))
    method = words[words.index("-X") + 1] if "-X" in words else "GET"
    body = words[words.index("-d") + 1] if "-d" in words else None
    url = next(w for w in words if w.startswith("http://"))
    answer = re.match(r"\s*(\d{3})\s*(\{[^}]*\})?", comment)
    assert answer, f"no documented answer in: {line}"
    keys = tuple(re.findall(r"`([^`]+)`", answer.group(2) or ""))
    return Example(line, "POST" if body is not None and method == "GET" else method, url, body, int(answer[1]), keys)


def examples() -> list[Example]:
    return [parse(line) for line in _section().splitlines() if line.startswith("curl ")]


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with DevServer(seed=3, days=10, items_per_day=2.0) as dev:
        yield dev


def test_the_readme_documents_every_admin_endpoint() -> None:
    routes = {(e.method, e.url.split("?")[0].removeprefix(f"http://{DOC_PORT}")) for e in examples()}
    source = (Path(__file__).resolve().parents[2] / "usersnap_channels/devserver/server.py").read_text()
    served = {
        (("GET" if kind == "get" else "POST"), f"/_dev{sub}")
        for kind, sub in re.findall(r'if (get|post) and sub == "([^"]+)"', source)
    }
    assert served, "no admin route found in server.py"
    assert served <= routes, f"undocumented admin endpoints: {sorted(served - routes)}"


def test_every_curl_example_answers_as_documented(server: DevServer) -> None:
    project_id = server.workspaces[0].projects[0]["project_id"]
    found = examples()
    assert len(found) >= 15
    for example in found:
        url = example.url.replace(DOC_PORT, f"127.0.0.1:{server.port}").replace("PROJECT_ID", project_id)
        body = example.body.replace("PROJECT_ID", project_id) if example.body else None
        response = requests.request(example.method, url, data=body, timeout=10)
        assert response.status_code == example.status, (example.line, response.status_code)
        answer = response.json()
        if example.keys:
            assert isinstance(answer, dict), example.line
            missing = [k for k in example.keys if k not in answer]
            assert not missing, (example.line, missing)
        else:
            assert isinstance(answer, list) and answer, example.line
    server.reset_faults()


def test_the_rotation_walk_through_uses_the_documented_rotate_endpoint() -> None:
    walk = README.split("**Rehearse a key rotation**", 1)[1].split("```", 2)[1]
    assert "/_dev/rotate" in walk and "update-credentials" in walk
    assert walk.count("usersnap-channels sync") == 2
