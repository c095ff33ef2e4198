"""An OSRM-compatible routing server for tests: a stdlib HTTP server on loopback, in a thread.

`GET /route/v1/driving/{lon},{lat};{lon},{lat}` answers a drive of `factor` × the straight line at
`speed_kmh`, the way OSRM answers (`routes[0].distance` m, `.duration` s). `mode` makes it fail:
`down` answers 500, `slow` answers after `delay` seconds (past the client's timeout). A drive that
starts at a point of `detours` (rounded to 3 decimals) is that many times longer (a river in the way).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dispatch.core import jsonutil
from dispatch.core.geo import haversine_km

ROUTE = re.compile(r"^/route/v1/driving/(-?[\d.]+),(-?[\d.]+);(-?[\d.]+),(-?[\d.]+)\?overview=false$")


class RoutingStub:
    """The server, how it answers now, and the paths it was asked."""

    def __init__(self, factor: float = 1.5, speed_kmh: float = 30.0) -> None:
        self.factor, self.speed_kmh = factor, speed_kmh
        self.mode, self.delay = "ok", 3.0
        self.asked: list[str] = []
        self.detours: dict[tuple[float, float], float] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The status and body for a request path."""
        self.asked.append(path)
        if self.mode == "down":
            return 500, {"code": "Error"}
        if self.mode == "slow":
            time.sleep(self.delay)
        found = ROUTE.match(path)
        if found is None:
            return 400, {"code": "InvalidUrl"}
        lon1, lat1, lon2, lat2 = (float(g) for g in found.groups())
        km = haversine_km(lat1, lon1, lat2, lon2) * self.factor * self.detours.get((round(lat1, 3), round(lon1, 3)), 1)
        return 200, {"code": "Ok", "routes": [{"distance": km * 1000, "duration": km / self.speed_kmh * 3600}]}


def _handler(stub: RoutingStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = stub.answer(self.path)
            data = jsonutil.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def routing_stub() -> Iterator[RoutingStub]:
    """A running stub, stopped afterwards."""
    stub = RoutingStub()
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
