"""Waybills: who may read and edit which trip sheet, and its one-way life `open → on_route → returned`.

A returned sheet is locked for everybody. The lock is enforced in the write itself (the update's
filter requires the sheet not to be returned), so an edit racing the driver's return cannot slip in.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from marshmallow import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.errors import Conflict, NotFound, ValidationFailed
from dispatch.core.events import Event, EventBus
from dispatch.core.pagination import Page
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import WaybillStatus, WebhookEvent
from dispatch.domain import scopes
from dispatch.domain.scopes import Resource
from models.orders import Orders
from models.vehicles import Vehicles
from models.waybills import Waybills, check_readings, new_waybill, show

LOCKED = WaybillStatus.RETURNED
NEXT: dict[str, WaybillStatus] = {  # the only moves: one step forward
    WaybillStatus.OPEN: WaybillStatus.ON_ROUTE,
    WaybillStatus.ON_ROUTE: WaybillStatus.RETURNED,
}
STAMPS: dict[str, str] = {WaybillStatus.ON_ROUTE: "departed_at", WaybillStatus.RETURNED: "returned_at"}
# A change to one of these is checked against the other, so the other's value is part of the write's filter.
PAIRS = {
    "odometer_start": "odometer_end",
    "odometer_end": "odometer_start",
    "departed_at": "returned_at",
    "returned_at": "departed_at",
}
ATTEMPTS = 3


def locked() -> Conflict:
    """The 409 of any edit to a returned sheet."""
    return Conflict("This waybill is returned and can no longer be changed.", "waybill_locked")


class WaybillDesk:
    """Creating, reading and editing trip sheets on behalf of a caller."""

    def __init__(self, db: AsyncDatabase[Any], events: EventBus) -> None:
        self.events = events
        self.store = Waybills(db)
        self.vehicles = Vehicles(db)
        self.orders = Orders(db)

    async def create(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new open sheet of the calling driver, for the vehicle they drive."""
        vehicle = await self.vehicles.get(data["vehicle_id"], {"driver_id": user["_id"]})
        if vehicle is None:
            raise ValidationFailed({"vehicle_id": ["Not a vehicle assigned to you."]})
        await self._check_orders(user["_id"], data.get("order_ids", []))
        return await self.store.insert(new_waybill(user["_id"], vehicle, data))

    async def page(self, user: dict[str, Any], filters: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """A page of the sheets the caller may read, with optional filters."""
        query = _both(_filter_query(filters), scopes.query(Resource.WAYBILLS, user))
        return await self.store.find(query, page.offset, page.limit)

    async def get(self, user: dict[str, Any], waybill_id: ObjectId) -> dict[str, Any]:
        """One sheet the caller may read; 404 when it does not exist or is out of their scope."""
        doc = await self.store.find_one({"_id": waybill_id, **scopes.query(Resource.WAYBILLS, user)})
        if doc is None:
            raise NotFound("No such waybill.")
        return doc

    async def edit(self, user: dict[str, Any], waybill_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply changes (and at most one status step) to a sheet that is not returned yet."""
        scope = scopes.query(Resource.WAYBILLS_EDIT, user)
        for _ in range(ATTEMPTS):
            current = await self.get(user, waybill_id)
            if current["status"] == LOCKED:
                raise locked()
            update, expected = await self._plan(current, changes)
            doc = await self.store.update({"_id": waybill_id, **scope, **expected}, update)
            if doc is not None:
                if "status" in update:
                    await self._publish(doc, current["status"])
                return doc
            # Someone changed the sheet between our read and our write: read again and re-check.
        raise Conflict("The waybill changed while this edit was applied; try again.", "edit_conflict")

    async def _plan(self, current: dict[str, Any], changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The `$set` of an edit and the state the sheet must still be in for it to apply."""
        update = dict(changes)
        if not update:
            raise ValidationFailed({"_schema": ["Nothing to change."]})
        if "date" in update:
            update["date"] = update["date"].isoformat()
        expected: dict[str, Any] = {"status": {"$ne": LOCKED}}
        if "status" in update:
            target = update["status"]
            expected["status"] = self._transition(current["status"], target)
            stamp = STAMPS[target]
            if update.get(stamp) is None:  # moving stamps the time, unless the sheet already says when
                update[stamp] = current.get(stamp) or utcnow()
        try:
            check_readings({**current, **update}, set(changes))
        except ValidationError as exc:
            raise ValidationFailed(exc.normalized_messages()) from None  # type: ignore[no-untyped-call]
        if "order_ids" in update:
            await self._check_orders(current["driver_id"], update["order_ids"])
        for field in set(update) & set(PAIRS):
            if PAIRS[field] not in update:
                expected[PAIRS[field]] = current.get(PAIRS[field])
        return update, expected

    @staticmethod
    def _transition(current: str, target: str) -> str:
        """The status the sheet must be in to move to `target`; 409 for any move but one step forward."""
        if NEXT.get(current) != target:
            raise Conflict(
                f"A waybill cannot move from {current} to {target}.",
                "invalid_transition",
                {"from": current, "to": target, "allowed": [NEXT[current]] if current in NEXT else []},
            )
        return current

    async def _check_orders(self, driver_id: ObjectId, order_ids: list[ObjectId]) -> None:
        """Linked orders must be orders this driver was assigned."""
        wanted = list(dict.fromkeys(order_ids))
        if not wanted:
            return
        _, found = await self.orders.page({"_id": {"$in": wanted}, "driver_id": driver_id}, Page(len(wanted), 0))
        if found != len(wanted):
            raise ValidationFailed({"order_ids": ["Link only orders assigned to the sheet's driver."]})

    async def _publish(self, doc: dict[str, Any], previous: str) -> None:
        organization = doc.get("organization")
        channels = (f"fleet:{organization}",) if organization else ()
        await self.events.publish(
            Event(
                "waybill",
                channels,
                {"waybill": show(doc), "from": previous, "to": doc["status"]},
                topic=WebhookEvent.WAYBILL_STATUS_CHANGED,
                organization=str(organization) if organization else None,
            )
        )


def _filter_query(filters: dict[str, Any]) -> dict[str, Any]:
    """List filters (status, driver_id, vehicle_id, date_from, date_to) as a query."""
    query: dict[str, Any] = {k: filters[k] for k in ("status", "driver_id", "vehicle_id") if k in filters}
    dates = {op: filters[key].isoformat() for op, key in (("$gte", "date_from"), ("$lte", "date_to")) if key in filters}
    if dates:
        query["date"] = dates
    return query


def _both(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two queries that must both hold (a filter never widens the caller's scope)."""
    return {"$and": [first, second]} if first and second else first or second
