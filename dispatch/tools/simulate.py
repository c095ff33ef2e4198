"""`dispatch simulate`: virtual drivers streaming GPS along plausible routes over the real protocol.

Each driver logs in through the REST API, opens `/ws/driver`, starts where its truck was
last seen (or near the city centre) and drives from waypoint to waypoint at town speeds,
sending `location` frames at the given rate. Unacked points are kept and resent after a
reconnect, as a driver app does. Used for demos and as a load generator.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import tornado.httpclient
import tornado.websocket

from dispatch.core import jsonutil
from dispatch.core.geo import EARTH_RADIUS_KM, haversine_km
from dispatch.core.timeutil import isoformat, utcnow

CENTER = (55.75, 37.62)
RESEND_BATCH = 500


@dataclass
class Stats:
    """Counters shared by all virtual drivers."""

    sent: int = 0
    acked: int = 0
    reconnects: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


def step(lat: float, lon: float, heading: float, km: float) -> tuple[float, float]:
    """The point `km` away from (lat, lon) along `heading` degrees (spherical earth)."""
    d, h = km / EARTH_RADIUS_KM, math.radians(heading)
    la1, lo1 = math.radians(lat), math.radians(lon)
    la2 = math.asin(math.sin(la1) * math.cos(d) + math.cos(la1) * math.sin(d) * math.cos(h))
    lo2 = lo1 + math.atan2(math.sin(h) * math.sin(d) * math.cos(la1), math.cos(d) - math.sin(la1) * math.sin(la2))
    return math.degrees(la2), (math.degrees(lo2) + 540) % 360 - 180


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from one point to another, degrees 0–360."""
    la1, la2, dlo = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dlo) * math.cos(la2)
    x = math.cos(la1) * math.sin(la2) - math.sin(la1) * math.cos(la2) * math.cos(dlo)
    return (math.degrees(math.atan2(y, x)) + 360) % 360


class Route:
    """Waypoints around a home point, driven at a varying town speed."""

    def __init__(self, lat: float, lon: float, rng: random.Random) -> None:
        self.lat, self.lon, self.rng = lat, lon, rng
        self.home = (lat, lon)
        self.target = self._waypoint()
        self.speed_kmh = rng.uniform(25, 60)

    def _waypoint(self) -> tuple[float, float]:
        return step(*self.home, self.rng.uniform(0, 360), self.rng.uniform(0.5, 5.0))

    def advance(self, seconds: float) -> dict[str, float]:
        """Move along the route; the new position with speed (km/h) and heading."""
        heading = bearing(self.lat, self.lon, *self.target)
        km = self.speed_kmh * seconds / 3600
        if haversine_km(self.lat, self.lon, *self.target) <= km:
            self.lat, self.lon = self.target
            self.target = self._waypoint()
            self.speed_kmh = min(70.0, max(10.0, self.speed_kmh + self.rng.uniform(-10, 10)))
        else:
            self.lat, self.lon = step(self.lat, self.lon, heading, km)
        return {"lat": round(self.lat, 6), "lon": round(self.lon, 6), "speed": round(self.speed_kmh, 1),
                "heading": round(heading, 1)}


