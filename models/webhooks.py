"""Webhooks: schemas of the API, the payloads receivers get, and the data access of `webhooks` and
`webhook_deliveries` (the outbox).

A delivery document is written before any attempt is made. Its life:

    pending ──(2xx)──────────────────────────────► delivered
       │  └─(anything else: attempts+1, next_attempt_at = now + backoff)─┐
       │                                                                 ▼
       └────────────(attempts reach the maximum)───────────────────► failed

`key` (webhook id + order id) and `seq` (the order's revision) keep one order's deliveries to one
endpoint in the order its events happened: a delivery is attempted only when no delivery with the
same key and a lower `seq` is still pending. `locked_until` is the lease of the worker attempting it,
and `queued` says a task was sent for it (the sweeper re-sends those it presumes lost).

The query builders and the signature below are shared by the server (async client) and the worker
(sync client), so each rule is written once.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, validate, validates
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.netguard import MAX_URL_LENGTH
from dispatch.core.pagination import Page
from dispatch.core.storage import index
from dispatch.core.vocabulary import (
    WEBHOOK_EVENT_FILTERS,
    DeliveryStatus,
    EventFilter,
    WebhookEvent,
    choices,
)
from models.common import SCHEMAS, Id, JsonBoolean, UtcDateTime, list_of, visible_text
from models.orders import OrderOut
from models.payments import PaymentOut, RatingOut
from models.waybills import WaybillOut

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Dispatch-Signature"
EVENT_HEADER = "X-Dispatch-Event"
DELIVERY_HEADER = "X-Dispatch-Delivery"
MAX_WEBHOOKS_PER_ORG = 50

index(WEBHOOKS, [("organization", ASCENDING), ("created_at", DESCENDING)], name="organization_created")
index(DELIVERIES, [("webhook_id", ASCENDING), ("created_at", DESCENDING)], name="webhook_created")
index(DELIVERIES, [("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="status_due")
index(DELIVERIES, [("key", ASCENDING), ("status", ASCENDING), ("seq", ASCENDING)], name="key_status_seq")


# --- schemas of the API ---------------------------------------------------------------
def _events_field(**options: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(choices(WEBHOOK_EVENT_FILTERS))),
        validate=validate.Length(min=1, max=len(WebhookEvent)),
        metadata={"description": 'Event types to deliver, or `["*"]` for every one'},
        **options,
    )


class _EventsRule(Schema):
    @validates("events")
    def all_alone(self, value: list[str], **kwargs: Any) -> None:
        if EventFilter.ALL in value and len(value) > 1:
            raise ValidationError('"*" stands alone: it already means every event type.')


class WebhookIn(_EventsRule):
    organization = Id(required=True, metadata={"description": "The organization whose events are delivered"})
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={"description": "http(s) URL the deliveries are POSTed to"},
    )
    events = _events_field(required=True)
    description = fields.String(load_default="", validate=[validate.Length(max=500), visible_text])


class WebhookPatch(_EventsRule):
    url = fields.String(validate=validate.Length(min=1, max=MAX_URL_LENGTH))
    events = _events_field()
    description = fields.String(validate=[validate.Length(max=500), visible_text])
    active = JsonBoolean(metadata={"description": "`true` re-activates it (and clears its failure count)"})


class WebhookOut(Schema):
    id = Id(attribute="_id", required=True)
    organization = Id(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(validate=validate.OneOf(choices(WEBHOOK_EVENT_FILTERS))), required=True)
    description = fields.String(required=True)
    active = fields.Boolean(
        required=True, metadata={"description": "false: nothing is delivered (set after consecutive failures)"}
    )
    consecutive_failures = fields.Integer(required=True, metadata={"description": "Failed deliveries in a row"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class WebhookCreated(WebhookOut):
    secret = fields.String(
        required=True,
        metadata={
            "description": "Signs every delivery (HMAC-SHA256 key, used as the whole text). Shown in this answer only."
        },
    )


WebhookList = list_of(WebhookOut, "WebhookList")


class DeliveryOut(Schema):
    id = Id(attribute="_id", required=True)
    event_id = fields.String(required=True, metadata={"description": "The event's `id` (the same on redelivery)"})
    event_type = fields.String(required=True, validate=validate.OneOf(choices(WebhookEvent)))
    status = fields.String(required=True, validate=validate.OneOf(choices(DeliveryStatus)))
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(allow_none=True, required=True, metadata={"description": "HTTP status"})
    last_error = fields.String(allow_none=True, required=True)
    next_attempt_at = UtcDateTime(allow_none=True, required=True, metadata={"description": "null once finished"})
    delivered_at = UtcDateTime(allow_none=True, required=True)
    created_at = UtcDateTime(required=True)


DeliveryList = list_of(DeliveryOut, "DeliveryList")


# --- what receivers get (documented as `callbacks` of POST /webhooks) ---------------------
class Actor(Schema):
    type = fields.String(required=True, metadata={"description": "`user`"})
    id = Id(required=True)


class OrderEventData(Schema):
    order = fields.Nested(OrderOut, required=True, metadata={"description": "The order as the API shows it"})
    from_ = fields.String(data_key="from", allow_none=True, required=True, metadata={"description": "Status before"})
    to = fields.String(required=True, metadata={"description": "Status after"})
    action = fields.String(required=True, metadata={"description": "What was asked (`declined` moves to `new`)"})
    actor = fields.Nested(Actor, required=True, metadata={"description": "Who did it"})
    reason = fields.String(metadata={"description": "Given with a status change"})


class EtaData(Schema):
    order_id = Id(required=True)
    target = fields.String(required=True, metadata={"description": "`pickup` or `dropoff`"})
    seconds = fields.Integer(required=True)
    distance_km = fields.Float(required=True)
    computed_at = UtcDateTime(required=True)
    source = fields.String(required=True, metadata={"description": "`routing` or `estimate`"})


class ArrivingData(Schema):
    order = fields.Nested(OrderOut, required=True)
    target = fields.String(required=True, metadata={"description": "`pickup` or `dropoff`"})
    at = UtcDateTime(required=True)


class GeofenceData(Schema):
    event = fields.String(required=True, metadata={"description": "`enter` or `exit`"})
    geofence_id = Id(required=True)
    vehicle_id = Id(required=True)
    driver_id = Id(allow_none=True, required=True)
    at = UtcDateTime(required=True, metadata={"description": "The GPS point's own time"})
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)


class WaybillEventData(Schema):
    waybill = fields.Nested(WaybillOut, required=True)
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)


class PaymentEventData(Schema):
    payment = fields.Nested(PaymentOut, required=True)


class RatingEventData(Schema):
    rating = fields.Nested(RatingOut, required=True)


class PingData(Schema):
    webhook_id = Id(required=True)
    message = fields.String(required=True)


def _envelope(event: WebhookEvent, data: type[Schema]) -> type[Schema]:
    """The body of one event type's deliveries, named in the document (`WebhookOrderCreated`)."""
    name = "Webhook" + "".join(part.title() for part in event.replace("_", ".").split("."))
    schema = Schema.from_dict(
        {
            "id": fields.String(required=True, metadata={"description": "The event's id: receivers dedupe by it"}),
            "type": fields.String(required=True, metadata={"description": f"`{event}`"}),
            "created_at": UtcDateTime(required=True, metadata={"description": "When the event happened"}),
            "organization": Id(required=True),
            "data": fields.Nested(data, required=True),
        },
        name=name,
    )
    SCHEMAS.append(schema)
    return schema


