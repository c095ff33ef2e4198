"""Orders (tow jobs): schemas of the API and the data access of the `orders` collection.

An order document keeps its timeline (`timeline`: `{type, from, to, actor_id, at, reason?,
vehicle_id?, actor_type?}`) inside itself, so a status change and its timeline entry are one write.
The state machine itself lives in dispatch/domain/orders.py.

Orders from integrations (SPEC section 9) carry `source: "api"`, `created_by` = the API key's id,
and may carry `external_ref` (the integrator's own id, unique per organization: a unique partial
index keeps it so under concurrency) and `customer` (a motorist without an account).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from bson import ObjectId
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.errors import Conflict
from dispatch.core.pagination import Page
from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import (
    STATUS_REQUESTS,
    EtaSource,
    EtaTarget,
    Language,
    OrderEvent,
    OrderSource,
    OrderStatus,
    Principal,
    choices,
)
from models.common import Id, JsonBoolean, JsonNumber, UtcDateTime, list_of, visible_text
from models.users import phone_field_value
from models.vehicles import VehicleLocation

COLLECTION = "orders"
# What `POST /orders/{id}/status` accepts (`assigned` comes from `/assign`; `declined` returns the order to `new`).
WITHOUT_TIMELINE = {"timeline": 0}

index(COLLECTION, [("client_id", 1), ("created_at", DESCENDING)], name="client_created")
index(COLLECTION, [("driver_id", 1), ("created_at", DESCENDING)], name="driver_created")
index(COLLECTION, [("organization", 1), ("status", 1), ("created_at", DESCENDING)], name="organization_status_created")
index(COLLECTION, [("status", 1), ("created_at", DESCENDING)], name="status_created")
# The integrator's id is unique per organization; orders without one are left out of the index.
index(
    COLLECTION,
    [("organization", 1), ("external_ref", 1)],
    unique=True,
    name="organization_external_ref_unique",
    partialFilterExpression={"external_ref": {"$type": "string"}},
)
EXTERNAL_REF = validate.Length(min=1, max=100)


# --- schemas -------------------------------------------------------------------
class Place(Schema):
    lat = JsonNumber(required=True, validate=validate.Range(min=-90, max=90))
    lon = JsonNumber(required=True, validate=validate.Range(min=-180, max=180))
    address = fields.String(required=True, validate=validate.Length(min=1, max=500))


class TowedCarIn(Schema):
    """The client's car to be towed."""

    type_id = Id(required=True, metadata={"description": "A vehicle type (prices the tow)"})
    make = fields.String(required=True, validate=[validate.Length(min=1, max=100), visible_text])
    model = fields.String(required=True, validate=[validate.Length(min=1, max=100), visible_text])
    plate = fields.String(required=True, validate=[validate.Length(min=1, max=20), visible_text])
    color = fields.String(allow_none=True, load_default=None, validate=[validate.Length(max=50), visible_text])


class TowedCarOut(TowedCarIn):
    type_name = fields.String(required=True, metadata={"description": "The vehicle type's name when ordered"})


class CustomerIn(Schema):
    """The motorist an order is for when they have no account (orders from integrations, phone orders)."""

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), visible_text])
    phone = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=32),
        metadata={"description": "E.164, or national with `region`; SMS about the tow go here"},
    )
    region = fields.String(
        load_only=True,
        validate=validate.Length(equal=2),
        metadata={"description": "Region code (RU, DE, …) for a national phone number"},
    )
    email = fields.Email(allow_none=True, load_default=None, validate=validate.Length(max=254))
    language = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(choices(Language)),
        metadata={"description": "The language messages to the customer are written in"},
    )

    @validates_schema
    def check(self, data: dict[str, Any], **kwargs: Any) -> None:
        data["phone"] = phone_field_value(data)
        data.pop("region", None)


class CustomerOut(Schema):
    name = fields.String(required=True)
    phone = fields.String(allow_none=True, required=True)
    email = fields.String(allow_none=True, required=True)
    language = fields.String(allow_none=True, required=True, validate=validate.OneOf(choices(Language)))


class OrderIn(Schema):
    organization = Id(
        allow_none=True,
        metadata={
            "description": "The fleet to serve it. Required for a MANAGER (one of theirs); for a client, when "
            "omitted, the organization of the nearest available truck within 50 km (else none: "
            "the ADMINs' pool)"
        },
    )
    client_id = Id(
        metadata={
            "description": "MANAGER/ADMIN ordering on behalf of a client (a BASE user); "
            "instead, `customer` for a motorist without an account. API keys never name one"
        }
    )
    pickup = fields.Nested(Place, required=True)
    dropoff = fields.Nested(Place, required=True)
    vehicle = fields.Nested(TowedCarIn, required=True)
    notes = fields.String(load_default="", validate=validate.Length(max=2000))
    external_ref = fields.String(
        allow_none=True,
        validate=[EXTERNAL_REF, visible_text],
        metadata={
            "description": "The integrator's own id of the order (API keys, MANAGERs, ADMINs); unique per "
            "organization: a second order with it → 409 `duplicate_external_ref`"
        },
    )
    customer = fields.Nested(
        CustomerIn,
        allow_none=True,
        metadata={
            "description": "The motorist, when they have no account (API keys; MANAGERs and ADMINs instead of "
            "`client_id`)"
        },
    )


