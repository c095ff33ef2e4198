"""Geofences (SPEC section 10): schemas of the API and the data access of `geofences` and
`geofence_events` (where each vehicle stands is live state in Redis: dispatch/domain/fence_states.py).

- `geofences`        `{organization, name, shape, created_by, created_at, updated_at}`; `shape` is
                     `{type: circle, center: {lat, lon}, radius_m}` or `{type: polygon, points: [[lat, lon], ...]}`.
- `geofence_events`  one document per enter/exit; the unique index on its identity
                     (geofence, vehicle, event, at) makes a resent or re-judged point raise nothing twice.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from shapely.geometry import Polygon

from dispatch.core.pagination import Page
from dispatch.core.storage import index
from dispatch.core.vocabulary import Crossing, ShapeType, choices
from models.common import Id, JsonNumber, UtcDateTime, list_of, visible_text

GEOFENCES, EVENTS = "geofences", "geofence_events"
MIN_VERTICES, MAX_VERTICES = 3, 500
MAX_RADIUS_M = 100_000
DUPLICATE_KEY = 11000

index(GEOFENCES, [("organization", ASCENDING), ("created_at", DESCENDING)], name="organization_created")
index(
    EVENTS,
    [("geofence_id", ASCENDING), ("vehicle_id", ASCENDING), ("event", ASCENDING), ("at", ASCENDING)],
    unique=True,
    name="identity_unique",
)
index(EVENTS, [("geofence_id", ASCENDING), ("at", DESCENDING)], name="geofence_at")


# --- schemas -------------------------------------------------------------------------
class LatLon(Schema):
    lat = JsonNumber(required=True, validate=validate.Range(min=-90, max=90))
    lon = JsonNumber(required=True, validate=validate.Range(min=-180, max=180))


class Shape(Schema):
    """A circle (`center`, `radius_m`) or a simple polygon (`points`, 3–500 `[lat, lon]` vertices)."""

    type = fields.String(required=True, validate=validate.OneOf(choices(ShapeType)))
    center = fields.Nested(LatLon, metadata={"description": "circle: its centre"})
    radius_m = JsonNumber(
        validate=validate.Range(min=0, max=MAX_RADIUS_M, min_inclusive=False),
        metadata={"description": "circle: its radius in metres (> 0)"},
    )
    points = fields.List(
        fields.List(JsonNumber(), validate=validate.Length(equal=2)),
        validate=validate.Length(min=MIN_VERTICES, max=MAX_VERTICES),
        metadata={"description": "polygon: its vertices `[lat, lon]` in order (closed implicitly), no self-crossing"},
    )

    @validates_schema
    def check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["type"] == ShapeType.CIRCLE:
            missing = [name for name in ("center", "radius_m") if data.get(name) is None]
            if missing:
                raise ValidationError({name: ["Required for a circle."] for name in missing})
            data.pop("points", None)
        else:
            if data.get("points") is None:
                raise ValidationError({"points": ["Required for a polygon."]})
            check_polygon(data["points"])
            data.pop("center", None)
            data.pop("radius_m", None)


def check_polygon(points: list[list[float]]) -> None:
    """422 details unless every vertex is a place on Earth and the ring does not cross itself."""
    if any(not (-90 <= lat <= 90 and -180 <= lon <= 180) for lat, lon in points):
        raise ValidationError({"points": ["Each vertex is [lat, lon] with lat in -90…90 and lon in -180…180."]})
    polygon = Polygon([(lon, lat) for lat, lon in points])
    if polygon.area == 0 or not polygon.is_valid:
        raise ValidationError({"points": ["The polygon crosses itself or encloses no area."]})


class GeofenceIn(Schema):
    organization = Id(required=True, metadata={"description": "The organization whose vehicles it watches"})
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), visible_text])
    shape = fields.Nested(Shape, required=True)


class GeofencePatch(Schema):
    name = fields.String(validate=[validate.Length(min=1, max=200), visible_text])
    shape = fields.Nested(Shape)


class GeofenceOut(Schema):
    id = Id(attribute="_id", required=True)
    organization = Id(required=True)
    name = fields.String(required=True)
    shape = fields.Nested(Shape, required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class GeofenceEventOut(Schema):
    id = Id(attribute="_id", required=True)
    geofence_id = Id(required=True)
    event = fields.String(required=True, validate=validate.OneOf(choices(Crossing)))
    vehicle_id = Id(required=True)
    driver_id = Id(allow_none=True, required=True)
    at = UtcDateTime(required=True, metadata={"description": "The GPS point's own time (`ts`)"})
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)


GeofenceList = list_of(GeofenceOut, "GeofenceList")
GeofenceEventList = list_of(GeofenceEventOut, "GeofenceEventList")


# --- data access ---------------------------------------------------------------------
class Geofences:
    """Data access of the three geofence collections; reads of fences take the caller's scope filter."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[GEOFENCES]
        self.events = db[EVENTS]

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a new geofence."""
        doc["_id"] = (await self.collection.insert_one(doc)).inserted_id
        return doc

    async def get(self, geofence_id: ObjectId, scope: dict[str, Any]) -> dict[str, Any] | None:
        """A geofence within the scope, or None."""
        return await self.collection.find_one({"_id": geofence_id, **scope})

    async def page(self, query: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """Geofences matching the query, newest first, and how many there are."""
        cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return await cursor.skip(page.offset).limit(page.limit).to_list(), await self.collection.count_documents(query)

    async def of_organization(self, organization: ObjectId) -> list[dict[str, Any]]:
        """Every geofence of an organization (what its vehicles' points are judged against)."""
        return await self.collection.find({"organization": organization}).to_list()

    async def update(
        self, geofence_id: ObjectId, scope: dict[str, Any], changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Apply changes within the scope; the updated document or None."""
        return await self.collection.find_one_and_update(
            {"_id": geofence_id, **scope}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def delete(self, geofence_id: ObjectId, scope: dict[str, Any]) -> bool:
        """Delete a geofence within the scope and its events; whether it was there."""
        result = await self.collection.delete_one({"_id": geofence_id, **scope})
        if result.deleted_count:
            await self.events.delete_many({"geofence_id": geofence_id})
        return result.deleted_count == 1

    async def event_page(self, geofence_id: ObjectId, page: Page) -> tuple[list[dict[str, Any]], int]:
        """A geofence's events, newest (by GPS time) first."""
        query = {"geofence_id": geofence_id}
        cursor = self.events.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)])
        return await cursor.skip(page.offset).limit(page.limit).to_list(), await self.events.count_documents(query)

    async def record(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store events; those whose identity is already stored are skipped. Returns the new ones."""
        if not docs:
            return []
        for doc in docs:
            doc["_id"] = ObjectId()
        try:
            await self.events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            refused = {e["index"] for e in errors}
            return [doc for i, doc in enumerate(docs) if i not in refused]
        return docs