PAYLOAD_DATA: dict[WebhookEvent, type[Schema]] = {
    WebhookEvent.ORDER_CREATED: OrderEventData,
    WebhookEvent.ORDER_ASSIGNED: OrderEventData,
    WebhookEvent.ORDER_STATUS_CHANGED: OrderEventData,
    WebhookEvent.ORDER_ETA: EtaData,
    WebhookEvent.ORDER_ARRIVING: ArrivingData,
    WebhookEvent.GEOFENCE_ENTER: GeofenceData,
    WebhookEvent.GEOFENCE_EXIT: GeofenceData,
    WebhookEvent.WAYBILL_STATUS_CHANGED: WaybillEventData,
    WebhookEvent.PAYMENT_CREATED: PaymentEventData,
    WebhookEvent.RATING_CREATED: RatingEventData,
    WebhookEvent.PING: PingData,
}
PAYLOADS = {event: _envelope(event, data) for event, data in PAYLOAD_DATA.items()}

_ORG, _ORDER, _DRIVER, _VEHICLE = (
    "665f1c2a9d1e8b0012a0c0de",
    "665f1c2a9d1e8b0012a0d001",
    "665f1c2a9d1e8b0012a0e002",
    "665f1c2a9d1e8b0012a0f003",
)
_AT = "2026-06-01T09:30:00.000Z"
_EXAMPLE_ORDER = {
    "id": _ORDER,
    "client_id": "665f1c2a9d1e8b0012a0b004",
    "created_by": "665f1c2a9d1e8b0012a0b004",
    "organization": _ORG,
    "pickup": {"lat": 55.752, "lon": 37.6175, "address": "Red Square 1"},
    "dropoff": {"lat": 55.7601, "lon": 37.6186, "address": "Teatralny proezd 5"},
    "vehicle": {
        "type_id": "665f1c2a9d1e8b0012a0a005",
        "type_name": "Sedan",
        "make": "Lada",
        "model": "Vesta",
        "plate": "A123BC77",
    },
    "notes": "",
    "source": "api",
    "external_ref": "MC-123",
    "customer": {"name": "Ivan Petrov", "phone": "+79161234567", "email": None, "language": "ru"},
    "distance_km": 0.9,
    "price_estimate": 2450.0,
    "eta": None,
    "status": "assigned",
    "vehicle_id": _VEHICLE,
    "driver_id": _DRIVER,
    "created_at": _AT,
    "updated_at": _AT,
}
_EXAMPLE_ETA = {"target": "pickup", "seconds": 420, "distance_km": 3.1, "computed_at": _AT, "source": "routing"}
_ACTOR = {"type": "user", "id": "665f1c2a9d1e8b0012a0b006"}
EXAMPLE_DATA: dict[WebhookEvent, dict[str, Any]] = {
    WebhookEvent.ORDER_CREATED: {
        "order": {**_EXAMPLE_ORDER, "status": "new", "vehicle_id": None, "driver_id": None},
        "from": None,
        "to": "new",
        "action": "created",
        "actor": _ACTOR,
    },
    WebhookEvent.ORDER_ASSIGNED: {
        "order": _EXAMPLE_ORDER,
        "from": "new",
        "to": "assigned",
        "action": "assigned",
        "actor": _ACTOR,
    },
    WebhookEvent.ORDER_STATUS_CHANGED: {
        "order": {**_EXAMPLE_ORDER, "status": "en_route", "eta": _EXAMPLE_ETA},
        "from": "accepted",
        "to": "en_route",
        "action": "en_route",
        "actor": {"type": "user", "id": _DRIVER},
    },
    WebhookEvent.ORDER_ETA: {
        "order_id": _ORDER,
        "target": "pickup",
        "seconds": 420,
        "distance_km": 3.1,
        "computed_at": _AT,
        "source": "estimate",
    },
    WebhookEvent.ORDER_ARRIVING: {"order": {**_EXAMPLE_ORDER, "status": "en_route"}, "target": "pickup", "at": _AT},
    WebhookEvent.GEOFENCE_ENTER: {
        "event": "enter",
        "geofence_id": "665f1c2a9d1e8b0012a0c007",
        "vehicle_id": _VEHICLE,
        "driver_id": _DRIVER,
        "at": _AT,
        "lat": 55.75,
        "lon": 37.61,
    },
    WebhookEvent.GEOFENCE_EXIT: {
        "event": "exit",
        "geofence_id": "665f1c2a9d1e8b0012a0c007",
        "vehicle_id": _VEHICLE,
        "driver_id": _DRIVER,
        "at": _AT,
        "lat": 55.76,
        "lon": 37.63,
    },
    WebhookEvent.WAYBILL_STATUS_CHANGED: {
        "waybill": {
            "id": "665f1c2a9d1e8b0012a0c008",
            "driver_id": _DRIVER,
            "vehicle_id": _VEHICLE,
            "organization": _ORG,
            "date": "2026-06-01",
            "status": "on_route",
            "odometer_start": 120345.0,
            "odometer_end": None,
            "fuel_start": 60.0,
            "fuel_end": None,
            "departed_at": _AT,
            "returned_at": None,
            "route_notes": "",
            "order_ids": [_ORDER],
            "created_at": _AT,
            "updated_at": _AT,
        },
        "from": "open",
        "to": "on_route",
    },
    WebhookEvent.PAYMENT_CREATED: {
        "payment": {
            "id": "665f1c2a9d1e8b0012a0c009",
            "order_id": _ORDER,
            "amount": 2450.0,
            "method": "card",
            "status": "recorded",
            "created_by": _DRIVER,
            "created_at": _AT,
        }
    },
    WebhookEvent.RATING_CREATED: {
        "rating": {
            "id": "665f1c2a9d1e8b0012a0c00a",
            "order_id": _ORDER,
            "driver_id": _DRIVER,
            "client_id": "665f1c2a9d1e8b0012a0b004",
            "score": 5,
            "comment": "Quick and careful.",
            "created_at": _AT,
        }
    },
    WebhookEvent.PING: {"webhook_id": "665f1c2a9d1e8b0012a0c00b", "message": "Test delivery from dispatch."},
}


