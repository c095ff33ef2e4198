"""A real webhook receiver for tests: a stdlib HTTP server on loopback, in a thread, whose endpoints
answer as told (200, a few 500s first, hang, a 10 MB answer) and record every request they get."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import select
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dispatch.core import jsonutil

HUGE = 10 * 1024 * 1024


@dataclass
class Received:
    """One request an endpoint got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    closed_at: float | None = None  # for a hanging endpoint: when the sender gave up and closed

    @property
    def json(self) -> Any:
        return jsonutil.loads(self.body)


@dataclass
class Endpoint:
    """How one path answers: `fail_first` 500s, then `status`; or it hangs, or answers HUGE bytes."""

    status: int = 200
    fail_first: int = 0
    hang: bool = False
    huge: bool = False
    got: list[Received] = field(default_factory=list)


class Receiver:
    """The server and its endpoints, by path."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, **behaviour: Any) -> str:
        """A new endpoint's URL."""
        self.endpoints[path] = Endpoint(**behaviour)
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def got(self, path: str) -> list[Received]:
        return list(self.endpoints[path].got)

    async def wait(self, path: str, count: int, timeout: float = 30) -> list[Received]:
        """The requests of an endpoint once it has at least `count` of them."""
        deadline = time.monotonic() + timeout
        while len(self.endpoints[path].got) < count:
            assert time.monotonic() < deadline, f"{path} got {len(self.endpoints[path].got)} of {count} requests"
            await asyncio.sleep(0.05)
        return self.got(path)

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A running receiver, stopped afterwards."""
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _handler(receiver: Receiver) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            endpoint = receiver.endpoints.get(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = Received(self.path, dict(self.headers.items()), body, time.monotonic())
            if endpoint is None:
                self._answer(404, b"{}")
                return
            endpoint.got.append(got)
            if endpoint.hang:
                got.closed_at = self._until_closed()
            elif endpoint.huge:
                self._answer_huge()
            elif len(endpoint.got) <= endpoint.fail_first:
                self._answer(500, b'{"error": "not now"}')
            else:
                self._answer(endpoint.status, b"{}")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _until_closed(self) -> float | None:
            """Say nothing until the sender closes the connection (or the receiver stops)."""
            while not receiver.stopping.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable and not self.connection.recv(1, 2):  # MSG_PEEK: b"" once the peer closed
                    return time.monotonic()
            return None

        def _answer_huge(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", str(HUGE))
            self.end_headers()
            chunk = b"x" * 65536
            with contextlib.suppress(OSError):
                for _ in range(HUGE // len(chunk)):
                    self.wfile.write(chunk)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


def verify(secret: str, received: Received, tolerance: float = 300) -> bool:
    """What a receiver does: recompute the signature over the raw body, compare in constant time, check `t`."""
    parts = dict(item.split("=", 1) for item in received.headers["X-Dispatch-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < tolerance
