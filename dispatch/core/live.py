"""Live vehicle positions in Redis: the one layout both the GPS ingest and the REST reads use.

- `geo:vehicles`           GEO set of every vehicle's last position (member: vehicle id)
- `geo:fleet:<org_id>`     GEO set of the organization's vehicles
- `pos:<vehicle_id>`       hash: lat, lon, ts (ISO 8601), speed, heading, accuracy, driver_id, seq
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import redis.asyncio as aioredis

GEO_ALL = "geo:vehicles"
POSITION_FIELDS = ("lat", "lon", "ts", "speed", "heading", "accuracy", "driver_id")
FLOAT_FIELDS = {"lat", "lon", "speed", "heading", "accuracy"}
GEO_MAX_LAT = 85.05112878  # Redis GEO (Web Mercator) refuses latitudes beyond this


def geo_org(org_id: Any) -> str:
    """The GEO key of one organization's fleet."""
    return f"geo:fleet:{org_id}"


def position_key(vehicle_id: Any) -> str:
    """The hash holding a vehicle's last position."""
    return f"pos:{vehicle_id}"


def queue_position(pipe: Any, vehicle_id: str, org_id: str | None, point: dict[str, Any]) -> None:
    """Add the writes of one position to a Redis pipeline (the caller executes it once per batch)."""
    member = str(vehicle_id)
    keys = [GEO_ALL, geo_org(org_id)] if org_id else [GEO_ALL]
    for key in keys:
        if abs(point["lat"]) <= GEO_MAX_LAT:
            pipe.geoadd(key, (point["lon"], point["lat"], member))
        else:  # Redis GEO cannot index a polar point: the truck leaves `nearby` rather than stay at its last spot
            pipe.zrem(key, member)
    pipe.hset(position_key(member), mapping={k: str(point[k]) for k in POSITION_FIELDS if point.get(k) is not None})


def forget_vehicle(pipe: Any, vehicle_id: str, org_ids: Iterable[str]) -> None:
    """Add the removal of a vehicle's live position to a pipeline (vehicle deleted or moved)."""
    member = str(vehicle_id)
    pipe.zrem(GEO_ALL, member)
    for org_id in org_ids:
        pipe.zrem(geo_org(org_id), member)
    pipe.delete(position_key(member))


async def positions(redis: aioredis.Redis, vehicle_ids: list[Any]) -> dict[str, dict[str, Any] | None]:
    """Last known position of each vehicle (None when it never reported), in one round trip."""
    if not vehicle_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for vehicle_id in vehicle_ids:
            pipe.hgetall(position_key(vehicle_id))
        rows = await pipe.execute()
    return {str(vid): _decode(row) for vid, row in zip(vehicle_ids, rows, strict=False)}


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


def _decode(row: dict[bytes, bytes]) -> dict[str, Any] | None:
    if not row:
        return None
    out: dict[str, Any] = {}
    for key, value in row.items():
        name, text = key.decode(), value.decode()
        out[name] = float(text) if name in FLOAT_FIELDS else text
    return out
