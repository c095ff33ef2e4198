"""The ceiling reference: a bare Tornado relay of the driver/console protocol.

No auth, no Redis, no storage: a driver's `location` frame is acked at once and its
location frame written to every console subscribed to the fleet channel. The token a
client sends stands for its driver / vehicle id. What the real server does costs the
difference between the two in the same run.

Run: .venv/bin/python -m bench.relay --port 9999
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
from typing import Any

import orjson
import tornado.web
import tornado.websocket


class Relay:
    """Console sockets by channel (the whole state of the relay)."""

    def __init__(self) -> None:
        self.channels: dict[str, set[tornado.websocket.WebSocketHandler]] = {}


class RelaySocket(tornado.websocket.WebSocketHandler):
    """Driver or console: location frames are acked and relayed, subscribe frames followed."""

    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self.channels: set[str] = set()
        self.ident = ""

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, *args: Any) -> None:
        self.set_nodelay(True)  # real-time frames: no Nagle delay waiting for the peer's ACK
        self.ident = self.request.headers.get("Authorization", "").partition(" ")[2] or "anonymous"
        self.write_message(orjson.dumps({"type": "ready", "user_id": self.ident}))

    def on_message(self, message: str | bytes) -> None:
        frame = orjson.loads(message)
        kind = frame.get("type")
        if kind == "location":
            self.write_message(orjson.dumps({"type": "ack", "seq": frame["seq"]}))
            channel = "fleet:bench"
            out = orjson.dumps(
                {
                    "type": "location",
                    "channel": channel,
                    "vehicle_id": self.ident,
                    "driver_id": self.ident,
                    "lat": frame["lat"],
                    "lon": frame["lon"],
                    "ts": frame["ts"],
                    "speed": frame.get("speed"),
                    "heading": frame.get("heading"),
                }
            )
            for console in self.relay.channels.get(channel, ()):
                console.write_message(out)
        elif kind == "subscribe":
            self.channels.add(frame["channel"])
            self.relay.channels.setdefault(frame["channel"], set()).add(self)
            self.write_message(orjson.dumps({"type": "subscribed", "channel": frame["channel"]}))

    def on_close(self) -> None:
        for channel in self.channels:
            self.relay.channels.get(channel, set()).discard(self)


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:port until cancelled."""
    relay = Relay()
    app = tornado.web.Application(
        [(r"/ws/(?:driver|console)", RelaySocket, {"relay": relay})], websocket_max_message_size=64 * 1024
    )
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
