"""Local services for development and tests: redis-server, the embedded MongoDB-wire server
(SecantusDB's `secantusd-py`) and a Celery worker, each a real child process.

`python -m dispatch.tools.devservices run` (what `make run` calls) starts whichever of them is
missing, then the server, and stops its children on Ctrl-C or SIGTERM. The test suite
uses the same functions to start private instances on free ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


class ServiceError(RuntimeError):
    """A service did not start."""


@dataclass
class Service:
    """A child process we started, with where it listens."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path | None = None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the process, then kill what is left of its group (all of it, if it will not stop)."""
        if self.process.poll() is not None:
            return
        # The process alone: it stops its own children (Celery's warm shutdown lets the pool finish
        # and exit cleanly, the server forwards the signal to its forks); a signal to the whole group
        # would kill Celery's pool children at once, their running tasks with them.
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        _signal_group(self.process, signal.SIGKILL)  # stragglers, or everything after the timeout
        self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the service logged, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Group:
    """Services started together and stopped in reverse order."""

    services: list[Service] = field(default_factory=list)

    def add(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def stop(self) -> None:
        """Stop every service, newest first."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _spawn(
    name: str, argv: list[str], log_dir: Path, env: Mapping[str, str] | None = None, quiet: bool = True
) -> tuple[subprocess.Popen, Path]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    out = open(log_path, "ab") if quiet else None  # noqa: SIM115 - the child inherits it; closed once spawned
    process = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT if quiet else None,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    if out is not None:
        out.close()
    return process, log_path


def _wait_port(service: Service, host: str, port: int, timeout: float) -> Service:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceError(f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}")
        if port_open(host, port):
            return service
        time.sleep(0.05)
    service.stop()
    raise ServiceError(f"{service.name} did not listen on {host}:{port} within {timeout}s:\n{service.log_tail()}")


def start_redis(port: int, data_dir: Path, log_dir: Path, *, persist: bool = False) -> Service:
    """A real redis-server on 127.0.0.1:port (Debian's package)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis-server is not installed (Debian package `redis-server`)")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir.resolve()),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--databases",
        "32",
    ]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--save", "", "--appendonly", "no"]
    process, log_path = _spawn(f"redis-{port}", argv, log_dir)
    service = Service("redis-server", process, f"redis://127.0.0.1:{port}", log_path)
    return _wait_port(service, "127.0.0.1", port, 20)


def start_redis_node(
    port: int, data_dir: Path, log_dir: Path, *, bus_port: int = 0, node_timeout_ms: int = 2000
) -> Service:
    """One redis-server of a Redis Cluster on 127.0.0.1:port; its cluster config stays in `data_dir`,
    so a node stopped and started again on the same port rejoins with its slots."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis-server is not installed (Debian package `redis-server`)")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve())]
    argv += ["--daemonize", "no", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes"]
    argv += ["--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", str(node_timeout_ms)]
    # The cluster bus on a free port of its own (by default port + 10000, which may be taken or past 65535).
    argv += ["--cluster-port", str(bus_port or free_port())]
    process, log_path = _spawn(f"redis-node-{port}", argv, log_dir)
    service = Service("redis-server (cluster node)", process, f"redis://127.0.0.1:{port}", log_path)
    return _wait_port(service, "127.0.0.1", port, 20)


def start_redis_cluster(ports: list[int], data_dir: Path, log_dir: Path, group: Group) -> str:
    """A Redis Cluster of masters only on loopback (one node per port), added to `group`; the URL of its
    first node once every slot is served (`cluster_state:ok`)."""
    for port in ports:
        group.add(start_redis_node(port, data_dir / str(port), log_dir))
    cli = shutil.which("redis-cli")
    if cli is None:
        raise ServiceError("redis-cli is not installed (Debian package `redis-tools`)")
    nodes = [f"127.0.0.1:{port}" for port in ports]
    created = subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if created.returncode != 0:
        raise ServiceError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
    wait_cluster_ok(ports)
    return f"redis://127.0.0.1:{ports[0]}"


def respawn(service: Service, port: int) -> Service:
    """Start a stopped service again with the same command line (same port, same data folder)."""
    log_dir = service.log_path.parent if service.log_path is not None else Path(".")
    name = service.log_path.stem if service.log_path is not None else service.name
    process, log_path = _spawn(name, [str(arg) for arg in service.process.args], log_dir)  # type: ignore[union-attr]
    return _wait_port(Service(service.name, process, service.url, log_path), "127.0.0.1", port, 20)


def wait_cluster_ok(ports: list[int], timeout: float = 30) -> None:
    """Block until every node says `cluster_state:ok` (all slots served, the nodes agree)."""
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for port in ports:
            try:
                with redis.Redis(port=port, socket_connect_timeout=1) as client:
                    states.append(client.cluster("INFO").get("cluster_state"))
            except redis.RedisError:
                states.append("down")
        if states == ["ok"] * len(ports):
            return
        time.sleep(0.1)
    raise ServiceError(f"the Redis Cluster on {ports} is not ok within {timeout}s")


def start_mongo(port: int, storage: str, log_dir: Path) -> Service:
    """The embedded MongoDB-wire server (SecantusDB `secantusd-py`) on 127.0.0.1:port."""
    binary = VENV_BIN / "secantusd-py"
    if not binary.exists():
        found = shutil.which("secantusd-py")
        if found is None:
            raise ServiceError("secantusd-py is not installed (PyPI package SecantusDB)")
        binary = Path(found)
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--log-level",
        "WARNING",
    ]
    process, log_path = _spawn(f"secantusd-{port}", argv, log_dir)
    service = Service("secantusd-py", process, f"mongodb://127.0.0.1:{port}/?directConnection=true", log_path)
    return _wait_port(service, "127.0.0.1", port, 60)


def start_worker(env: Mapping[str, str], log_dir: Path, *, quiet: bool = True, concurrency: int = 2) -> Service:
    """One Celery worker process (`dispatch worker`) with the given environment."""
    argv = [str(VENV_BIN / "dispatch"), "worker", f"--concurrency={concurrency}"]
    process, log_path = _spawn("celery-worker", argv, log_dir, env, quiet=quiet)
    return Service("celery-worker", process, "", log_path if quiet else None)


def wait_worker_ready(broker_url: str, timeout: float = 60) -> None:
    """Block until a Celery worker answers a ping on the broker."""
    from celery import Celery

    app = Celery(broker=broker_url, set_as_current=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return
        raise ServiceError(f"no Celery worker answered on {broker_url} within {timeout}s")
    finally:
        app.close()


def run(root: Path = Path(".")) -> int:
    """`make run`: start what is missing, then serve on the configured port until a signal."""
    var = root / "var"
    group = Group()
    env = dict(os.environ)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (in the background)
    try:
        if "DISPATCH_REDIS_URL" not in env:
            if port_open("127.0.0.1", 6379):
                print("dispatch: using the Redis already on 127.0.0.1:6379")
            else:
                group.add(start_redis(6379, var / "redis", var / "log", persist=True))
                print("dispatch: started redis-server on 127.0.0.1:6379 (data in var/redis)")
            env["DISPATCH_REDIS_URL"] = "redis://127.0.0.1:6379/0"
        if "DISPATCH_MONGODB_URL" not in env:
            if port_open("127.0.0.1", 27017):
                print("dispatch: using the MongoDB-wire server already on 127.0.0.1:27017")
            else:
                group.add(start_mongo(27017, str(var / "secantus"), var / "log"))
                print("dispatch: started secantusd-py on 127.0.0.1:27017 (data in var/secantus)")
            env["DISPATCH_MONGODB_URL"] = "mongodb://127.0.0.1:27017/?directConnection=true"
        env.setdefault("DISPATCH_MEDIA_DIR", str((var / "media").resolve()))
        env.setdefault("DISPATCH_OUTBOX_DIR", str((var / "outbox").resolve()))
        group.add(start_worker(env, var / "log", quiet=False))
        print("dispatch: started one Celery worker")
        server = group.add(
            Service(
                "server", subprocess.Popen([str(VENV_BIN / "dispatch"), "serve"], env=env, start_new_session=True), ""
            )
        )
        return server.process.wait()
    except KeyboardInterrupt:
        return 0 if stopping else 130
    except ServiceError as exc:
        print(f"dispatch: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        group.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        print("usage: python -m dispatch.tools.devservices run", file=sys.stderr)
        sys.exit(2)
    sys.exit(run())
