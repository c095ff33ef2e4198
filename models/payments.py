"""Payments and ratings of orders: schemas of the API and the data access of `payments` and `ratings`."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, validate, validates
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.errors import Conflict
from dispatch.core.pagination import Page
from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import PaymentMethod, choices
from models.common import Id, JsonNumber, UtcDateTime, list_of

PAYMENTS = "payments"
RATINGS = "ratings"
MAX_AMOUNT = 10_000_000

index(PAYMENTS, [("order_id", ASCENDING), ("created_at", ASCENDING)], name="order_created")
index(RATINGS, "order_id", unique=True, name="order_unique")  # one rating per order
index(RATINGS, "driver_id", name="driver")


class PaymentIn(Schema):
    amount = JsonNumber(
        required=True,
        validate=validate.Range(min=0, max=MAX_AMOUNT, min_inclusive=False),
        metadata={"description": "Currency units, at most 2 decimals"},
    )
    method = fields.String(required=True, validate=validate.OneOf(choices(PaymentMethod)))

    @validates("amount")
    def cents(self, value: float, **kwargs: Any) -> None:
        if abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValidationError("At most 2 decimals.")


class PaymentOut(Schema):
    id = Id(attribute="_id", required=True)
    order_id = Id(required=True)
    amount = fields.Float(required=True)
    method = fields.String(required=True, validate=validate.OneOf(choices(PaymentMethod)))
    status = fields.String(required=True, metadata={"description": "`recorded`"})
    created_by = Id(required=True)
    created_at = UtcDateTime(required=True)


PaymentList = list_of(PaymentOut, "PaymentList")


class RatingIn(Schema):
    score = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=5))
    comment = fields.String(load_default="", validate=validate.Length(max=2000))


class RatingOut(Schema):
    id = Id(attribute="_id", required=True)
    order_id = Id(required=True)
    driver_id = Id(required=True)
    client_id = Id(required=True)
    score = fields.Integer(required=True)
    comment = fields.String(required=True)
    created_at = UtcDateTime(required=True)


class Payments:
    """Data access of `payments`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[PAYMENTS]

    async def insert(self, order_id: ObjectId, data: dict[str, Any], created_by: ObjectId) -> dict[str, Any]:
        """Record a payment of an order."""
        doc = {
            "order_id": order_id,
            "amount": round(data["amount"], 2),
            "method": data["method"],
            "status": "recorded",
            "created_by": created_by,
            "created_at": utcnow(),
        }
        result = await self.collection.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def total_cents(self, order_id: ObjectId) -> int:
        """What an order's recorded payments sum to, in cents."""
        return sum(
            round(doc["amount"] * 100)
            for doc in await self.collection.find({"order_id": order_id}, {"amount": 1}).to_list()
        )

    async def of_order(self, order_id: ObjectId, page: Page) -> tuple[list[dict[str, Any]], int]:
        """An order's payments, oldest first, and how many there are."""
        query = {"order_id": order_id}
        cursor = self.collection.find(query).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return await cursor.skip(page.offset).limit(page.limit).to_list(), await self.collection.count_documents(query)


class Ratings:
    """Data access of `ratings`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[RATINGS]

    async def insert(self, order: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Record the rating of an order; a second one → 409."""
        doc = {
            "order_id": order["_id"],
            "driver_id": order["driver_id"],
            "client_id": order["client_id"],
            "score": data["score"],
            "comment": data.get("comment", ""),
            "created_at": utcnow(),
        }
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict("This order is already rated.", "already_rated") from None
        doc["_id"] = result.inserted_id
        return doc