def example_body(event: WebhookEvent) -> dict[str, Any]:
    """A whole example delivery body of one event type."""
    return {
        "id": "665f1c2a9d1e8b0012a1e00c",
        "type": str(event),
        "created_at": _AT,
        "organization": _ORG,
        "data": EXAMPLE_DATA[event],
    }


def _header(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
        "example": example,
    }


DELIVERY_HEADERS = [
    _header(EVENT_HEADER, "The event type (the body's `type`).", "order.assigned"),
    _header(DELIVERY_HEADER, "This delivery's id (a redelivery has a new one; the event `id` stays).", _ORDER),
    _header(
        SIGNATURE_HEADER,
        '`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`: recompute it over the raw bytes '
        "received, compare in constant time, and refuse old `t` values to stop replays.",
        "t=1780306200,v1=5d41402abc4b2a76b9719d911017c592a8e6f9c0e0a1f6c7d7e1b9f0a3c4d5e6",
    ),
]


def callbacks() -> dict[str, Any]:
    """The OpenAPI `callbacks` of POST /webhooks: one per event type, with its schema, an example and headers."""
    return {
        str(event): {
            "{$request.body#/url}": {
                "post": {
                    "summary": f"`{event}` delivered to the webhook's URL",
                    "description": (
                        "A 2xx answer within the timeout (10 s) is delivered; anything else is retried with "
                        "exponential backoff. Deliveries may repeat: dedupe by the body's `id`."
                    ),
                    "parameters": DELIVERY_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": schema.__name__, "example": example_body(event)}},
                    },
                    "responses": {
                        "2XX": {"description": "Delivered."},
                        "default": {"description": "Not delivered: retried later."},
                    },
                }
            }
        }
        for event, schema in PAYLOADS.items()
    }


