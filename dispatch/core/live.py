"""Live vehicle positions in Redis: the one layout both the GPS ingest and the REST reads use.

- `geo:vehicles`           GEO set of every vehicle's last position (member: vehicle id)
- `geo:fleet:<org_id>`     GEO set of the organization's vehicles
- `live:positions`         hash: per vehicle id, its last position as a JSON object (lat, lon, ts in
                           ISO 8601, speed, heading, accuracy, driver_id; unknown ones left out)

A batch of positions is a few commands whatever its size: one GEOADD per GEO set, one HSET.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import redis.asyncio as aioredis

from dispatch.core import jsonutil

GEO_ALL = "geo:vehicles"
POSITIONS = "live:positions"
POSITION_FIELDS = ("lat", "lon", "ts", "speed", "heading", "accuracy", "driver_id")
GEO_MAX_LAT = 85.05112878  # Redis GEO (Web Mercator) refuses latitudes beyond this


def geo_org(org_id: Any) -> str:
    """The GEO key of one organization's fleet."""
    return f"geo:fleet:{org_id}"


def queue_positions(pipe: Any, latest: Iterable[tuple[str, str | None, dict[str, Any]]]) -> None:
    """Add the writes of (vehicle id, organization id, position) triples to a Redis pipeline, one GEOADD per
    GEO set and one HSET in all (the caller executes it once per batch)."""
    placed: dict[str, list[Any]] = {}
    polar: dict[str, list[str]] = {}
    stored: dict[str, bytes] = {}
    for vehicle_id, org_id, point in latest:
        member = str(vehicle_id)
        keys = (GEO_ALL, geo_org(org_id)) if org_id else (GEO_ALL,)
        for key in keys:
            if abs(point["lat"]) <= GEO_MAX_LAT:
                placed.setdefault(key, []).extend((point["lon"], point["lat"], member))
            else:  # Redis GEO cannot index a polar point: the truck leaves `nearby` rather than stay at its last spot
                polar.setdefault(key, []).append(member)
        stored[member] = jsonutil.dumps({k: point[k] for k in POSITION_FIELDS if point.get(k) is not None})
    for key, values in placed.items():
        pipe.geoadd(key, values)
    for key, members in polar.items():
        pipe.zrem(key, *members)
    if stored:
        pipe.hset(POSITIONS, mapping=stored)


def queue_position(pipe: Any, vehicle_id: str, org_id: str | None, point: dict[str, Any]) -> None:
    """Add the writes of one position to a Redis pipeline."""
    queue_positions(pipe, [(vehicle_id, org_id, point)])


def forget_vehicle(pipe: Any, vehicle_id: str, org_ids: Iterable[str]) -> None:
    """Add the removal of a vehicle's live position to a pipeline (vehicle deleted or moved)."""
    member = str(vehicle_id)
    pipe.zrem(GEO_ALL, member)
    for org_id in org_ids:
        pipe.zrem(geo_org(org_id), member)
    pipe.hdel(POSITIONS, member)


async def positions(redis: aioredis.Redis, vehicle_ids: list[Any]) -> dict[str, dict[str, Any] | None]:
    """Last known position of each vehicle (None when it never reported), in one round trip."""
    if not vehicle_ids:
        return {}
    rows = await redis.hmget(POSITIONS, [str(vid) for vid in vehicle_ids])
    return {str(vid): None if row is None else jsonutil.loads(row) for vid, row in zip(vehicle_ids, rows, strict=True)}


async def nearby(
    redis: aioredis.Redis, lat: float, lon: float, radius_km: float, count: int, key: str = GEO_ALL
) -> list[tuple[str, float]]:
    """(vehicle id, distance in km) within the radius, nearest first (Redis GEOSEARCH)."""
    found = await redis.geosearch(
        key, longitude=lon, latitude=lat, radius=radius_km, unit="km", sort="ASC", count=count, withdist=True
    )
    return [
        (member.decode() if isinstance(member, bytes) else member, float(distance))
        for member, distance in cast(list[tuple[bytes | str, float]], found)
    ]
