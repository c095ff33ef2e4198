"""Waybills (the driver's daily trip sheet): schemas of the API and the data access of `waybills`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bson import ObjectId
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import WaybillStatus, choices
from models.common import Id, JsonNumber, UtcDateTime, list_of

COLLECTION = "waybills"

index(COLLECTION, [("driver_id", 1), ("date", DESCENDING)], name="driver_date")
index(COLLECTION, [("organization", 1), ("date", DESCENDING)], name="organization_date")
index(COLLECTION, [("vehicle_id", 1), ("date", DESCENDING)], name="vehicle_date")

READING = validate.Range(min=0, max=10_000_000)
NOTES = validate.Length(max=5000)
MAX_ORDERS = 100
# A sheet is for a working day at most a year back (late paperwork) or a month ahead (planned shifts);
# its departure and return fall from the day before its date (a night shift) to a day from now (clock skew).
DAYS_BACK = 366
DAYS_AHEAD = 31
STAMP_SLACK = timedelta(days=1)
DATE_HELP = f"Working day (default: today, UTC), from {DAYS_BACK} days ago to {DAYS_AHEAD} days ahead"


def working_day(value: date) -> None:
    """A sheet's date lies from DAYS_BACK days ago to DAYS_AHEAD days ahead (UTC)."""
    today = datetime.now(UTC).date()
    if not today - timedelta(days=DAYS_BACK) <= value <= today + timedelta(days=DAYS_AHEAD):
        raise ValidationError(f"Must be within {DAYS_BACK} days before and {DAYS_AHEAD} days after today.")


def not_later_than_tomorrow(value: datetime | None) -> None:
    """A departure or return time is at most a day in the future."""
    if value is not None and value > datetime.now(UTC) + STAMP_SLACK:
        raise ValidationError("Must not be more than a day in the future.")


