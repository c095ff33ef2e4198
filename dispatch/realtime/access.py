"""Who may listen where: channel and order-socket scope checks, and the driver's vehicle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.vocabulary import Category
from dispatch.domain.scopes import orgs_of
from dispatch.realtime.ingest import DriverContext

CHANNEL_KINDS = ("fleet", "order", "vehicle")
CONTEXT_TTL = 30.0


def _oid(text: str) -> ObjectId | None:
    return ObjectId(text) if ObjectId.is_valid(text) and len(text) == 24 else None


async def may_subscribe(db: AsyncDatabase[Any], user: dict[str, Any], channel: str) -> bool:
    """Whether a console user may follow a channel: ADMIN any; MANAGER their organizations' only."""
    kind, _, ident = channel.partition(":")
    oid = _oid(ident)
    if kind not in CHANNEL_KINDS or oid is None:
        return False
    if user.get("category") == Category.ADMIN:
        return True
    orgs = set(orgs_of(user))
    if kind == "fleet":
        return oid in orgs
    collection = "orders" if kind == "order" else "vehicles"
    doc = await db[collection].find_one({"_id": oid}, {"organization": 1})
    return doc is not None and doc.get("organization") in orgs


async def may_track_order(db: AsyncDatabase[Any], user: dict[str, Any], order_id: str) -> bool:
    """Whether a user may open `/ws/orders/{id}`: its client, its driver, its org's managers, admins."""
    oid = _oid(order_id)
    if oid is None:
        return False
    order = await db["orders"].find_one({"_id": oid}, {"client_id": 1, "driver_id": 1, "organization": 1})
    if order is None:
        return False
    category, uid = user.get("category"), user["_id"]
    if category == Category.ADMIN:
        return True
    if category == Category.MANAGER:
        return order.get("organization") in orgs_of(user)
    return uid in (order.get("client_id"), order.get("driver_id"))


class DriverVehicle:
    """A driver's streaming context, reloaded when stale or when an assignment arrives."""

    def __init__(self, db: AsyncDatabase[Any], driver_id: ObjectId) -> None:
        self.db = db
        self.driver_id = driver_id
        self.context = DriverContext(str(driver_id))
        self.loaded_at = 0.0
        self.reloading = False  # a background reload is under way (one at a time, not one per frame)

    @property
    def stale(self) -> bool:
        """Whether the context should be read again."""
        return time.monotonic() - self.loaded_at > CONTEXT_TTL

    def reload_soon(self, spawn: Callable[[Any], None]) -> None:
        """Start a background reload unless one is already under way."""
        if not self.reloading:
            self.reloading = True
            spawn(self._reload())

    async def _reload(self) -> None:
        try:
            await self.load()
        finally:
            self.reloading = False

    async def load(self) -> DriverContext:
        """Read the driver's vehicle (one per driver), its organization and current order."""
        vehicle = await self.db["vehicles"].find_one(
            {"driver_id": self.driver_id}, {"organization": 1, "current_order": 1}
        )
        self.context = DriverContext(
            str(self.driver_id),
            vehicle_id=str(vehicle["_id"]) if vehicle else None,
            organization=str(vehicle["organization"]) if vehicle and vehicle.get("organization") else None,
            order_id=str(vehicle["current_order"]) if vehicle and vehicle.get("current_order") else None,
        )
        self.loaded_at = time.monotonic()
        return self.context
