"""The dev server in a process of its own, for the demo and the benchmarks: it then never competes with
the measured code for the GIL, and is driven through its `/_dev` admin endpoints."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevServerProcess:
    """`usersnap-channels dev-server` on a free port of 127.0.0.1, started and waited for; a context manager."""

    def __init__(
        self,
        *,
        days: int = 190,
        items_per_day: float = 6.0,
        seed: int = 42,
        env_file: Path | None = None,
        log: IO[str] | int = subprocess.DEVNULL,
        timeout_s: float = 30.0,
    ) -> None:
        self.port = free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        args = ["dev-server", "--port", str(self.port), "--seed", str(seed), "--days", str(days)]
        args += ["--items-per-day", str(items_per_day)]
        if env_file is not None:
            args += ["--env-file", str(env_file)]
        exe = Path(sys.executable).with_name("usersnap-channels")
        self.proc = subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dev server exited early (code {self.proc.returncode})")
            try:
                if requests.get(f"{self.root_url}/_dev/health", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the dev server did not start within {timeout_s:.0f} s")

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v0.1"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> DevServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
