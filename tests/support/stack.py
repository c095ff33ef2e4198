"""A private set of real services for fault tests: redis-server, secantusd-py, `dispatch serve`
and Celery worker processes that a test may kill and restart without touching the session's own.

Also the clients the fault tests drive: a driver app (dispatch.tools.driverapp, the one
`dispatch simulate` drives) and a console that resumes with `since`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.websocket
from pymongo import MongoClient

from dispatch.core import jsonutil
from dispatch.settings import Settings
from dispatch.tools import devservices
from dispatch.tools.devservices import VENV_BIN, Service
from dispatch.tools.driverapp import CONNECT_ERRORS, DriverApp, connect
from tests.support.processes import env_of, unmeasured, wait_ready


def seq_lat(seq: int) -> float:
    """The latitude a test point carries, so a location frame tells which point it was."""
    return round(40 + seq / 10_000, 6)


def lat_seq(lat: float) -> int:
    """The seq a test point's latitude encodes."""
    return round((lat - 40) * 10_000)


@dataclass
class Server:
    """One `dispatch serve` process."""

    service: Service
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """kill -9 the whole process group: no shutdown code runs."""
        kill_group(self.service.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    """Private services on fixed ports (so a restarted one comes back where clients expect it)."""

    root: Path
    redis_port: int = field(default_factory=devservices.free_port)
    mongo_port: int = field(default_factory=devservices.free_port)
    redis: Service | None = None
    mongo: Service | None = None
    processes: list[Service] = field(default_factory=list)
    settings: Settings | None = None

    def start(self, **changes: Any) -> Stack:
        """Start redis-server (persistent) and secantusd-py (on disk); settings of a fresh database."""
        self.start_redis()
        self.start_mongo()
        redis = f"redis://127.0.0.1:{self.redis_port}"
        self.settings = Settings.from_mapping(
            dict(
                mongodb_url=self.mongo.url,  # type: ignore[union-attr]
                mongodb_db=f"faults_{uuid.uuid4().hex[:8]}",
                redis_url=redis + "/1",
                broker_url=redis + "/0",
                email_backend="file",
                sms_backend="file",
                outbox_dir=str(self.root / "outbox"),
                media_dir=str(self.root / "media"),
                jwt_secret="fault-secret-" + "x" * 32,
                bcrypt_rounds=4,
                public_url="http://dispatch.test",
                log_level="INFO",
                rate_limits="login_ip=10000/60,login_account=10000/60",
                **changes,
            )
        )
        return self

    # --- the stores -----------------------------------------------------------
    def start_redis(self) -> None:
        """redis-server with an append-only file, so its data (sessions, queue) survive a kill."""
        self.redis = devservices.start_redis(self.redis_port, self.root / "redis", self.root / "log", persist=True)

    def kill_redis(self) -> None:
        kill_group(self.redis.process)  # type: ignore[union-attr]

    def start_mongo(self) -> None:
        """secantusd-py storing on disk."""
        with unmeasured():
            self.mongo = devservices.start_mongo(self.mongo_port, str(self.root / "mongo"), self.root / "log")

    def kill_mongo(self) -> None:
        kill_group(self.mongo.process)  # type: ignore[union-attr]

    def sync_db(self) -> Any:
        """A synchronous client of the stack's database (close its `.client` when done)."""
        client: MongoClient = MongoClient(self.mongo.url, tz_aware=True)  # type: ignore[union-attr]
        return client[self.settings.mongodb_db]  # type: ignore[union-attr]

    # --- processes of ours ------------------------------------------------------
    def serve(self, name: str = "server", processes: int = 1, **env: str) -> Server:
        """A `dispatch serve` process (tree) on a free port, ready to answer."""
        port = devservices.free_port()
        log_path = self.root / "log" / f"{name}-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                [str(VENV_BIN / "dispatch"), "serve", "--port", str(port), "--processes", str(processes)],
                env={**env_of(self.settings), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, process, f"http://127.0.0.1:{port}", log_path)
        self.processes.append(service)
        wait_ready(port)
        return Server(service, port, log_path)

    def worker(self, **env: str) -> Service:
        """A Celery worker process on the stack's broker."""
        service = devservices.start_worker({**env_of(self.settings), **env}, self.root / "log", concurrency=2)
        self.processes.append(service)
        return service

    def stop(self) -> None:
        """Stop everything this stack started."""
        for service in reversed(self.processes):
            service.stop(5)
            kill_group(service.process)  # children a dead parent left behind, if any
        for service in (self.mongo, self.redis):
            if service is not None:
                service.stop(5)


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


async def in_thread(function: Any, *args: Any) -> Any:
    """Run a blocking start/stop off the test's loop, so clients keep streaming meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


class Driver(DriverApp):
    """A driver app with a fixed token whose points tell their seq by their latitude (`seq_lat`)."""

    def __init__(self, urls: list[str], token: str, interval: float = 0.05) -> None:
        super().__init__(urls, interval)
        self._token = token

    async def token(self) -> str:
        return self._token

    def fix(self, seq: int) -> dict[str, float]:
        return {"lat": seq_lat(seq), "lon": 10.0, "speed": 10.0, "heading": 90.0}

    async def finish(self, within: float = 30) -> bool:
        """Stop sending new points, wait until every sent point is acked, then disconnect."""
        acked_all = await super().finish(within)
        assert acked_all, f"{len(self.unacked)} points never acked (errors: {self.errors[-3:]})"
        return acked_all


class Console:
    """A manager console following one channel; after a lost connection it subscribes again with `since`."""

    def __init__(self, urls: list[str], token: str, channel: str) -> None:
        self.urls, self.token, self.channel = urls, token, channel
        self.away = asyncio.Event()  # set: reconnect at once; clear: stay away until it is set
        self.away.set()
        self.frames: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.conn: tornado.websocket.WebSocketClientConnection | None = None
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.offset: str | None = None
        self.subscribed = asyncio.Event()
        self.reconnects = 0
        self.done = False
        self._server = 0
        self._task: asyncio.Task | None = None

    def start(self) -> Console:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self.done:
            with contextlib.suppress(CONNECT_ERRORS):
                await self._session(self.urls[self._server % len(self.urls)])
            if self.done:
                return
            self.reconnects += 1
            self._server += 1
            await asyncio.sleep(0.2)
            await self.away.wait()

    async def _session(self, base: str) -> None:
        conn = self.conn = await connect(base + "/ws/console", self.token)
        try:
            subscribe: dict[str, Any] = {"type": "subscribe", "channel": self.channel}
            if self.offset is not None:
                subscribe["since"] = self.offset
            await conn.write_message(jsonutil.dumps(subscribe))
            while not self.done:
                message = await conn.read_message()
                if message is None:
                    raise OSError("connection lost")
                frame = jsonutil.loads(message)
                if frame.get("type") == "subscribed":
                    self.subscribed.set()
                elif frame.get("type") == "error":
                    self.errors.append(frame)
                elif frame.get("type") == "location":
                    self.frames.append(frame)
                    self.arrivals.append((time.monotonic(), frame))
                    self.offset = frame["offset"]
        finally:
            self.subscribed.clear()
            conn.close()

    def seqs(self, vehicle_id: str) -> set[int]:
        """The points (by seq) of one vehicle this console was shown."""
        return {lat_seq(frame["lat"]) for frame in self.frames if frame["vehicle_id"] == vehicle_id}

    async def stop(self) -> None:
        self.done = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
