"""Fleet data: vehicle types (pricing), vehicles (tow trucks) and their stored GPS history.

Schemas of the API and the data access of the `vehicle_types`, `vehicles` and `gps_points`
collections. Who may see what is decided in dispatch/domain/fleet.py, which hands these
repositories a scope filter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from marshmallow import EXCLUDE, Schema, fields, validate
from pymongo import ASCENDING, ReturnDocument, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from dispatch.core import live
from dispatch.core.errors import Conflict
from dispatch.core.pagination import Page
from dispatch.core.storage import index, migration, object_id, retire_index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import SETTABLE_VEHICLE_STATUSES, VehicleStatus, choices
from models.common import Id, JsonNumber, UtcDateTime, list_of, visible_text

TYPES = "vehicle_types"
VEHICLES = "vehicles"
GPS_POINTS = "gps_points"
MAX_PRICE = 10_000_000
DUPLICATE_KEY = 11000

# Each price list (an organization's, or the shared one: organization null) names its types once.
retire_index(TYPES, "name_unique")  # the one catalogue of before: names unique platform-wide
index(TYPES, [("organization", ASCENDING), ("name_lower", ASCENDING)], unique=True, name="organization_name_unique")
index(VEHICLES, "plate_key", unique=True, name="plate_unique")
# One vehicle per driver: "the driver's vehicle" is then never ambiguous.
index(
    VEHICLES,
    "driver_id",
    unique=True,
    name="driver_unique",
    partialFilterExpression={"driver_id": {"$type": "objectId"}},
)
# Driver sockets look their vehicle up by driver on connect and every 30 s. `driver_unique` is
# partial, and a partial index serves only queries that repeat its filter (the MongoDB-wire
# server never uses one): without this index each lookup scans every vehicle.
index(VEHICLES, [("driver_id", ASCENDING), ("organization", ASCENDING)], name="driver_organization")
index(VEHICLES, [("organization", ASCENDING), ("status", ASCENDING)], name="organization_status")
index(VEHICLES, "current_order", name="current_order")
index(GPS_POINTS, [("vehicle_id", ASCENDING), ("ts", ASCENDING)], name="vehicle_ts")

# A tow always costs something (a base price of 0 is refused); a flat-rate type may charge 0 per km.
BASE_PRICE = validate.Range(min=0, max=MAX_PRICE, min_inclusive=False)
PRICE = validate.Range(min=0, max=MAX_PRICE)
NAME = validate.And(validate.Length(min=1, max=100), visible_text)
PLATE = validate.And(validate.Length(min=1, max=20), visible_text)


# --- schemas -------------------------------------------------------------
class VehicleTypeIn(Schema):
    """A kind of car being towed, with its pricing, in one price list."""

    name = fields.String(required=True, validate=NAME)
    base_price = JsonNumber(
        required=True, validate=BASE_PRICE, metadata={"description": "Fixed part, currency units (more than 0)"}
    )
    price_per_km = JsonNumber(required=True, validate=PRICE, metadata={"description": "Currency units per km"})
    organization = Id(
        allow_none=True,
        load_default=None,
        metadata={
            "description": "The organization whose price list it joins; null: the shared catalogue (ADMINs only). "
            "Required for a MANAGER (one of theirs)"
        },
    )


class VehicleTypePatch(Schema):
    """Name and prices; a type stays in the price list it was created in."""

    name = fields.String(validate=NAME)
    base_price = JsonNumber(validate=BASE_PRICE)
    price_per_km = JsonNumber(validate=PRICE)


class VehicleTypeOut(VehicleTypeIn):
    id = Id(attribute="_id", required=True)
    organization = Id(
        allow_none=True, required=True, metadata={"description": "Whose price list; null: the shared catalogue"}
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


VehicleTypeList = list_of(VehicleTypeOut, "VehicleTypeList")


class VehicleTypeQuery(Schema):
    """Filters of the vehicle type list."""

    class Meta:
        unknown = EXCLUDE

    organization = Id(
        metadata={"description": "Only the types an order of this organization may use: its own and the shared ones"}
    )


class VehicleLocation(Schema):
    """A vehicle's last known position, as the GPS ingest left it in Redis."""

    lat = fields.Float(required=True)
    lon = fields.Float(required=True)
    ts = fields.String(allow_none=True, metadata={"description": "When the driver's phone took it (ISO 8601)"})
    speed = fields.Float(allow_none=True)
    heading = fields.Float(allow_none=True)
    accuracy = fields.Float(allow_none=True)


