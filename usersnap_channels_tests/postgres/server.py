"""A throwaway local Postgres for the Postgres instance profile: `make test-postgres` and `benchmarks/ingest.py`.

Debian's `initdb` and `pg_ctl` (from `postgresql`; the Makefile installs it when missing) create a cluster in a
temporary folder, owned by an unprivileged user when we run as root (initdb refuses root): `postgres` when
that account exists, else `nobody`. The server listens on 127.0.0.1 only, on a free port, with its Unix
socket inside the folder; the role `dagster` gets a random password that lives in this process's memory
and the environment of the processes it starts (the `DAGSTER_PG_*` variables `deploy/postgres/dagster.yaml`
reads), never in a file we keep: initdb reads it from a file that is deleted at once.

    python -m usersnap_channels_tests.postgres.server -- COMMAND ...

starts one, runs COMMAND with the `DAGSTER_PG_*` variables set, stops and deletes it, and exits with
COMMAND's code.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The variables the profile's dagster.yaml reads (`env:` keys), the only way the settings reach Dagster.
ENV_NAMES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "dagster.yaml"


def configured() -> bool:
    """Whether a Postgres for the profile is configured in this environment (else its tests skip)."""
    return all(os.environ.get(name) for name in ENV_NAMES)


def _binary(name: str) -> str:
    """Debian keeps initdb/pg_ctl off PATH, in /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's `postgresql` (make test-postgres does)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """A Postgres cluster in a temporary folder, started on enter, stopped and deleted on exit."""

    def __init__(
        self, *, user: str = "dagster", db: str = "dagster", fsync: bool = False, timeout_s: float = 60.0
    ) -> None:
        """`fsync=False` (tests): faster, and nothing to keep after a crash; the benchmark keeps it on."""
        self.user, self.db, self.fsync, self.timeout_s = user, db, fsync, timeout_s
        self.password = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="usersnap-pg-"))
        self.data = self.folder / "data"
        self._owner = self._unprivileged_owner()

    @staticmethod
    def _unprivileged_owner() -> pwd.struct_passwd | None:
        """The account that runs the server when we are root; None: run as ourselves."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError("running as root and neither a `postgres` nor a `nobody` account exists")

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", self._owner.pw_name, "--", *args] if self._owner else list(args)
        done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    def start(self) -> LocalPostgres:
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password)
        if self._owner:
            os.chmod(self.folder, 0o700)
            for path in (self.folder, pwfile):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        try:
            self._run(_binary("initdb"), "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        finally:
            pwfile.unlink()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder}"
        options += "" if self.fsync else " -c fsync=off"
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w",
                  "-t", str(int(self.timeout_s)), "start")  # fmt: skip
        self.create_database(self.db)
        return self

    def create_database(self, name: str) -> str:
        """A new empty database `name` (a fresh instance's storage); returns its name."""
        import psycopg2

        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                con = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                       dbname="postgres")  # fmt: skip
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        con.close()
        return name

    def env(self, db: str | None = None) -> dict[str, str]:
        """The `DAGSTER_PG_*` variables of this server and database (the password included: environment only)."""
        values = ("127.0.0.1", str(self.port), self.user, self.password, db or self.db)
        return dict(zip(ENV_NAMES, values, strict=True))

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    """`-- COMMAND ...`: run COMMAND against a fresh local Postgres, then remove it."""
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m usersnap_channels_tests.postgres.server -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    with LocalPostgres() as server:
        print(f"Postgres {server.port} on 127.0.0.1, folder {server.folder}", file=sys.stderr)
        return subprocess.call(argv[1:], env={**os.environ, **server.env()})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
