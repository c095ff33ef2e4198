"""Benchmark data made through the project's own repositories: an organization, its managers
and drivers (each with an available truck), clients, a vehicle type, orders and live positions,
and an access token per user (a session each, as a log-in opens).

Built on the bench process's own services (`Services.open` on the run's stores), the way
`dispatch seed-demo` does, so documents have exactly the layout the server expects.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from bson import ObjectId

from dispatch.core import live
from dispatch.core.security import hash_password
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.services import Services
from dispatch.settings import Settings
from models.organizations import Organizations
from models.users import new_user
from models.vehicles import Vehicles, VehicleTypes

PASSWORD = "bench-password-1"
CENTER = (55.75, 37.62)
CONCURRENCY = 64
T = TypeVar("T")


async def bounded(items: list[Any], make: Callable[[Any], Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """`make(item)` for every item, at most `limit` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> T:
        async with gate:
            return await make(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


@asynccontextmanager
async def open_services(env: dict[str, str]) -> AsyncIterator[Services]:
    """The services of the run's settings and stores (no app: it only lends its domain objects)."""
    services = Services.open(Settings.from_env(env, env_file=None))
    try:
        yield services
    finally:
        await services.close()


class Seeder:
    """Makes benchmark users, trucks and orders; hands out tokens."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.db
        self.identity = services.identity
        self.password_hash = ""

    async def organization(self) -> dict[str, Any]:
        """A new organization."""
        return await Organizations(self.db).insert(f"Bench {uuid.uuid4().hex[:8]}", "benchmark fleet")

    async def users(self, category: str, count: int, org_id: ObjectId | None = None) -> list[dict[str, Any]]:
        """`count` verified accounts of a category (one bcrypt hash shared: log-ins are not what is measured)."""
        if not self.password_hash:
            self.password_hash = await hash_password(PASSWORD, 4)

        async def one(_: int) -> dict[str, Any]:
            name = f"{category.lower()}_{uuid.uuid4().hex[:12]}"
            doc = new_user(
                {"username": name, "email": f"{name}@example.com"}, self.password_hash, category=category, verified=True
            )
            if org_id is not None:
                doc["organizations"] = [org_id]
            return await self.identity.users.insert(doc)

        return await bounded(list(range(count)), one)

    async def trucks(self, drivers: list[dict[str, Any]], org_id: ObjectId) -> list[dict[str, Any]]:
        """An available truck for each driver."""
        vehicles = Vehicles(self.db)
        return await bounded(
            drivers,
            lambda d: vehicles.insert(
                {
                    "plate": f"B{uuid.uuid4().hex[:9].upper()}",
                    "model": "Bench Tow",
                    "capacity_kg": 3500,
                    "organization": org_id,
                    "driver_id": d["_id"],
                    "status": "available",
                }
            ),
        )

    async def tokens(self, users: list[dict[str, Any]]) -> list[str]:
        """An access token of a new session per user."""

        async def one(user: dict[str, Any]) -> str:
            return (await self.identity.open_session(user, "127.0.0.1", "bench"))["access_token"]

        return await bounded(users, one)

    async def positions(self, trucks: list[dict[str, Any]], spread_km: float = 8.0, seed: int = 7) -> None:
        """Live positions of the trucks scattered around the centre, as the GPS ingest leaves them."""
        rng = random.Random(seed)
        redis = self.services.redis
        async with redis.pipeline(transaction=False) as pipe:
            for truck in trucks:
                point = {
                    "lat": round(CENTER[0] + rng.uniform(-1, 1) * spread_km / 111, 6),
                    "lon": round(CENTER[1] + rng.uniform(-1, 1) * spread_km / 63, 6),
                    "ts": isoformat(utcnow()),
                    "speed": 0.0,
                    "heading": 0.0,
                    "accuracy": 5.0,
                    "driver_id": str(truck["driver_id"]),
                }
                live.queue_position(pipe, str(truck["_id"]), str(truck["organization"]), point)
            await pipe.execute()

    async def vehicle_type(self) -> dict[str, Any]:
        """A priced kind of towed car."""
        return await VehicleTypes(self.db).insert(
            {"name": f"Sedan {uuid.uuid4().hex[:6]}", "base_price": 50.0, "price_per_km": 2.5}
        )

    async def orders(self, clients: list[dict[str, Any]], org_id: ObjectId, type_id: ObjectId, count: int) -> None:
        """Orders placed by the clients with the organization, through the order desk."""
        desk = self.services.orders
        await bounded(
            list(range(count)), lambda n: desk.create(clients[n % len(clients)], order_body(n, type_id, org_id))
        )

    async def geofences(self, org_id: ObjectId, count: int) -> None:
        """`count` geofences over the area the generator's points cover: circles and squares, half each."""
        rng = random.Random(count)
        docs = []
        for n in range(count):
            lat, lon = 55.70 + rng.uniform(0, 0.1), 37.55 + rng.uniform(0, 0.1)
            shape: dict[str, Any] = {"type": "circle", "center": {"lat": lat, "lon": lon}, "radius_m": 400.0}
            if n % 2:
                d = 0.004
                corners = [[lat - d, lon - d], [lat - d, lon + d], [lat + d, lon + d], [lat + d, lon - d]]
                shape = {"type": "polygon", "points": corners}
            now = utcnow()
            docs.append(
                {"organization": org_id, "name": f"Fence {n}", "shape": shape, "created_at": now, "updated_at": now}
            )
        if docs:
            await self.db["geofences"].insert_many(docs)

    async def en_route(self, trucks: list[dict[str, Any]], type_id: ObjectId) -> None:
        """An order on its way to a pickup far from the generator's points for every truck (so each point
        may refresh an ETA and is checked for arrival)."""
        now = utcnow()
        docs = []
        for n, truck in enumerate(trucks):
            body = order_body(n, type_id, truck["organization"])
            body["pickup"] = {"lat": 55.60, "lon": 37.40, "address": "Far away 1"}
            docs.append(
                {
                    **body,
                    "client_id": None,
                    "status": "en_route",
                    "vehicle_id": truck["_id"],
                    "driver_id": truck["driver_id"],
                    "eta": None,
                    "revision": 3,
                    "timeline": [],
                    "distance_km": 5.0,
                    "price_estimate": 60.0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if docs:
            await self.db["orders"].insert_many(docs)
            for doc in docs:  # the truck holds its order, as an assignment leaves it
                await self.db["vehicles"].update_one(
                    {"_id": doc["vehicle_id"]}, {"$set": {"status": "busy", "current_order": doc["_id"]}}
                )


def order_body(n: int, type_id: Any, org_id: Any | None = None) -> dict[str, Any]:
    """A plausible order (pickup and drop-off a few km apart near the centre)."""
    rng = random.Random(n)
    pickup = {
        "lat": round(CENTER[0] + rng.uniform(-0.05, 0.05), 6),
        "lon": round(CENTER[1] + rng.uniform(-0.08, 0.08), 6),
        "address": f"Bench street {n}",
    }
    dropoff = {
        "lat": round(pickup["lat"] + rng.uniform(-0.03, 0.03), 6),
        "lon": round(pickup["lon"] + rng.uniform(-0.05, 0.05), 6),
        "address": f"Garage {n}",
    }
    body: dict[str, Any] = {
        "pickup": pickup,
        "dropoff": dropoff,
        "notes": "bench",
        "vehicle": {"type_id": type_id, "make": "Lada", "model": "Vesta", "plate": f"A{n:05d}"},
    }
    if org_id is not None:
        body["organization"] = org_id
    return body


async def driving_fleet(
    env: dict[str, str], drivers: int, managers: int, geofences: int = 0, etas: bool = False
) -> dict[str, Any]:
    """An organization with `drivers` drivers (each with a truck) and `managers` managers, with tokens;
    with `geofences` fences of the organization, and with `etas` an order en route for every truck."""
    async with open_services(env) as services:
        seeder = Seeder(services)
        org = await seeder.organization()
        crew = await seeder.users("DRIVER", drivers, org["_id"])
        trucks = await seeder.trucks(crew, org["_id"])
        await seeder.geofences(org["_id"], geofences)
        if etas:
            await seeder.en_route(trucks, (await seeder.vehicle_type())["_id"])
        bosses = await seeder.users("MANAGER", managers, org["_id"])
        driver_tokens, manager_tokens = await seeder.tokens(crew), await seeder.tokens(bosses)
    channel = f"fleet:{org['_id']}"
    return {
        "channel": channel,
        "drivers": [{"driver_id": str(u["_id"]), "token": t} for u, t in zip(crew, driver_tokens, strict=False)],
        "consoles": [{"token": t, "channel": channel} for t in manager_tokens],
    }
