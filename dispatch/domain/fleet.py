"""The fleet: who sees which vehicle, vehicle rules, live positions, nearby search, route replay,
and the price lists (vehicle types).

Scope (SPEC section 4, "vehicles"): ADMIN all; MANAGER the vehicles of their organizations;
DRIVER only the vehicle whose `driver_id` is them (read-only); BASE none (but BASE may search
available trucks near them, see `nearby`, in a brief form without people or organizations).

Price lists (SPEC section 13): a vehicle type belongs to an organization's price list, or to the
shared catalogue (`organization` null) that only ADMINs write. MANAGERs write their organizations'
lists. Clients may order from any organization, so they read every list; MANAGERs and DRIVERs read
the shared one and their organizations'.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import live
from dispatch.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dispatch.core.geo import path_km
from dispatch.core.pagination import Page
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import Category, VehicleStatus
from dispatch.domain import scopes
from dispatch.domain.scopes import ORG_BOUND, Resource, orgs_of
from models.users import Users
from models.vehicles import GpsHistory, Vehicles, VehicleTypes, organization_exists

NEARBY_CANDIDATES = 1000  # GEOSEARCH answers at most this many members per key
TRACK_CAP = 20_000  # points per route replay
TRACK_DEFAULT = timedelta(hours=24)
# Changing these on a vehicle busy with an order would strand the order.
LOCKED_WHILE_BUSY = {"organization", "driver_id", "status"}


async def check_organization(db: AsyncDatabase[Any], user: dict[str, Any], organization: ObjectId) -> None:
    """422 unless the organization exists and (for a MANAGER) is one of theirs."""
    if user.get("category") in ORG_BOUND and organization not in orgs_of(user):
        raise ValidationFailed({"organization": ["Not one of your organizations."]})
    if not await organization_exists(db, organization):
        raise ValidationFailed({"organization": ["No such organization."]})


class PriceLists:
    """Vehicle types (what a tow costs) per organization, plus the shared catalogue."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.types = VehicleTypes(db)

    async def get(self, user: dict[str, Any], type_id: ObjectId) -> dict[str, Any]:
        """A type the user may read (404 otherwise)."""
        doc = await self.types.get(type_id, scopes.query(Resource.VEHICLE_TYPES, user))
        if doc is None:
            raise NotFound("No such vehicle type.")
        return doc

    async def page(self, user: dict[str, Any], filters: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """The types a user may read (`organization`: those an order of it may use), one page."""
        query = scopes.query(Resource.VEHICLE_TYPES, user)
        if "organization" in filters:
            usable = {"organization": {"$in": [None, filters["organization"]]}}
            query = {"$and": [query, usable]} if query else usable
        return await self.types.page(query, page)

    async def create(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Add a type to a price list the user writes: MANAGERs their organizations', ADMINs any."""
        organization = data.get("organization")
        if organization is None:
            if user.get("category") != Category.ADMIN:
                raise ValidationFailed(
                    {"organization": ["Give one of your organizations: only ADMINs write the shared catalogue."]}
                )
        else:
            await check_organization(self.db, user, organization)
        return await self.types.insert({**data, "organization": organization})

    async def update(self, user: dict[str, Any], type_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any]:
        """Edit a type of a price list the user writes; the shared catalogue is the ADMINs' (403)."""
        current = await self.get(user, type_id)
        if not scopes.admits(Resource.VEHICLE_TYPES_EDIT, user, current):
            if current["organization"] is None:
                raise ApiError(
                    403,
                    "shared_catalogue",
                    "Only ADMINs edit the shared catalogue; add the type to your organization's price list.",
                )
            raise NotFound("No such vehicle type.")
        updated = await self.types.update(type_id, changes)
        if updated is None:
            raise NotFound("No such vehicle type.")
        return updated


class Fleet:
    """Vehicles of one database, with their live positions in Redis."""

    def __init__(self, db: AsyncDatabase[Any], redis: aioredis.Redis, users: Users) -> None:
        self.db = db
        self.redis = redis
        self.users = users
        self.vehicles = Vehicles(db)
        self.history = GpsHistory(db)

    # --- reads ---------------------------------------------------------------
    async def get(self, user: dict[str, Any], vehicle_id: ObjectId) -> dict[str, Any]:
        """A vehicle the user may read (404 otherwise)."""
        doc = await self.vehicles.get(vehicle_id, scopes.query(Resource.VEHICLES, user))
        if doc is None:
            raise NotFound("No such vehicle.")
        return doc

    async def page(self, user: dict[str, Any], filters: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """The vehicles a user may read, filtered, one page of them."""
        return await self.vehicles.page(scopes.query(Resource.VEHICLES, user), filters, page)

    async def with_locations(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The documents with `location`: each one's last known position (None when unknown)."""
        found = await live.positions(self.redis, [doc["_id"] for doc in docs])
        return [{**doc, "location": found.get(str(doc["_id"]))} for doc in docs]

    # --- writes --------------------------------------------------------------
    async def create(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Add a vehicle to an organization the user runs, with a driver of that organization."""
        await self._check_organization(user, data["organization"])
        if data.get("driver_id") is not None:
            await self._check_driver(data["driver_id"], data["organization"])
        _check_driver_for_status(data.get("driver_id"), data["status"])
        return await self.vehicles.insert(data)

    async def update(self, user: dict[str, Any], vehicle_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any]:
        """Edit a vehicle; moving it to another organization forgets its live position."""
        current = await self.get(user, vehicle_id)
        organization = changes.get("organization", current["organization"])
        if organization != current["organization"]:
            await self._check_organization(user, organization)
        driver_id = changes.get("driver_id", current.get("driver_id"))
        if driver_id is not None and ("driver_id" in changes or "organization" in changes):
            await self._check_driver(driver_id, organization)
        _check_driver_for_status(driver_id, changes.get("status", current["status"]))
        expect = {"organization": current["organization"]}
        if LOCKED_WHILE_BUSY & set(changes):
            expect["current_order"] = None
        updated = await self.vehicles.update(vehicle_id, changes, expect)
        if updated is None:
            raise _busy_or_gone(await self.vehicles.get(vehicle_id))
        if organization != current["organization"]:
            await self._forget(vehicle_id, current["organization"])
        return updated

    async def delete(self, user: dict[str, Any], vehicle_id: ObjectId) -> None:
        """Remove a vehicle that is not busy with an order, and its live position."""
        current = await self.get(user, vehicle_id)
        if not await self.vehicles.delete(vehicle_id, {"current_order": None}):
            raise _busy_or_gone(await self.vehicles.get(vehicle_id))
        await self._forget(vehicle_id, current["organization"])

    async def _forget(self, vehicle_id: ObjectId, organization: ObjectId) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:  # keys of several cluster slots
            live.forget_vehicle(pipe, str(vehicle_id), [str(organization)])
            await pipe.execute()

    async def _check_organization(self, user: dict[str, Any], organization: ObjectId) -> None:
        await check_organization(self.db, user, organization)

    async def _check_driver(self, driver_id: ObjectId, organization: ObjectId) -> None:
        driver = await self.users.get(driver_id)
        if driver is None or driver.get("category") != Category.DRIVER or organization not in orgs_of(driver):
            raise ValidationFailed({"driver_id": ["Not a driver of this organization."]})

    # --- live search and history ----------------------------------------------
    async def nearby(
        self, user: dict[str, Any], lat: float, lon: float, radius_km: float, page: Page
    ) -> tuple[list[dict[str, Any]], int]:
        """Available vehicles within the radius, nearest first, each with `distance_km` and `location`.

        ADMIN and BASE search every fleet (`geo:vehicles`); a MANAGER (or an API key) searches their
        organizations' keys and gets one merged, sorted answer.
        """
        if user.get("category") in ORG_BOUND:
            keys, scope = [live.geo_org(org) for org in orgs_of(user)], scopes.query(Resource.VEHICLES, user)
        else:
            keys, scope = [live.GEO_ALL], {}
        distances: dict[str, float] = {}
        for key in keys:
            for member, distance in await live.nearby(self.redis, lat, lon, radius_km, NEARBY_CANDIDATES, key):
                distances[member] = min(distance, distances.get(member, distance))
        ids = [ObjectId(member) for member in distances if ObjectId.is_valid(member)]
        docs = await self.vehicles.available(scope, among=ids) if ids else []
        docs.sort(key=lambda doc: (distances[str(doc["_id"])], str(doc["_id"])))
        shown = await self.with_locations(docs[page.offset : page.offset + page.limit])
        return [{**doc, "distance_km": round(distances[str(doc["_id"])], 3)} for doc in shown], len(docs)

    async def track(
        self, user: dict[str, Any], vehicle_id: ObjectId, start: Any = None, end: Any = None
    ) -> dict[str, Any]:
        """The stored GPS points of a vehicle between two times, and the length of that path."""
        vehicle = await self.get(user, vehicle_id)
        end = end or utcnow()
        start = start or end - TRACK_DEFAULT
        if start > end:
            raise ValidationFailed({"from": ["Must not be after `to`."]})
        points = await self.history.between(vehicle["_id"], start, end, TRACK_CAP)
        return {"vehicle_id": vehicle["_id"], "points": points, "distance_km": round(path_km(points), 3)}


def _check_driver_for_status(driver_id: ObjectId | None, status: str) -> None:
    if status == VehicleStatus.AVAILABLE and driver_id is None:
        raise ValidationFailed({"status": ["A vehicle without a driver cannot be available."]})


def _busy_or_gone(doc: dict[str, Any] | None) -> ApiError:
    if doc is None:
        return NotFound("No such vehicle.")
    if doc.get("current_order") is not None:
        return Conflict(
            "The vehicle is busy with an order; finish or cancel it first.",
            "vehicle_busy",
            {"order_id": str(doc["current_order"])},
        )
    return Conflict("The vehicle changed meanwhile; try again.")
