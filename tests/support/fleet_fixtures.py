"""A small fleet world for the vehicle, order, payment and rating tests: two organizations,
their managers, drivers and trucks, a client and an admin, with a token for each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from dispatch.core import live
from models.vehicles import GpsHistory, Vehicles, VehicleTypes
from tests.support.factories import login, make_org, make_user

API = "/api/v1"
# Around the Kremlin, Moscow: points a few km apart.
CENTER = {"lat": 55.7520, "lon": 37.6175}


@dataclass
class World:
    """Organizations `a` and `b`, people by name, their tokens, and vehicles by name."""

    app: Any
    orgs: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    tokens: dict[str, str]
    vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def id(self, name: str) -> str:
        """The id of a person or a vehicle, as the API writes it."""
        found = self.users.get(name) or self.vehicles[name]
        return str(found["_id"])

    def org(self, name: str) -> str:
        """An organization's id as text."""
        return str(self.orgs[name]["_id"])

    async def add_user(self, name: str, category: str, org: str | None = None) -> dict[str, Any]:
        """One more person (in organization `org`), with a token."""
        orgs = [self.orgs[org]["_id"]] if org else None
        self.users[name] = await make_user(self.app, category, organizations=orgs)
        self.tokens[name] = await login(self.app, self.users[name])
        return self.users[name]

    async def add_vehicle(
        self,
        name: str,
        org: str,
        driver: str | None = None,
        status: str = "available",
        at: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """A truck of organization `org` driven by `driver` (made if missing), optionally at a position."""
        driver_id = None
        if driver is not None:
            if driver not in self.users:
                await self.add_user(driver, "DRIVER", org)
            driver_id = self.users[driver]["_id"]
        doc = await Vehicles(self.app.settings["services"].db).insert(
            {
                "plate": f"T{uuid.uuid4().hex[:6].upper()}",
                "model": "Isuzu NPR",
                "capacity_kg": 3500,
                "organization": self.orgs[org]["_id"],
                "driver_id": driver_id,
                "status": status,
            }
        )
        self.vehicles[name] = doc
        if at is not None:
            await put_position(self.app, doc, at)
        return doc


async def make_world(app: Any) -> World:
    """Two organizations with a manager each, a client, an admin, a driver without organization."""
    world = World(app, {"a": await make_org(app, "Alpha Towing"), "b": await make_org(app, "Bravo Recovery")}, {}, {})
    for name, category, org in (
        ("manager_a", "MANAGER", "a"),
        ("manager_b", "MANAGER", "b"),
        ("client", "BASE", None),
        ("other_client", "BASE", None),
        ("admin", "ADMIN", None),
    ):
        await world.add_user(name, category, org)
    return world


async def put_position(app: Any, vehicle: dict[str, Any], at: dict[str, float]) -> None:
    """Write a vehicle's live position the way the GPS ingest does."""
    point = {
        "lat": at["lat"],
        "lon": at["lon"],
        "ts": "2030-01-01T00:00:00.000Z",
        "speed": 10.0,
        "heading": 90.0,
        "accuracy": 5.0,
        "driver_id": str(vehicle.get("driver_id")),
    }
    async with app.settings["services"].redis.pipeline(transaction=False) as pipe:
        live.queue_position(pipe, str(vehicle["_id"]), str(vehicle["organization"]), point)
        await pipe.execute()


def offset(km_north: float = 0.0, km_east: float = 0.0) -> dict[str, float]:
    """A point that many km north and east of CENTER (close enough to a flat map over a few km)."""
    import math

    return {
        "lat": CENTER["lat"] + km_north / 111.195,
        "lon": CENTER["lon"] + km_east / (111.195 * math.cos(math.radians(CENTER["lat"]))),
    }


async def make_vehicle_type(
    app: Any, name: str = "Sedan", base_price: float = 1500.0, price_per_km: float = 100.0, organization: Any = None
) -> dict[str, Any]:
    """A vehicle type (kind of car being towed) with its prices, shared unless of an organization's price list."""
    return await VehicleTypes(app.settings["services"].db).insert(
        {
            "name": f"{name} {uuid.uuid4().hex[:4]}",
            "base_price": base_price,
            "price_per_km": price_per_km,
            "organization": organization,
        }
    )


def gps_point(vehicle: dict[str, Any], seq: int, at: dict[str, float], ts: datetime) -> dict[str, Any]:
    """A stored GPS history document, built as the real-time ingest builds it (`GpsHistory.document`)."""
    driver = vehicle.get("driver_id") or ObjectId()  # every stored point was sent by some driver
    point = {"seq": seq, "lat": at["lat"], "lon": at["lon"], "ts": ts, "speed": 12.5, "heading": 270.0, "accuracy": 5.0}
    return GpsHistory.document(str(driver), str(vehicle["_id"]), None, point)


def oid() -> str:
    """A well-formed id nobody uses."""
    return str(ObjectId())


def place(at: dict[str, float], address: str = "Somewhere 1") -> dict[str, Any]:
    """A pickup or dropoff."""
    return {"lat": at["lat"], "lon": at["lon"], "address": address}


def order_body(
    vehicle_type: dict[str, Any],
    pickup: dict[str, float] | None = None,
    dropoff: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A valid `POST /orders` body (pickup at CENTER, dropoff 10 km north unless given)."""
    return {
        "pickup": place(pickup or CENTER, "Red Square 1"),
        "dropoff": place(dropoff or offset(10, 0), "Garage 7"),
        "vehicle": {"type_id": str(vehicle_type["_id"]), "make": "Lada", "model": "Vesta", "plate": "X 001 XX"},
        **fields,
    }


async def insert_order(
    world: World, status: str = "new", org: str | None = "a", client: str = "client", vehicle: str | None = None
) -> dict[str, Any]:
    """An order stored directly in a given status; with `vehicle`, assigned to that truck and its driver
    (the truck busy with it while the order holds it)."""
    from dispatch.core.timeutil import utcnow
    from dispatch.domain.orders import HOLDS_VEHICLE
    from models.orders import Orders

    truck = world.vehicles[vehicle] if vehicle else None
    now = utcnow()
    doc = {
        "client_id": world.users[client]["_id"],
        "created_by": world.users[client]["_id"],
        "organization": world.orgs[org]["_id"] if org else None,
        "pickup": place(CENTER),
        "dropoff": place(offset(10, 0)),
        "vehicle": {
            "type_id": ObjectId(),
            "type_name": "Sedan",
            "make": "Lada",
            "model": "Vesta",
            "plate": "X 001 XX",
            "color": None,
        },
        "notes": "",
        "distance_km": 10.0,
        "price_estimate": 2500.0,
        "status": status,
        "vehicle_id": truck["_id"] if truck else None,
        "driver_id": truck["driver_id"] if truck else None,
        "created_at": now,
        "updated_at": now,
        "timeline": [],
    }
    order = await Orders(world.app.settings["services"].db).insert(doc)
    if truck is not None and status in HOLDS_VEHICLE:
        await (
            world.app.settings["services"]
            .db["vehicles"]
            .update_one({"_id": truck["_id"]}, {"$set": {"status": "busy", "current_order": order["_id"]}})
        )
    return order