class WaybillOut(Schema):
    """A trip sheet as the API shows it."""

    id = Id(attribute="_id", required=True)
    driver_id = Id(required=True)
    vehicle_id = Id(required=True)
    organization = Id(allow_none=True, required=True, metadata={"description": "The vehicle's organization"})
    date = fields.String(required=True, metadata={"description": "Working day, YYYY-MM-DD"})
    status = fields.String(required=True, validate=validate.OneOf(choices(WaybillStatus)))
    odometer_start = fields.Float(allow_none=True, required=True, metadata={"description": "km"})
    odometer_end = fields.Float(allow_none=True, required=True, metadata={"description": "km"})
    fuel_start = fields.Float(allow_none=True, required=True, metadata={"description": "litres"})
    fuel_end = fields.Float(allow_none=True, required=True, metadata={"description": "litres"})
    departed_at = UtcDateTime(allow_none=True, required=True)
    returned_at = UtcDateTime(allow_none=True, required=True)
    route_notes = fields.String(required=True)
    order_ids = fields.List(Id(), required=True, metadata={"description": "Orders driven on this sheet"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


WaybillList = list_of(WaybillOut, "WaybillList")


class _WaybillFields(Schema):
    """What a driver fills in on a sheet (shared by create and edit)."""

    date = fields.Date(validate=working_day, metadata={"description": DATE_HELP})
    odometer_start = JsonNumber(allow_none=True, validate=READING)
    odometer_end = JsonNumber(allow_none=True, validate=READING)
    fuel_start = JsonNumber(allow_none=True, validate=READING)
    fuel_end = JsonNumber(allow_none=True, validate=READING)
    departed_at = fields.AwareDateTime(
        allow_none=True,
        default_timezone=UTC,
        validate=not_later_than_tomorrow,
        metadata={"description": "From the day before `date` to a day from now"},
    )
    returned_at = fields.AwareDateTime(
        allow_none=True,
        default_timezone=UTC,
        validate=not_later_than_tomorrow,
        metadata={"description": "Not before `departed_at`, at most a day from now"},
    )
    route_notes = fields.String(validate=NOTES)
    order_ids = fields.List(Id(), validate=validate.Length(max=MAX_ORDERS))

    @validates_schema
    def check(self, data: dict[str, Any], **kwargs: Any) -> None:
        check_readings(data)


class WaybillIn(_WaybillFields):
    """A new sheet: the caller is its driver; the vehicle must be theirs."""

    vehicle_id = Id(required=True)
    date = fields.Date(
        validate=working_day, load_default=lambda: datetime.now(UTC).date(), metadata={"description": DATE_HELP}
    )


class WaybillPatch(_WaybillFields):
    """Changes to a sheet; `status` moves it one step forward: open → on_route → returned."""

    status = fields.String(validate=validate.OneOf(choices(WaybillStatus)))


def check_readings(doc: dict[str, Any], changed: set[str] | None = None) -> None:
    """The end readings of a sheet never come before its start readings, nor its times before its day (422).

    `changed` names the fields an edit sets: times are held against the day only when one of them changes.
    """
    _check_times_after_day(doc, changed)
    start, end = doc.get("odometer_start"), doc.get("odometer_end")
    if start is not None and end is not None and end < start:
        raise ValidationError({"odometer_end": ["Must not be less than odometer_start."]})
    departed, returned = doc.get("departed_at"), doc.get("returned_at")
    if departed is not None and returned is not None and returned < departed:
        raise ValidationError({"returned_at": ["Must not be before departed_at."]})


def _check_times_after_day(doc: dict[str, Any], changed: set[str] | None) -> None:
    day = doc.get("date")
    if day is None:  # an edit's own payload: the stored day is checked by the edit itself
        return
    day = date.fromisoformat(day) if isinstance(day, str) else day
    earliest = datetime.combine(day, time(), UTC) - STAMP_SLACK
    for field in ("departed_at", "returned_at"):
        relevant = changed is None or field in changed or "date" in changed
        if relevant and doc.get(field) is not None and doc[field] < earliest:
            raise ValidationError({field: [f"Must not be before {earliest.isoformat()} (the day before the date)."]})


def new_waybill(driver_id: ObjectId, vehicle: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A waybill document ready to insert."""
    now = utcnow()
    return {
        "driver_id": driver_id,
        "vehicle_id": vehicle["_id"],
        "organization": vehicle.get("organization"),
        "date": (data.get("date") or now.date()).isoformat(),
        "status": WaybillStatus.OPEN,
        "odometer_start": data.get("odometer_start"),
        "odometer_end": data.get("odometer_end"),
        "fuel_start": data.get("fuel_start"),
        "fuel_end": data.get("fuel_end"),
        "departed_at": data.get("departed_at"),
        "returned_at": data.get("returned_at"),
        "route_notes": data.get("route_notes", ""),
        "order_ids": data.get("order_ids", []),
        "created_at": now,
        "updated_at": now,
    }


class Waybills:
    """Data access of the `waybills` collection."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a new sheet."""
        result = await self.collection.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """The sheet matching a query (id plus the caller's scope), or None."""
        return await self.collection.find_one(query)

    async def find(self, query: dict[str, Any], offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of sheets, newest working day first, and the total."""
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("date", -1), ("_id", -1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def update(self, query: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any] | None:
        """Compare-and-set: apply changes only where the query (with its expected state) still matches."""
        return await self.collection.find_one_and_update(
            query, {"$set": {**changes, "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER
        )


def show(doc: dict[str, Any]) -> dict[str, Any]:
    """A sheet as the API shows it."""
    return WAYBILL_OUT.dump({"route_notes": "", "order_ids": [], **doc})


WAYBILL_OUT = WaybillOut()


class WaybillFilters(Schema):
    """Query-string filters of the waybill list."""

    class Meta:
        unknown = EXCLUDE  # the query string also carries limit and offset

    status = fields.String(validate=validate.OneOf(choices(WaybillStatus)))
    driver_id = Id()
    vehicle_id = Id()
    date_from = fields.Date()
    date_to = fields.Date()