class VehicleIn(Schema):
    """A new tow truck."""

    plate = fields.String(required=True, validate=PLATE)
    model = fields.String(required=True, validate=NAME)
    color = fields.String(
        allow_none=True,
        load_default=None,
        validate=[validate.Length(max=50), visible_text],
        metadata={"description": "What the customer looks for at the roadside"},
    )
    capacity_kg = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=200_000))
    organization = Id(required=True)
    driver_id = Id(allow_none=True, load_default=None, metadata={"description": "A DRIVER member of the organization"})
    status = fields.String(
        load_default=VehicleStatus.OFFLINE.value,
        validate=validate.OneOf(choices(SETTABLE_VEHICLE_STATUSES)),
        metadata={"description": "`busy` is set by assignment only"},
    )


class VehiclePatch(Schema):
    plate = fields.String(validate=PLATE)
    model = fields.String(validate=NAME)
    color = fields.String(allow_none=True, validate=[validate.Length(max=50), visible_text])
    capacity_kg = fields.Integer(strict=True, validate=validate.Range(min=1, max=200_000))
    organization = Id()
    driver_id = Id(allow_none=True)
    status = fields.String(validate=validate.OneOf(choices(SETTABLE_VEHICLE_STATUSES)))


class VehicleOut(Schema):
    id = Id(attribute="_id", required=True)
    plate = fields.String(required=True)
    model = fields.String(required=True)
    color = fields.String(allow_none=True, dump_default=None)
    capacity_kg = fields.Integer(required=True)
    organization = Id(required=True)
    driver_id = Id(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(choices(VehicleStatus)))
    current_order = Id(allow_none=True, required=True, metadata={"description": "The order it is busy with"})
    location = fields.Nested(
        VehicleLocation,
        allow_none=True,
        required=True,
        metadata={"description": "Last known position (null when it never reported)"},
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


VehicleList = list_of(VehicleOut, "VehicleList")


class VehicleQuery(Schema):
    """Filters of the vehicle list."""

    class Meta:
        unknown = EXCLUDE

    organization = Id()
    status = fields.String(validate=validate.OneOf(choices(VehicleStatus)))


class NearbyQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    lat = fields.Float(
        required=True,
        validate=validate.Range(min=-live.GEO_MAX_LAT, max=live.GEO_MAX_LAT),
        metadata={"description": "Latitude within the range Redis GEO can search"},
    )
    lon = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    radius_km = fields.Float(
        required=True, validate=validate.Range(min=0, max=500, min_inclusive=False), metadata={"exclusiveMinimum": True}
    )  # apispec does not carry min_inclusive over


class NearbyVehicle(VehicleOut):
    distance_km = fields.Float(required=True, metadata={"description": "Straight-line distance from the point"})


NearbyVehicleList = list_of(NearbyVehicle, "NearbyVehicleList")


class NearbyTruck(Schema):
    """A truck near a client, as a client sees it: no driver, organization or plate."""

    id = Id(attribute="_id", required=True)
    type = fields.String(attribute="model", required=True, metadata={"description": "The truck's model"})
    location = fields.Nested(
        VehicleLocation, allow_none=True, required=True, metadata={"description": "Last known position"}
    )
    distance_km = fields.Float(required=True, metadata={"description": "Straight-line distance from the point"})


NearbyTruckList = list_of(NearbyTruck, "NearbyTruckList")


class TrackQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    start = fields.AwareDateTime(
        data_key="from",
        default_timezone=UTC,
        metadata={"description": "ISO 8601 (UTC when no offset); default: 24 h before `to`"},
    )
    end = fields.AwareDateTime(
        data_key="to", default_timezone=UTC, metadata={"description": "ISO 8601 (UTC when no offset); default: now"}
    )


class TrackPoint(Schema):
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)
    ts = UtcDateTime(required=True)
    speed = fields.Float(allow_none=True, required=True)
    heading = fields.Float(allow_none=True, required=True)


