"""Tracking links (SPEC section 11): the public view of an order, written once, and the data access of
`share_links`.

The public view is the one thing a person without an account sees of an order: `TrackView` for
`GET /api/v1/track/{token}`, and `project_frame` (built on the same schemas) for every frame of
`/ws/track/{token}`. Schemas dump only the fields they declare, so a field added to orders, vehicles
or users later stays private unless it is added here.

A link document keeps only the SHA-256 of its token (`token_hash`); the token itself is shown once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from marshmallow import Schema, fields
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.storage import index
from dispatch.core.timeutil import isoformat
from dispatch.core.vocabulary import ENDED_STATUSES
from models.common import Id, UtcDateTime
from models.orders import Place

COLLECTION = "share_links"
GRACE = timedelta(hours=2)  # a link works until this long after its order ends

index(COLLECTION, [("token_hash", ASCENDING)], unique=True, name="token_hash_unique")
index(COLLECTION, [("order_id", ASCENDING)], name="order")


# --- the public view ------------------------------------------------------------------
class WhenText(fields.String):
    """A time as ISO 8601 UTC text, whether it comes as a datetime (a document) or as text (a frame)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, datetime):
            return isoformat(value)
        return None if value is None else str(value)


class TrackEta(Schema):
    target = fields.String(required=True, metadata={"description": "`pickup` or `dropoff`"})
    seconds = fields.Integer(required=True)
    distance_km = fields.Float(required=True)
    computed_at = WhenText(required=True, metadata={"description": "ISO 8601 UTC"})


class TrackLocation(Schema):
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)
    ts = WhenText(allow_none=True, metadata={"description": "When the truck's phone took it (ISO 8601)"})
    speed = fields.Float(allow_none=True)
    heading = fields.Float(allow_none=True)


class TrackOrder(Schema):
    id = Id(required=True)
    status = fields.String(required=True)
    pickup = fields.Nested(Place, required=True)
    dropoff = fields.Nested(Place, required=True)
    eta = fields.Nested(TrackEta, allow_none=True, required=True, metadata={"description": "null while unknown"})


class TrackVehicle(Schema):
    plate = fields.String(required=True)
    model = fields.String(required=True)
    location = fields.Nested(
        TrackLocation, allow_none=True, required=True, metadata={"description": "null until the truck reports"}
    )


class TrackDriver(Schema):
    first_name = fields.String(required=True)


class TrackView(Schema):
    """What a tracking link shows: the order, its truck and its driver's first name, nothing more."""

    order = fields.Nested(TrackOrder, required=True)
    vehicle = fields.Nested(
        TrackVehicle, allow_none=True, required=True, metadata={"description": "null: no truck serves it now"}
    )
    driver = fields.Nested(
        TrackDriver, allow_none=True, required=True, metadata={"description": "null: no driver serves it now"}
    )


class ShareOut(Schema):
    token = fields.String(required=True, metadata={"description": "Shown in this answer only (stored as a hash)"})
    url = fields.String(required=True, metadata={"description": "`PUBLIC_URL/t/<token>`: the tracking page"})
    expires_at = UtcDateTime(
        allow_none=True,
        required=True,
        metadata={"description": "2 h after the order ended; null while the order is active (it ends later)"},
    )


TRACK_ORDER, TRACK_VEHICLE, TRACK_DRIVER = TrackOrder(), TrackVehicle(), TrackDriver()
TRACK_VIEW, TRACK_LOCATION, TRACK_ETA = TrackView(), TrackLocation(), TrackEta()


def public_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """An order (a document or its API form) as the public sees it."""
    shown = {
        "id": order.get("_id", order.get("id")),
        "status": order["status"],
        "pickup": order["pickup"],
        "dropoff": order["dropoff"],
        "eta": order.get("eta"),
    }
    return dict(TRACK_ORDER.dump(shown))


def track_view(
    order: Mapping[str, Any],
    vehicle: Mapping[str, Any] | None,
    driver: Mapping[str, Any] | None,
    location: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The whole public view of an order, its truck (with its live position) and its driver."""
    shown_vehicle = None if vehicle is None else {**vehicle, "location": location}
    return dict(TRACK_VIEW.dump({"order": public_order(order), "vehicle": shown_vehicle, "driver": driver}))


def project_frame(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """A frame of `order:<id>` as a tracking socket sends it, or None when the public sees nothing of it."""
    kind = data.get("type")
    if kind == "order" and isinstance(data.get("order"), Mapping):
        return {"type": "order", "order": public_order(data["order"])}
    if kind == "location":
        return {"type": "location", "location": TRACK_LOCATION.dump(data)}
    if kind == "eta":
        return {"type": "eta", "eta": TRACK_ETA.dump(data)}
    return None


# --- links ---------------------------------------------------------------------------
def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def expires_at(order: Mapping[str, Any]) -> datetime | None:
    """When an order's links stop working: GRACE after it ended; None while it is active."""
    if order.get("status") not in ENDED_STATUSES:
        return None
    ended: datetime = order.get("ended_at") or order["updated_at"]
    return ended + GRACE


class ShareLinks:
    """Data access of `share_links`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def insert(self, order_id: ObjectId, hashed: str, created_by: Any, now: datetime) -> None:
        """Store a new link of an order (its token's hash only)."""
        await self.collection.insert_one(
            {"token_hash": hashed, "order_id": order_id, "created_by": created_by, "created_at": now}
        )

    async def order_of(self, hashed: str) -> ObjectId | None:
        """The order a token's link is for, or None (unknown or revoked)."""
        doc = await self.collection.find_one({"token_hash": hashed}, {"order_id": 1})
        return None if doc is None else doc["order_id"]

    async def revoke(self, order_id: ObjectId) -> int:
        """Delete every link of an order; how many there were."""
        return (await self.collection.delete_many({"order_id": order_id})).deleted_count
