"""Stand-ins for the outside world the worker delivers to: an SMS HTTP gateway and an SMTP server,
each running in the test process and keeping what it received (optionally slow, so that some
messages are in flight when a test kills the worker)."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from dispatch.core import jsonutil
from dispatch.tools import devservices


class Gateway(http.server.ThreadingHTTPServer):
    """An SMS gateway stand-in: answers every POST with `status` after `delay` s, keeps what it received."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), GatewayHandler)
        self.status, self.delay = status, delay
        self.received: list[tuple[str, str, Any]] = []  # (path, content type, JSON body)
        self.pending = 0  # requests received and not yet answered
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/send"

    @property
    def texts(self) -> list[str]:
        """The texts received, in order."""
        return [body["text"] for _, _, body in self.received]


class GatewayHandler(http.server.BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.pending += 1
        try:
            time.sleep(self.server.delay)
            self.server.received.append((self.path, self.headers["Content-Type"], jsonutil.loads(body)))
        finally:
            with self.server.lock:
                self.server.pending -= 1
        answer = b'{"ok": true}' if self.server.status < 300 else b'{"error": "down"}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class Sink(Message):
    """An SMTP server's handler that keeps every message received (after `delay` s each)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.received: list[Any] = []
        self.pending = 0  # messages being received (all in the SMTP server's one thread)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.pending += 1
        try:
            await asyncio.sleep(self.delay)
            return str(await super().handle_DATA(server, session, envelope))
        finally:
            self.pending -= 1

    def handle_message(self, message: Any) -> None:
        self.received.append(message)

    @property
    def subjects(self) -> list[str]:
        """The subjects received, in order."""
        return [str(message["Subject"]) for message in self.received]


@contextmanager
def gateway_running(status: int = 200, delay: float = 0.0) -> Iterator[Gateway]:
    """A gateway serving in a thread until the block ends."""
    gateway = Gateway(status, delay)
    thread = threading.Thread(target=gateway.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        gateway.shutdown()
        gateway.server_close()
        thread.join(5)


@contextmanager
def smtp_running(delay: float = 0.0) -> Iterator[tuple[Sink, int]]:
    """An SMTP server on a free port until the block ends: its sink and port."""
    sink, port = Sink(delay), devservices.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()
