"""`dispatch simulate`: virtual drivers streaming GPS along plausible routes over the real protocol.

Each driver logs in through the REST API, opens `/ws/driver`, starts where its truck was
last seen (or near the city centre) and drives from waypoint to waypoint at town speeds,
sending `location` frames at the given rate. Unacked points are kept and resent after a
reconnect, as a driver app does. Used for demos and as a load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Self, TextIO

import tornado.httpclient

from dispatch.core import jsonutil
from dispatch.core.geo import EARTH_RADIUS_KM, haversine_km
from dispatch.tools.driverapp import DriverApp

CENTER = (55.75, 37.62)
FINISH_S = 5.0  # at the end, at most this long for the last acks


@dataclass
class Stats:
    """The virtual drivers' counters, added up."""

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
        return {
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "speed": round(self.speed_kmh, 1),
            "heading": round(heading, 1),
        }


class VirtualDriver(DriverApp):
    """One driver: logs in for every connection and drives a route from where its truck was last seen."""

    def __init__(self, base_url: str, username: str, password: str, rate: float, rng: random.Random) -> None:
        # seq is monotonic across runs, as a phone app keeps it
        super().__init__([base_url], 1.0 / rate, first_seq=int(time.time() * 1000))
        self.username, self.password, self.rng = username, password, rng
        self.http = tornado.httpclient.AsyncHTTPClient()
        self.route = Route(*CENTER, rng)

    async def begin(self) -> Self:
        """Log in, start where the truck was last seen (or near the city centre), and stream."""
        request = tornado.httpclient.HTTPRequest(
            self.urls[0] + "/api/v1/vehicles", headers={"Authorization": f"Bearer {await self.token()}"}
        )
        items = jsonutil.loads((await self.http.fetch(request)).body).get("items", [])
        where = items[0].get("location") if items else None
        lat, lon = (
            (where["lat"], where["lon"]) if where else step(*CENTER, self.rng.uniform(0, 360), self.rng.uniform(0, 4))
        )
        self.route = Route(lat, lon, self.rng)
        return self.start()

    async def token(self) -> str:
        """A fresh access token for every connection."""
        request = tornado.httpclient.HTTPRequest(
            self.urls[0] + "/api/v1/auth/login",
            method="POST",
            headers={"Content-Type": "application/json"},
            body=jsonutil.dumps({"login": self.username, "password": self.password}),
        )
        return str(jsonutil.loads((await self.http.fetch(request)).body)["access_token"])

    def fix(self, seq: int) -> dict[str, float]:
        """The next point of the route."""
        return self.route.advance(self.interval)

    def reconnect_delay(self) -> float:
        """A jittered pause, so drivers dropped together do not come back together."""
        return min(5.0, 0.5 + self.rng.random())


def stats_of(drivers: list[VirtualDriver], started: float) -> Stats:
    """The drivers' counters added up."""
    return Stats(
        sent=sum(len(d.sent) for d in drivers),
        acked=sum(d.acked_points for d in drivers),
        reconnects=sum(d.reconnects for d in drivers),
        errors=sum(len(d.errors) for d in drivers),
        started=started,
    )


async def simulate(
    base_url: str,
    usernames: list[str],
    password: str,
    rate: float,
    duration: float,
    out: TextIO = sys.stdout,
    report_every: float = 5.0,
    seed: int | None = None,
) -> Stats:
    """Run the virtual drivers; print a progress line every few seconds; return the counters."""
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    rng = random.Random(seed)
    drivers = [VirtualDriver(base_url, name, password, rate, random.Random(rng.random())) for name in usernames]
    begun = await asyncio.gather(*(d.begin() for d in drivers), return_exceptions=True)
    running = [d for d, result in zip(drivers, begun, strict=True) if isinstance(result, VirtualDriver)]
    deadline = time.monotonic() + duration if duration > 0 else math.inf
    while not stop.is_set() and time.monotonic() < deadline and running:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(report_every, deadline - time.monotonic()))
        _report(stats_of(drivers, started), len(drivers), out)
    finished = await asyncio.gather(*(d.finish(FINISH_S) for d in running), return_exceptions=True)
    for result in [*begun, *finished]:
        if isinstance(result, Exception):
            out.write(f"driver failed: {type(result).__name__}: {result}\n")
    stats = stats_of(drivers, started)
    _report(stats, len(drivers), out)
    return stats


def _report(stats: Stats, drivers: int, out: TextIO) -> None:
    elapsed = max(time.monotonic() - stats.started, 1e-9)
    out.write(
        f"t={elapsed:5.1f}s drivers={drivers} sent={stats.sent} acked={stats.acked} "
        f"rate={stats.sent / elapsed:.1f}/s reconnects={stats.reconnects} errors={stats.errors}\n"
    )
    out.flush()
