"""The ceiling references: a bare Tornado relay of the driver/console protocol, and the same relay made durable.

Bare: no auth, no Redis, no storage: a driver's `location` frame is acked at once and its
location frame written to every console subscribed to the fleet channel.

Durable (`--mongo URL`): the same, except that a point is acked only once it is stored. Every
point goes into a list; one writer task takes the whole list, stores it with one journaled
`insert_many` into the same database the server uses (the same document fields, `_id`
`<driver>:<seq>`, the same `(vehicle_id, ts)` index), then acks each socket's highest seq. Fan-out
does not wait for the write. That is the honest ceiling of a server that stores every point before
acking it: what the real server does beyond it (auth, validation, Redis, live positions) costs
the difference between the two in the same run.

The token a client sends stands for its driver / vehicle id (24 hex digits for the durable relay).

Run: .venv/bin/python -m bench.relay --port 9999 [--mongo mongodb://127.0.0.1:27017 --db bench]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
from datetime import datetime
from typing import Any

import orjson
import tornado.web
import tornado.websocket
from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

DUPLICATE_KEY = 11000


class History:
    """The durable relay's writer: whatever arrived since the last write, in one journaled `insert_many`."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self.collection = collection
        self.pending: list[tuple[dict[str, Any], RelaySocket]] = []
        self.wake = asyncio.Event()

    def add(self, doc: dict[str, Any], socket: RelaySocket) -> None:
        self.pending.append((doc, socket))
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            try:
                await self.collection.insert_many([doc for doc, _ in batch], ordered=False)
            except PyMongoError as exc:  # a resent point is stored once; anything else: keep the batch, retry
                duplicates = isinstance(exc, BulkWriteError) and all(
                    e.get("code") == DUPLICATE_KEY for e in exc.details.get("writeErrors", [])
                )
                if not duplicates:
                    self.pending[:0] = batch
                    self.wake.set()
                    await asyncio.sleep(0.1)
                    continue
            highest: dict[RelaySocket, int] = {}
            for doc, socket in batch:
                highest[socket] = max(highest.get(socket, -1), doc["seq"])
            for socket, seq in highest.items():
                if socket.ws_connection is not None:
                    socket.write_message(orjson.dumps({"type": "ack", "seq": seq}))


class Relay:
    """Console sockets by channel, and the history writer of the durable relay (the whole state)."""

    def __init__(self, history: History | None = None) -> None:
        self.channels: dict[str, set[tornado.websocket.WebSocketHandler]] = {}
        self.history = history


class RelaySocket(tornado.websocket.WebSocketHandler):
    """Driver or console: location frames acked (once stored, when durable) and relayed; subscriptions followed."""

    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self.channels: set[str] = set()
        self.ident = ""
        self.object_id: ObjectId | None = None

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, *args: Any) -> None:
        self.set_nodelay(True)  # real-time frames: no Nagle delay waiting for the peer's ACK
        self.ident = self.request.headers.get("Authorization", "").partition(" ")[2] or "anonymous"
        if ObjectId.is_valid(self.ident):
            self.object_id = ObjectId(self.ident)
        self.write_message(orjson.dumps({"type": "ready", "user_id": self.ident}))

    def on_message(self, message: str | bytes) -> None:
        frame = orjson.loads(message)
        kind = frame.get("type")
        if kind == "location":
            history = self.relay.history
            if history is None:
                self.write_message(orjson.dumps({"type": "ack", "seq": frame["seq"]}))
            else:
                history.add(
                    {
                        "_id": f"{self.ident}:{frame['seq']}",
                        "driver_id": self.object_id,
                        "vehicle_id": self.object_id,
                        "order_id": None,
                        "seq": frame["seq"],
                        "lat": frame["lat"],
                        "lon": frame["lon"],
                        "ts": datetime.fromisoformat(frame["ts"]),
                        "speed": frame.get("speed"),
                        "heading": frame.get("heading"),
                        "accuracy": frame.get("accuracy"),
                    },
                    self,
                )
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


async def serve(port: int, mongo: str | None = None, db: str = "bench_relay") -> None:
    """Listen on 127.0.0.1:port until cancelled (storing every point in `mongo` first, when given)."""
    history = None
    if mongo:
        collection = AsyncMongoClient(mongo)[db]["gps_points"].with_options(
            write_concern=WriteConcern(w="majority", j=True)
        )
        await collection.create_index([("vehicle_id", ASCENDING), ("ts", ASCENDING)], name="vehicle_ts")
        history = History(collection)
    relay = Relay(history)
    app = tornado.web.Application(
        [(r"/ws/(?:driver|console)", RelaySocket, {"relay": relay})], websocket_max_message_size=64 * 1024
    )
    app.listen(port, "127.0.0.1")
    if history is None:
        await asyncio.Event().wait()
    else:
        await history.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongo", help="store every point here before acking it (the durable relay)")
    parser.add_argument("--db", default="bench_relay")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.mongo, args.db))


if __name__ == "__main__":
    main()
