"""Shared pieces of the benchmarks: services started for the run, a server process, percentiles."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch import devservices  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def machine() -> str:
    """A one-line description of the machine the numbers come from."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def emit(scenario: str, **result: Any) -> dict[str, Any]:
    """Print one JSON line for a scenario and return it."""
    line = {"scenario": scenario, **result}
    print(json.dumps(line), flush=True)
    return line


@contextmanager
def services() -> Iterator[dict[str, str]]:
    """Redis and the MongoDB-wire server for one run (given ones via DISPATCH_* are used as they are)."""
    group = devservices.Group()
    root = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    try:
        mongo = os.environ.get("DISPATCH_MONGODB_URL") or group.add(
            devservices.start_mongo(devservices.free_port(), ":memory:", root / "log")).url
        redis = os.environ.get("DISPATCH_REDIS_URL") or group.add(
            devservices.start_redis(devservices.free_port(), root / "redis", root / "log")).url
        yield {"DISPATCH_MONGODB_URL": mongo, "DISPATCH_REDIS_URL": redis, "DISPATCH_MONGODB_DB":
               f"bench_{int(time.time())}", "DISPATCH_OUTBOX_DIR": str(root / "outbox"),
               "DISPATCH_MEDIA_DIR": str(root / "media"), "DISPATCH_LOG_LEVEL": "WARNING"}
    finally:
        group.stop()


@contextmanager
def server(env: dict[str, str], processes: int = 1, **settings: str) -> Iterator[str]:
    """`dispatch serve` as its own process; yields its base URL once /readyz answers 200."""
    port = devservices.free_port()
    full_env = {**os.environ, **env, **{f"DISPATCH_{k.upper()}": v for k, v in settings.items()}}
    argv = [str(devservices.VENV_BIN / "dispatch"), "serve", "--port", str(port), "--processes", str(processes)]
    process = subprocess.Popen(argv, env=full_env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        devservices.Service("server", process, "").stop()
