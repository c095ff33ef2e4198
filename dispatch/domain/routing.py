"""Drive distances and durations: an OSRM-compatible routing server, or a straight-line estimate.

`GET {DISPATCH_ROUTING_URL}/route/v1/driving/{lon},{lat};{lon},{lat}?overview=false` answers
`routes[0].distance` (m) and `.duration` (s). Without a routing server, or when it fails or takes
longer than `TIMEOUT`, the estimate is the straight line × `DISPATCH_ROUTE_FACTOR` at
`DISPATCH_AVERAGE_SPEED_KMH`: never an error. Answers are cached per origin and destination
rounded to a ~100 m grid (a bounded LRU per process), so a truck streaming points every second
asks the server about once per 100 m, not once per point.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dispatch.core import jsonutil
from dispatch.core.geo import distance_km
from dispatch.settings import Settings

log = logging.getLogger("dispatch.routing")

TIMEOUT = 2.0  # seconds a routing answer may take before the estimate is used
CACHE_SIZE = 10_000
GRID = 3  # decimals of a degree the cache rounds to (0.001° ≈ 110 m of latitude)


@dataclass(frozen=True)
class Route:
    """A drive from one point to another: how far, how long, and whether a routing server said so."""

    distance_km: float
    seconds: float
    source: str  # `routing` or `estimate`


class Router:
    """The routing client of one process (an async HTTP client with a cache of recent answers)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.routing_url.rstrip("/")
        self.factor = settings.route_factor
        self.speed_kmh = settings.average_speed_kmh
        self._cache: OrderedDict[tuple[float, ...], Route] = OrderedDict()
        self._client: httpx.AsyncClient | None = None
        self._failing = False

    def estimate(self, origin: Mapping[str, float], destination: Mapping[str, float]) -> Route:
        """The straight-line estimate: distance × route factor at the average speed."""
        km = distance_km(origin, destination) * self.factor
        return Route(km, km / self.speed_kmh * 3600.0, "estimate")

    async def route(self, origin: Mapping[str, float], destination: Mapping[str, float]) -> Route:
        """The drive from origin to destination (routed when a server is configured and answers)."""
        if not self.url:
            return self.estimate(origin, destination)
        key = (*_cell(origin), *_cell(destination))
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        route = await self._ask(origin, destination)
        if route is None:
            return self.estimate(origin, destination)
        self._cache[key] = route
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return route

    async def _ask(self, origin: Mapping[str, float], destination: Mapping[str, float]) -> Route | None:
        """The routing server's answer, or None (logged once per outage) when it has none in time."""
        path = f"/route/v1/driving/{origin['lon']},{origin['lat']};{destination['lon']},{destination['lat']}"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        try:
            # httpx's timeout bounds each phase; wait_for bounds the whole answer
            answer = await asyncio.wait_for(self._client.get(self.url + path, params={"overview": "false"}), TIMEOUT)
            answer.raise_for_status()
            best = jsonutil.loads(answer.content)["routes"][0]
            route = Route(float(best["distance"]) / 1000.0, float(best["duration"]), "routing")
        except (TimeoutError, httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            if not self._failing:
                log.warning("routing server gave no route (%s); using straight-line estimates", type(exc).__name__)
            self._failing = True
            return None
        self._failing = False
        return route

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()


def _cell(point: Mapping[str, Any]) -> tuple[float, float]:
    return round(float(point["lat"]), GRID), round(float(point["lon"]), GRID)
