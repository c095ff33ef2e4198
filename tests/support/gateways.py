"""Stand-ins for the outside world the worker delivers to: an SMS HTTP gateway and an SMTP sink."""

from __future__ import annotations

import http.server
from typing import Any

from aiosmtpd.handlers import Message

from dispatch.core import jsonutil


class Gateway(http.server.ThreadingHTTPServer):
    """An SMS gateway stand-in: answers every POST with `status` and keeps what it received."""

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), GatewayHandler)
        self.status = status
        self.received: list[tuple[str, str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/send"


class GatewayHandler(http.server.BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], jsonutil.loads(body)))
        answer = b'{"ok": true}' if self.server.status < 300 else b'{"error": "down"}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class Sink(Message):
    """Keeps every message received."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.received.append(message)