class EtaOut(Schema):
    """When the order's truck should reach its target, as last computed from its GPS stream."""

    target = fields.String(
        required=True,
        validate=validate.OneOf(choices(EtaTarget)),
        metadata={"description": "`pickup` (accepted, en route) or `dropoff` (in progress)"},
    )
    seconds = fields.Integer(required=True, metadata={"description": "Drive time left"})
    distance_km = fields.Float(required=True, metadata={"description": "Drive distance left"})
    computed_at = UtcDateTime(required=True)
    source = fields.String(
        required=True,
        validate=validate.OneOf(choices(EtaSource)),
        metadata={"description": "`routing`: the routing server's drive; `estimate`: straight line × route factor"},
    )


class MeetingTruck(Schema):
    plate = fields.String(required=True)
    model = fields.String(required=True)
    color = fields.String(allow_none=True, required=True)


class MeetingDriver(Schema):
    first_name = fields.String(required=True)
    rating = fields.Float(allow_none=True, required=True, metadata={"description": "Average score (1–5)"})


class OrderOut(Schema):
    id = Id(attribute="_id", required=True)
    client_id = Id(
        allow_none=True, required=True, metadata={"description": "The client's account (null: a `customer` order)"}
    )
    created_by = Id(required=True, metadata={"description": "The user who created it, or the API key (`source: api`)"})
    source = fields.String(
        required=True,
        dump_default=OrderSource.APP.value,
        validate=validate.OneOf(choices(OrderSource)),
        metadata={"description": "`api`: created with an organization's API key; `app`: by a person"},
    )
    external_ref = fields.String(allow_none=True, required=True, dump_default=None)
    customer = fields.Nested(CustomerOut, allow_none=True, required=True, dump_default=None)
    organization = Id(allow_none=True, required=True)
    pickup = fields.Nested(Place, required=True)
    dropoff = fields.Nested(Place, required=True)
    vehicle = fields.Nested(TowedCarOut, required=True)
    notes = fields.String(required=True)
    distance_km = fields.Float(
        required=True, metadata={"description": "Pickup → dropoff: the drive distance, or straight line × route factor"}
    )
    price_estimate = fields.Float(
        required=True, metadata={"description": "base_price + price_per_km × distance_km, currency units"}
    )
    status = fields.String(required=True, validate=validate.OneOf(choices(OrderStatus)))
    vehicle_id = Id(allow_none=True, required=True, metadata={"description": "The assigned tow truck"})
    driver_id = Id(allow_none=True, required=True)
    eta = fields.Nested(
        EtaOut,
        allow_none=True,
        required=True,
        dump_default=None,
        metadata={"description": "While accepted, en route or in progress (once the truck reported a position)"},
    )
    truck = fields.Nested(
        MeetingTruck,
        allow_none=True,
        metadata={
            "description": "The client's own view (GET /orders/{id}) only: the truck to look for (null: none yet)"
        },
    )
    driver = fields.Nested(
        MeetingDriver,
        allow_none=True,
        metadata={"description": "The client's own view (GET /orders/{id}) only: who drives it (null: none yet)"},
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


OrderList = list_of(OrderOut, "OrderList")


class OrderQuery(Schema):
    """Filters of the order list."""

    class Meta:
        unknown = EXCLUDE

    status = fields.String(validate=validate.OneOf(choices(OrderStatus)))
    driver = Id(metadata={"description": "Driver id"})
    organization = Id()
    client = Id(metadata={"description": "Client id"})
    external_ref = fields.String(
        validate=EXTERNAL_REF, metadata={"description": "The order with this integrator's id (`external_ref`)"}
    )
    start = fields.AwareDateTime(data_key="from", default_timezone=UTC, metadata={"description": "Created at or after"})
    end = fields.AwareDateTime(data_key="to", default_timezone=UTC, metadata={"description": "Created at or before"})


class StatusIn(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(choices(STATUS_REQUESTS)),
        metadata={"description": "The next status; `declined` (driver) returns an assigned order to `new`"},
    )
    reason = fields.String(validate=validate.Length(max=500))


class AssignIn(Schema):
    vehicle_id = Id(metadata={"description": "This truck"})
    auto = JsonBoolean(metadata={"description": "`true`: the nearest available truck of the order's organization"})

    @validates_schema
    def one_way(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("vehicle_id" in data) == bool(data.get("auto")):
            raise ValidationError("Give either `vehicle_id` or `auto: true`.", "vehicle_id")


class TimelineEvent(Schema):
    type = fields.String(required=True, validate=validate.OneOf(choices(OrderEvent)))
    from_ = fields.String(data_key="from", attribute="from", allow_none=True, required=True)
    to = fields.String(required=True)
    actor_id = Id(required=True)
    at = UtcDateTime(required=True)
    reason = fields.String()
    vehicle_id = Id(metadata={"description": "On `assigned`: the truck"})
    target = fields.String(
        validate=validate.OneOf(choices(EtaTarget)), metadata={"description": "On `arriving`: pickup or dropoff"}
    )
    actor_type = fields.String(
        validate=validate.OneOf(choices(Principal)),
        metadata={"description": "`api_key` when an organization's API key acted (`actor_id` is the key's id)"},
    )


OrderEventList = list_of(TimelineEvent, "OrderEventList")


class OrderTrack(Schema):
    order_id = Id(required=True)
    status = fields.String(required=True)
    vehicle_id = Id(allow_none=True, required=True)
    location = fields.Nested(
        VehicleLocation,
        allow_none=True,
        required=True,
        metadata={"description": "The assigned truck's live position while it serves the order"},
    )
    distance_to_pickup_km = fields.Float(allow_none=True, required=True)


def timeline_event(kind: str, before: str | None, after: str, actor_id: ObjectId, **extra: Any) -> dict[str, Any]:
    """One timeline entry."""
    return {
        "type": kind,
        "from": before,
        "to": after,
        "actor_id": actor_id,
        "at": utcnow(),
        **{k: v for k, v in extra.items() if v is not None},
    }


# --- data access -------------------------------------------------------------------
class Orders:
    """Data access of `orders`; reads take the caller's scope filter."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a new order; an `external_ref` the organization already used → 409 `duplicate_external_ref`."""
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(
                "An order of this organization already has this external_ref.",
                "duplicate_external_ref",
                {"external_ref": doc.get("external_ref")},
            ) from None
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, order_id: ObjectId, scope: dict[str, Any]) -> dict[str, Any] | None:
        """An order (without its timeline) within the scope, or None."""
        return await self.collection.find_one({"_id": order_id, **scope}, WITHOUT_TIMELINE)

    async def exists(self, query: dict[str, Any]) -> bool:
        """Whether any order matches the query."""
        return await self.collection.count_documents(query, limit=1) == 1

    async def start_paid_total(self, order_id: ObjectId, cents: int) -> None:
        """Give an order from before payment totals its `paid_cents` (what its payments sum to), once."""
        await self.collection.update_one(
            {"_id": order_id, "paid_cents": {"$exists": False}}, {"$set": {"paid_cents": cents}}
        )

    async def add_paid(self, order_id: ObjectId, cents: int, status: str, cap_cents: int) -> bool:
        """Atomically add to a `status` order's `paid_cents` if the total stays within `cap_cents`."""
        result = await self.collection.update_one(
            {"_id": order_id, "status": status, "paid_cents": {"$lte": cap_cents - cents}},
            {"$inc": {"paid_cents": cents}},
        )
        return result.modified_count == 1

    async def take_back_paid(self, order_id: ObjectId, cents: int) -> None:
        """Undo `add_paid` (the payment it made room for was not stored)."""
        await self.collection.update_one({"_id": order_id}, {"$inc": {"paid_cents": -cents}})

    async def timeline(self, order_id: ObjectId, scope: dict[str, Any]) -> list[dict[str, Any]] | None:
        """An order's timeline, oldest first; None when the order is not in the scope."""
        doc = await self.collection.find_one({"_id": order_id, **scope}, {"timeline": 1})
        return None if doc is None else doc.get("timeline", [])

    async def page(self, query: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """Orders matching the query, newest first, and how many there are."""
        cursor = (
            self.collection.find(query, WITHOUT_TIMELINE)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip(page.offset)
            .limit(page.limit)
        )
        return await cursor.to_list(), await self.collection.count_documents(query)

    async def move(
        self, order_id: ObjectId, expect: dict[str, Any], changes: dict[str, Any], event: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Compare-and-set: apply changes and append the timeline event in one write, if the order still
        matches `expect` (its status at least); None when it does not (someone else moved it first).
        Each move counts up the order's `revision`, so its events can be put in the order they happened."""
        return await self.collection.find_one_and_update(
            {"_id": order_id, **expect},
            {"$set": {**changes, "updated_at": event["at"]}, "$push": {"timeline": event}, "$inc": {"revision": 1}},
            projection=WITHOUT_TIMELINE,
            return_document=ReturnDocument.AFTER,
        )