class VehicleTrack(Schema):
    vehicle_id = Id(required=True)
    points = fields.List(
        fields.Nested(TrackPoint),
        required=True,
        metadata={"description": "Stored GPS points in time order (at most 20 000)"},
    )
    distance_km = fields.Float(required=True, metadata={"description": "Length of the path through the points"})


def plate_key(plate: str) -> str:
    """The plate as compared for uniqueness: upper case, without spaces and dashes."""
    return re.sub(r"[\s\-]+", "", plate).upper()


def _duplicate(exc: DuplicateKeyError, names: dict[str, tuple[str, str]]) -> Conflict:
    text = str(exc.details or exc)
    for index_name, (code, message) in names.items():
        if index_name in text:
            return Conflict(message, code)
    return Conflict("This already exists.")


# --- vehicle types ---------------------------------------------------------
class VehicleTypes:
    """Data access of `vehicle_types`."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[TYPES]

    async def insert(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add a type; a name its price list already uses (case-insensitive) → 409."""
        now = utcnow()
        doc = {"organization": None, **data, "name_lower": data["name"].lower(), "created_at": now, "updated_at": now}
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict("A vehicle type with this name exists in this price list.", "name_taken") from None
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, type_id: ObjectId, scope: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A type by id within the scope, or None."""
        return await self.collection.find_one({"_id": type_id, **(scope or {})})

    async def page(self, query: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """Types matching the query sorted by name, and how many there are."""
        cursor = self.collection.find(query).sort([("name_lower", ASCENDING), ("_id", ASCENDING)])
        return (
            await cursor.skip(page.offset).limit(page.limit).to_list(),
            await self.collection.count_documents(query),
        )

    async def update(self, type_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply changes; None when there is no such type."""
        if "name" in changes:
            changes = {**changes, "name_lower": changes["name"].lower()}
        try:
            return await self.collection.find_one_and_update(
                {"_id": type_id}, {"$set": {**changes, "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            raise Conflict("A vehicle type with this name exists in this price list.", "name_taken") from None


@migration
async def types_without_organization_are_shared(db: AsyncDatabase) -> None:
    """Types from before price lists became per organization belong to the shared catalogue."""
    await db[TYPES].update_many({"organization": {"$exists": False}}, {"$set": {"organization": None}})


# --- vehicles ----------------------------------------------------------------
VEHICLE_DUPLICATES = {
    "plate_unique": ("plate_taken", "A vehicle with this plate exists."),
    "driver_unique": ("driver_taken", "This driver already has a vehicle."),
}


class Vehicles:
    """Data access of `vehicles`; every read and write takes the caller's scope filter."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[VEHICLES]

    async def insert(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add a vehicle; a taken plate or driver → 409."""
        now = utcnow()
        doc = {
            **data,
            "plate_key": plate_key(data["plate"]),
            "current_order": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError as exc:
            raise _duplicate(exc, VEHICLE_DUPLICATES) from None
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, vehicle_id: ObjectId, scope: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A vehicle by id within the scope, or None."""
        return await self.collection.find_one({"_id": vehicle_id, **(scope or {})})

    async def page(
        self, scope: dict[str, Any], filters: dict[str, Any], page: Page
    ) -> tuple[list[dict[str, Any]], int]:
        """Vehicles of the scope matching the filters, by plate, and how many there are."""
        query = {**filters, **scope} if not set(filters) & set(scope) else {"$and": [filters, scope]}
        cursor = self.collection.find(query).sort("plate_key", ASCENDING).skip(page.offset).limit(page.limit)
        return await cursor.to_list(), await self.collection.count_documents(query)

    async def update(
        self, vehicle_id: ObjectId, changes: dict[str, Any], expect: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Compare-and-set: apply changes if the document still matches `expect`; None otherwise."""
        if "plate" in changes:
            changes = {**changes, "plate_key": plate_key(changes["plate"])}
        try:
            return await self.collection.find_one_and_update(
                {"_id": vehicle_id, **expect},
                {"$set": {**changes, "updated_at": utcnow()}},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as exc:
            raise _duplicate(exc, VEHICLE_DUPLICATES) from None

    async def delete(self, vehicle_id: ObjectId, expect: dict[str, Any]) -> bool:
        """Delete if the document still matches `expect`."""
        result = await self.collection.delete_one({"_id": vehicle_id, **expect})
        return result.deleted_count == 1

    async def available(self, scope: dict[str, Any], among: list[ObjectId] | None = None) -> list[dict[str, Any]]:
        """Available vehicles of the scope (optionally only those ids)."""
        query: dict[str, Any] = {"status": VehicleStatus.AVAILABLE, **scope}
        if among is not None:
            query["_id"] = {"$in": among}
        return await self.collection.find(query).to_list()

    async def claim(
        self, vehicle_id: ObjectId, order_id: ObjectId, organization: ObjectId | None
    ) -> dict[str, Any] | None:
        """Atomically make an available vehicle (with a driver) busy with an order; None if it is not available."""
        query: dict[str, Any] = {
            "_id": vehicle_id,
            "status": VehicleStatus.AVAILABLE,
            "driver_id": {"$type": "objectId"},
        }
        if organization is not None:
            query["organization"] = organization
        return await self.collection.find_one_and_update(
            query,
            {"$set": {"status": VehicleStatus.BUSY, "current_order": order_id, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def release(self, vehicle_id: ObjectId, order_id: ObjectId) -> bool:
        """Make a vehicle available again if it is still busy with this order."""
        result = await self.collection.update_one(
            {"_id": vehicle_id, "current_order": order_id},
            {"$set": {"status": VehicleStatus.AVAILABLE, "current_order": None, "updated_at": utcnow()}},
        )
        return result.modified_count == 1


# --- GPS history -------------------------------------------------------------
class GpsHistory:
    """The stored GPS points (`gps_points`): written by the real-time ingest, read for route replay.

    One document per point, `_id` `<driver_id>:<seq>` so that a resent point is stored once;
    read by vehicle and time (the `vehicle_ts` index).
    """

    def __init__(self, db: AsyncDatabase, write_concern: WriteConcern | None = None) -> None:
        collection = db[GPS_POINTS]
        self.collection = collection if write_concern is None else collection.with_options(write_concern=write_concern)

    @staticmethod
    def document(
        driver_id: str, vehicle_id: str | None, order_id: str | None, point: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The stored form of one validated point (`seq`, `lat`, `lon`, `ts`, `speed`, `heading`, `accuracy`)."""
        return {
            "_id": f"{driver_id}:{point['seq']}",
            "driver_id": object_id(driver_id),
            "vehicle_id": object_id(vehicle_id) if vehicle_id else None,
            "order_id": object_id(order_id) if order_id else None,
            "seq": point["seq"],
            "lat": point["lat"],
            "lon": point["lon"],
            "ts": point["ts"],
            "speed": point["speed"],
            "heading": point["heading"],
            "accuracy": point["accuracy"],
        }

    async def add(self, docs: list[dict[str, Any]]) -> None:
        """Store points (`document`s); those already stored, a resend, are skipped."""
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
                raise

    async def between(self, vehicle_id: ObjectId, start: datetime, end: datetime, cap: int) -> list[dict[str, Any]]:
        """A vehicle's points with start ≤ ts ≤ end, in time order, at most `cap` of them (`lat`, `lon`, `ts`,
        `speed`, `heading`; the last two None when unknown)."""
        cursor = (
            self.collection.find(
                {"vehicle_id": vehicle_id, "ts": {"$gte": start, "$lte": end}},
                {"_id": 0, "lat": 1, "lon": 1, "ts": 1, "speed": 1, "heading": 1},
            )
            .sort([("ts", ASCENDING), ("seq", ASCENDING)])
            .limit(cap)
        )
        return [{"speed": None, "heading": None, **point} for point in await cursor.to_list()]


async def organization_exists(db: AsyncDatabase, org_id: ObjectId) -> bool:
    """Whether an organization with this id exists."""
    return await db["organizations"].count_documents({"_id": org_id}, limit=1) == 1