# --- shared rules (server and worker) ------------------------------------------------------
def new_secret(token: str) -> str:
    """The webhook's signing secret as shown once: the prefix and random URL-safe text."""
    return SECRET_PREFIX + token


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Dispatch-Signature` value: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def order_key(webhook_id: ObjectId, subject: str) -> str:
    """The ordering key of a webhook's deliveries about one subject (`order:<id>`)."""
    return f"{webhook_id}:{subject}"


def new_delivery(
    webhook_id: ObjectId,
    organization: ObjectId,
    event_id: str,
    event_type: str,
    body: str,
    now: datetime,
    key: str | None = None,
    seq: int = 0,
) -> dict[str, Any]:
    """A pending delivery of one event to one webhook, due now, with a task about to be sent for it."""
    return {
        "webhook_id": webhook_id,
        "organization": organization,
        "event_id": event_id,
        "event_type": event_type,
        "body": body,
        "key": key,
        "seq": seq,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "last_status_code": None,
        "last_error": None,
        "next_attempt_at": now,
        "locked_until": now,
        "queued": True,
        "delivered_at": None,
        "created_at": now,
    }


def claim_filter(delivery_id: ObjectId, now: datetime) -> dict[str, Any]:
    """A pending delivery that is due and that no worker holds: the one a worker may take."""
    return {
        "_id": delivery_id,
        "status": DeliveryStatus.PENDING,
        "next_attempt_at": {"$lte": now},
        "locked_until": {"$lte": now},
    }


def earlier_pending(delivery: dict[str, Any]) -> dict[str, Any] | None:
    """Deliveries that must go before this one (same key, lower seq, still pending); None if unordered."""
    if delivery.get("key") is None:
        return None
    return {"key": delivery["key"], "status": DeliveryStatus.PENDING, "seq": {"$lt": delivery["seq"]}}


def next_in_line(delivery: dict[str, Any]) -> dict[str, Any] | None:
    """The pending deliveries after this one of the same key (the first goes once this one is done)."""
    if delivery.get("key") is None:
        return None
    return {"key": delivery["key"], "status": DeliveryStatus.PENDING, "seq": {"$gt": delivery["seq"]}}


def due_filter(now: datetime, lost_before: datetime) -> dict[str, Any]:
    """Deliveries the sweeper sends a task for: due retries with none queued, and queued ones whose
    task seems lost (unclaimed since `lost_before`); never one a worker holds now."""
    return {
        "status": DeliveryStatus.PENDING,
        "locked_until": {"$lte": now},
        "$or": [
            {"queued": False, "next_attempt_at": {"$lte": now}},
            {"queued": True, "next_attempt_at": {"$lte": lost_before}},
        ],
    }


def queued_update(now: datetime) -> dict[str, Any]:
    """The update of a delivery a task was just sent for: due now, the task on its way."""
    return {"$set": {"queued": True, "next_attempt_at": now}}


# --- data access (the server's async client) ------------------------------------------------
class Webhooks:
    """Data access of `webhooks` and `webhook_deliveries`; reads take the caller's scope filter."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[WEBHOOKS]
        self.deliveries = db[DELIVERIES]

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a new webhook."""
        result = await self.collection.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def count(self, organization: ObjectId) -> int:
        """How many webhooks an organization has."""
        return await self.collection.count_documents({"organization": organization})

    async def get(self, webhook_id: ObjectId, scope: dict[str, Any]) -> dict[str, Any] | None:
        """A webhook within the scope, or None."""
        return await self.collection.find_one({"_id": webhook_id, **scope})

    async def page(self, query: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """Webhooks matching the query, newest first, and how many there are."""
        cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        docs = await cursor.skip(page.offset).limit(page.limit).to_list()
        return docs, await self.collection.count_documents(query)

    async def of_organization(self, organization: ObjectId) -> list[dict[str, Any]]:
        """An organization's active webhooks, as the event listener needs them (no secret)."""
        cursor = self.collection.find({"organization": organization, "active": True}, {"events": 1, "organization": 1})
        return await cursor.to_list()

    async def update(
        self, webhook_id: ObjectId, scope: dict[str, Any], changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Apply changes to a webhook within the scope; the updated document, or None."""
        return await self.collection.find_one_and_update(
            {"_id": webhook_id, **scope}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def delete(self, webhook_id: ObjectId, scope: dict[str, Any]) -> bool:
        """Delete a webhook within the scope and its delivery log; whether it was there."""
        result = await self.collection.delete_one({"_id": webhook_id, **scope})
        if result.deleted_count:
            await self.deliveries.delete_many({"webhook_id": webhook_id})
        return result.deleted_count == 1

    async def take_disabled_notice(self) -> dict[str, Any] | None:
        """A webhook the worker just set inactive whose managers are not told yet (claimed: told once)."""
        return await self.collection.find_one_and_update(
            {"disabled_notice": True}, {"$set": {"disabled_notice": False}}, return_document=ReturnDocument.AFTER
        )

    # --- deliveries --------------------------------------------------------------------
    async def record(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store new deliveries (before any attempt)."""
        if docs:
            result = await self.deliveries.insert_many(docs)
            for doc, new_id in zip(docs, result.inserted_ids, strict=True):
                doc["_id"] = new_id
        return docs

    async def deliveries_of(self, webhook_id: ObjectId, page: Page) -> tuple[list[dict[str, Any]], int]:
        """A webhook's deliveries, newest first, and how many there are."""
        query = {"webhook_id": webhook_id}
        cursor = self.deliveries.find(query, {"body": 0}).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        docs = await cursor.skip(page.offset).limit(page.limit).to_list()
        return docs, await self.deliveries.count_documents(query)

    async def delivery(self, webhook_id: ObjectId, delivery_id: ObjectId) -> dict[str, Any] | None:
        """One delivery of a webhook, or None."""
        return await self.deliveries.find_one({"_id": delivery_id, "webhook_id": webhook_id})

    async def due(self, now: datetime, lost_before: datetime, limit: int) -> list[dict[str, Any]]:
        """Deliveries the sweeper should send a task for (see `due_filter`), oldest due first."""
        cursor = self.deliveries.find(due_filter(now, lost_before), {"body": 0}).sort("next_attempt_at", ASCENDING)
        return await cursor.limit(limit).to_list()

    async def waits_for_earlier(self, delivery: dict[str, Any]) -> bool:
        """Whether an earlier delivery of the same key is still pending (this one must wait)."""
        query = earlier_pending(delivery)
        return query is not None and await self.deliveries.count_documents(query, limit=1) == 1

    async def mark_queued(self, ids: list[ObjectId], now: datetime) -> None:
        """Note that tasks were sent for these deliveries just now."""
        await self.deliveries.update_many(
            {"_id": {"$in": ids}, "status": DeliveryStatus.PENDING, "locked_until": {"$lte": now}}, queued_update(now)
        )
