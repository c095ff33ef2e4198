"""A driver app over the real protocol: numbered GPS points kept until acked, resent after every reconnect.

Points are made every `interval` whether the socket is up or not, as a phone buffers them; on a
new connection the app waits for `ready`, then sends every unacked point again (`locations` in
batches), then each new one. After a lost connection it tries the next server URL it knows, as an
app behind a load balancer ends up on another process. `dispatch simulate` drives these along
routes; the fault tests drive them through killed servers and stores. (The benchmarks keep their
own lean sockets, bench/wire.py, so that what they measure is the server and not this client.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Self

import tornado.httpclient
import tornado.iostream
import tornado.websocket

from dispatch.core import jsonutil
from dispatch.core.timeutil import isoformat, utcnow

CONNECT_ERRORS = (
    OSError,
    tornado.websocket.WebSocketClosedError,
    tornado.httpclient.HTTPClientError,
    tornado.iostream.StreamClosedError,
    TimeoutError,
)
RESEND_BATCH = 500
READY_TIMEOUT = 10.0


async def connect(url: str, token: str) -> tornado.websocket.WebSocketClientConnection:
    """A websocket (`http(s)://` or `ws(s)://` URL) with the token in the Authorization header."""
    if url.startswith("http"):
        url = "ws" + url[len("http") :]
    request = tornado.httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}, request_timeout=5)
    return await tornado.websocket.websocket_connect(request)


class DriverApp:
    """One driver's app; subclasses say where it is (`fix`) and how it signs in (`token`)."""

    def __init__(self, urls: list[str], interval: float, first_seq: int = 0) -> None:
        self.urls, self.interval = [url.rstrip("/") for url in urls], interval
        self.seq = first_seq
        self.streaming = True  # False: no new points (the unacked ones still go)
        self.done = False
        self.sent: set[int] = set()  # every point made, by seq
        self.unacked: dict[int, dict[str, Any]] = {}
        self.acks: list[tuple[float, int]] = []  # (monotonic time, seq) of each ack frame
        self.acked_points = 0
        self.errors: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []
        self.reconnects = 0
        self._server = 0
        self._fresh = asyncio.Event()  # a point was made: send it now
        self._settled = asyncio.Event()  # every point made so far is acked
        self._conn: tornado.websocket.WebSocketClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- what a subclass says -------------------------------------------------
    async def token(self) -> str:
        """The access token of the next connection."""
        raise NotImplementedError

    def fix(self, seq: int) -> dict[str, float]:
        """Where the driver is now: `lat`, `lon`, `speed`, `heading`."""
        raise NotImplementedError

    def reconnect_delay(self) -> float:
        """Seconds to wait before the next connection attempt."""
        return 0.2

    # --- use --------------------------------------------------------------------
    def start(self) -> Self:
        """Start making points and streaming them (on the running loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._produce())]
        return self

    def drop(self) -> None:
        """Lose the connection, as a phone going through a tunnel does (it reconnects by itself)."""
        if self._conn is not None:
            self._conn.close()

    @property
    def acked(self) -> int:
        """The highest seq acked so far (acks are cumulative)."""
        return max((seq for _, seq in self.acks), default=0)

    async def finish(self, within: float = 30) -> bool:
        """Stop making points, wait (up to `within` s) until every one is acked, disconnect; whether all were."""
        self.streaming = False
        if self.unacked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), within)
        await self.stop()
        return not self.unacked

    async def stop(self) -> None:
        """Disconnect now; a failure of the app's own loop (not a lost connection) is raised."""
        self.done = True
        self._fresh.set()
        self.drop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception):
                raise result

    # --- inside ---------------------------------------------------------------------
    async def _produce(self) -> None:
        """A GPS fix every interval, connected or not (the app buffers them until acked)."""
        while not self.done:
            if self.streaming:
                self._next()
            await asyncio.sleep(self.interval)

    def _next(self) -> None:
        self.seq += 1
        self.unacked[self.seq] = {"seq": self.seq, "ts": isoformat(utcnow()), "accuracy": 5.0, **self.fix(self.seq)}
        self.sent.add(self.seq)
        self._settled.clear()
        self._fresh.set()

    async def _run(self) -> None:
        while not self.done:
            with contextlib.suppress(*CONNECT_ERRORS):
                await self._session(self.urls[self._server % len(self.urls)])
            if self.done:
                return
            self.reconnects += 1
            self._server += 1
            await asyncio.sleep(self.reconnect_delay())

    async def _session(self, base: str) -> None:
        conn = self._conn = await connect(base + "/ws/driver", await self.token())
        reader: asyncio.Task[None] | None = None
        try:
            await self._ready(conn)
            reader = asyncio.get_running_loop().create_task(self._read(conn))
            sent_here = 0  # on a new connection every unacked point goes again
            while not self.done and not reader.done():
                self._fresh.clear()
                pending = [self.unacked[s] for s in sorted(self.unacked) if s > sent_here]
                for start in range(0, len(pending), RESEND_BATCH):
                    chunk = pending[start : start + RESEND_BATCH]
                    frame = (
                        {"type": "location", **chunk[0]} if len(chunk) == 1 else {"type": "locations", "points": chunk}
                    )
                    await conn.write_message(jsonutil.dumps(frame))
                    sent_here = chunk[-1]["seq"]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fresh.wait(), self.interval)
        finally:
            conn.close()
            if reader is not None:
                reader.cancel()
        if not self.done:
            self.close_codes.append(conn.close_code)
            raise OSError("connection lost")

    async def _ready(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        while True:
            message = await asyncio.wait_for(conn.read_message(), READY_TIMEOUT)
            if message is None:
                self.close_codes.append(conn.close_code)
                raise OSError("closed before ready")
            if jsonutil.loads(message).get("type") == "ready":
                return

    async def _read(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        while True:
            message = await conn.read_message()
            if message is None:
                return
            frame = jsonutil.loads(message)
            if frame.get("type") == "ack":
                done = [s for s in self.unacked if s <= frame["seq"]]
                for seq in done:
                    del self.unacked[seq]
                self.acked_points += len(done)
                if not self.unacked:
                    self._settled.set()
                self.acks.append((time.monotonic(), frame["seq"]))
            elif frame.get("type") == "error":
                self.errors.append(frame)