class VirtualDriver:
    """One driver: logs in, streams, resends what was not acked after a reconnect."""

    def __init__(self, base_url: str, username: str, password: str, rate: float, stats: Stats,
                 rng: random.Random) -> None:
        self.base_url, self.username, self.password = base_url.rstrip("/"), username, password
        self.interval = 1.0 / rate
        self.stats = stats
        self.rng = rng
        self.unacked: dict[int, dict[str, Any]] = {}
        self.seq = int(time.time() * 1000)  # monotonic across runs, as a phone app keeps it
        self.http = tornado.httpclient.AsyncHTTPClient()
        self.token = ""

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop` is set, reconnecting after drops."""
        route = await self._start()
        while not stop.is_set():
            try:
                await self._session(route, stop)
            except (OSError, tornado.websocket.WebSocketClosedError, tornado.httpclient.HTTPClientError,
                    asyncio.TimeoutError):
                self.stats.reconnects += 1
                await asyncio.sleep(min(5.0, 0.5 + self.rng.random()))

    async def _login(self) -> None:
        answer = await self._post("/api/v1/auth/login", {"login": self.username, "password": self.password})
        self.token = answer["access_token"]

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = tornado.httpclient.HTTPRequest(self.base_url + path, method="POST", body=jsonutil.dumps(body),
                                                 headers={"Content-Type": "application/json"})
        return jsonutil.loads((await self.http.fetch(request)).body)

    async def _start(self) -> Route:
        await self._login()
        request = tornado.httpclient.HTTPRequest(self.base_url + "/api/v1/vehicles",
                                                 headers={"Authorization": f"Bearer {self.token}"})
        items = jsonutil.loads((await self.http.fetch(request)).body).get("items", [])
        where = items[0].get("location") if items else None
        lat, lon = (where["lat"], where["lon"]) if where else step(*CENTER, self.rng.uniform(0, 360),
                                                                   self.rng.uniform(0, 4))
        return Route(lat, lon, self.rng)

    async def _session(self, route: Route, stop: asyncio.Event) -> None:
        await self._login()  # a fresh access token for every connection
        url = self.base_url.replace("http", "ws", 1) + "/ws/driver"
        request = tornado.httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {self.token}"})
        conn = await tornado.websocket.websocket_connect(request)
        reader = asyncio.create_task(self._read(conn))
        try:
            await self._resend(conn)
            while not stop.is_set() and not reader.done():
                point = {"seq": self._next_seq(), "ts": isoformat(utcnow()), "accuracy": 5.0,
                         **route.advance(self.interval)}
                self.unacked[point["seq"]] = point
                await conn.write_message(jsonutil.dumps({"type": "location", **point}).decode())
                self.stats.sent += 1
                await asyncio.sleep(self.interval)
        finally:
            conn.close()
            reader.cancel()
        if not stop.is_set():
            raise OSError("connection lost")

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def _resend(self, conn: Any) -> None:
        pending = [self.unacked[s] for s in sorted(self.unacked)]
        for start in range(0, len(pending), RESEND_BATCH):
            await conn.write_message(jsonutil.dumps({"type": "locations",
                                                     "points": pending[start:start + RESEND_BATCH]}).decode())

    async def _read(self, conn: Any) -> None:
        while True:
            message = await conn.read_message()
            if message is None:
                return
            frame = jsonutil.loads(message)
            if frame.get("type") == "ack":
                done = [s for s in self.unacked if s <= frame["seq"]]
                for seq in done:
                    del self.unacked[seq]
                self.stats.acked += len(done)
            elif frame.get("type") == "error":
                self.stats.errors += 1


async def simulate(base_url: str, usernames: list[str], password: str, rate: float, duration: float,
                   out: TextIO = sys.stdout, report_every: float = 5.0, seed: int | None = None) -> Stats:
    """Run the virtual drivers; print a progress line every few seconds; return the counters."""
    stats = Stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    rng = random.Random(seed)
    drivers = [VirtualDriver(base_url, name, password, rate, stats, random.Random(rng.random())) for name in usernames]
    tasks = [asyncio.create_task(d.run(stop)) for d in drivers]
    deadline = time.monotonic() + duration if duration > 0 else math.inf
    while not stop.is_set() and time.monotonic() < deadline and not all(t.done() for t in tasks):
        await asyncio.wait([asyncio.create_task(stop.wait())], timeout=min(report_every, deadline - time.monotonic()))
        _report(stats, len(drivers), out)
    stop.set()
    await asyncio.sleep(min(1.0, 2 * max(d.interval for d in drivers)))  # last acks
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            out.write(f"driver failed: {type(result).__name__}: {result}\n")
    _report(stats, len(drivers), out)
    return stats


def _report(stats: Stats, drivers: int, out: TextIO) -> None:
    elapsed = max(time.monotonic() - stats.started, 1e-9)
    out.write(f"t={elapsed:5.1f}s drivers={drivers} sent={stats.sent} acked={stats.acked} "
              f"rate={stats.sent / elapsed:.1f}/s reconnects={stats.reconnects} errors={stats.errors}\n")
    out.flush()
