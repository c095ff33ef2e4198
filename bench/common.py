"""Shared pieces of the benchmarks: services started for the run, a server process, percentiles."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "bench" / "logs"
sys.path.insert(0, str(ROOT))

from dispatch.tools import devservices


class Env(dict):
    """The DISPATCH_* environment of a run's services, with the pids of the ones started here."""

    pids: dict[str, int]


@dataclass
class Server:
    """A server under test: where it answers and its process."""

    url: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The server process and its forked children."""
        return [self.pid, *children(self.pid)]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def machine() -> str:
    """A one-line description of the machine the numbers come from."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def emit(scenario: str, **result: Any) -> dict[str, Any]:
    """Print one JSON line for a scenario and return it."""
    line = {"scenario": scenario, **result}
    print(json.dumps(line), flush=True)
    return line


def raise_fd_limit() -> None:
    """Soft open-files limit up to the hard one (thousands of sockets); also used as a preexec_fn."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def children(pid: int) -> list[int]:
    """Direct child processes of a process (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def services(cluster: bool = False) -> Iterator[Env]:
    """Redis and the MongoDB-wire server for one run (given ones via DISPATCH_* are used as they are).

    With `cluster`, the live state goes to a 3-master Redis Cluster started here (the single Redis
    stays the Celery broker)."""
    group = devservices.Group()
    root = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    try:
        mongo = (
            os.environ.get("DISPATCH_MONGODB_URL")
            or group.add(devservices.start_mongo(devservices.free_port(), ":memory:", root / "log")).url
        )
        redis = (
            os.environ.get("DISPATCH_REDIS_URL")
            or group.add(devservices.start_redis(devservices.free_port(), root / "redis", root / "log")).url
        )
        env = Env(
            {
                "DISPATCH_MONGODB_URL": mongo,
                "DISPATCH_REDIS_URL": redis,
                "DISPATCH_MONGODB_DB": f"bench_{int(time.time() * 1000)}",
                "DISPATCH_OUTBOX_DIR": str(root / "outbox"),
                "DISPATCH_MEDIA_DIR": str(root / "media"),
                "DISPATCH_LOG_LEVEL": "WARNING",
            }
        )
        env.pids = {"mongo" if "secantus" in s.name else "redis": s.process.pid for s in group.services}
        if cluster:
            ports = [devservices.free_port() for _ in range(3)]
            env["DISPATCH_BROKER_URL"] = redis
            env["DISPATCH_REDIS_URL"] = devservices.start_redis_cluster(ports, root / "cluster", root / "log", group)
            env["DISPATCH_REDIS_CLUSTER"] = "true"
            env.pids.update({f"redis-node-{n}": s.process.pid for n, s in enumerate(group.services[-3:])})
        yield env
    finally:
        group.stop()


def wait_ready(url: str, timeout: float = 60) -> None:
    """Block until GET url answers 200 (RuntimeError after the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextmanager
def server_process(env: dict[str, str], processes: int = 1, **settings: str) -> Iterator[Server]:
    """`dispatch serve` as its own process (open-files limit raised); yields it once /readyz answers 200."""
    port = devservices.free_port()
    full_env = {**os.environ, **env, **{f"DISPATCH_{k.upper()}": v for k, v in settings.items()}}
    argv = [sys.executable, "-m", "dispatch.cli", "serve", "--port", str(port), "--processes", str(processes)]
    other = os.environ.get("BENCH_SERVER_ROOT")  # another checkout's code, to compare before/after in one sitting
    if other:
        full_env["PYTHONPATH"] = other
    log_path = LOG_DIR / f"server-{port}.log"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the server's warnings would drown the results on the terminal
        process = subprocess.Popen(
            argv,
            env=full_env,
            cwd=other or ROOT,
            start_new_session=True,
            preexec_fn=raise_fd_limit,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base + "/readyz")
        except RuntimeError:
            raise RuntimeError(f"the server did not become ready; its log: {log_path}") from None
        if processes > 1:  # every child serves /readyz only once its stores are open
            deadline = time.monotonic() + 30
            while len(children(process.pid)) < processes and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
        yield Server(base, process)
    finally:
        devservices.Service("server", process, "").stop()


@contextmanager
def server(env: dict[str, str], processes: int = 1, **settings: str) -> Iterator[str]:
    """`dispatch serve` as its own process; yields its base URL once /readyz answers 200."""
    with server_process(env, processes, **settings) as running:
        yield running.url


def loadgen(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Run the load generator (bench/loadgen.py) as its own process on a spec; yield its JSON lines."""
    from dispatch.core import jsonutil

    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as handle:
        handle.write(jsonutil.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", handle.name], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            yield json.loads(line)
        if process.wait(spec.get("timeout", 600) + 30) != 0:
            raise RuntimeError(f"the load generator failed ({process.returncode})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        Path(handle.name).unlink(missing_ok=True)


@contextmanager
def relay_process(env: dict[str, str] | None = None) -> Iterator[Server]:
    """The Tornado relay (bench/relay.py) as its own process: bare, or durable when given the run's `env`
    (it then stores every point in that MongoDB before acking it)."""
    port = devservices.free_port()
    argv = [sys.executable, "-m", "bench.relay", "--port", str(port)]
    if env is not None:
        argv += ["--mongo", env["DISPATCH_MONGODB_URL"], "--db", env["DISPATCH_MONGODB_DB"]]
    process = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not devservices.port_open("127.0.0.1", port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the relay did not start")
            time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}", process)
    finally:
        devservices.Service("relay", process, "").stop()
