"""Real `dispatch serve` processes for tests: the environment of given settings, readiness, a server."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dispatch.tools import devservices
from dispatch.tools.devservices import VENV_BIN


def redis_db_url(base: str, db: int) -> str:
    """The same Redis server, another logical db."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


@contextmanager
def unmeasured() -> Iterator[None]:
    """Start processes that are not ours (the embedded MongoDB-wire server is Python too) without
    coverage's subprocess measurement, which would trace every query it serves for nothing."""
    saved = os.environ.pop("COVERAGE_PROCESS_CONFIG", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["COVERAGE_PROCESS_CONFIG"] = saved


def env_of(settings: Any) -> dict[str, str]:
    """The environment that gives a process these settings."""
    values = {
        f"DISPATCH_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in vars(settings).items()
    }
    return {**os.environ, **values}


def wait_ready(port: int, timeout: float = 30) -> dict[str, Any]:
    """Block until the server on `port` answers /readyz; its answer (AssertionError after the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server on {port} not ready in {timeout}s")


@contextmanager
def serving(settings: Any, log: Path, processes: int = 1) -> Iterator[str]:
    """A real `dispatch serve` process tree on a free port."""
    port = devservices.free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "dispatch"), "serve", "--port", str(port), "--processes", str(processes)],
            env=env_of(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = devservices.Service("server", process, "")
    try:
        wait_ready(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()
