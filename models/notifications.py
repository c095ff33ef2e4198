"""Notifications: schemas of the API and the data access of the `notifications` collection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from marshmallow import EXCLUDE, Schema, fields
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import Category
from models.common import SCHEMAS, Id, UtcDateTime

COLLECTION = "notifications"

index(COLLECTION, [("user_id", 1), ("created_at", DESCENDING)], name="user_created")
index(COLLECTION, [("user_id", 1), ("read", 1)], name="user_read")


class NotificationOut(Schema):
    """Something that happened which concerns the user."""

    id = Id(attribute="_id", required=True)
    type = fields.String(
        required=True, metadata={"description": "What it is about: `order`, `organization` or `webhook`"}
    )
    event = fields.String(
        required=True,
        metadata={
            "description": "`created`, `assigned` or `status_changed`; `member_joined` (an invitation was accepted); "
            "`webhook_disabled` (a webhook failed too often)"
        },
    )
    title = fields.String(required=True)
    body = fields.String(required=True)
    order_id = Id(allow_none=True, required=True)
    data = fields.Dict(required=True, metadata={"description": "Facts of the event: `status`, `from`, `to`"})
    read = fields.Boolean(required=True)
    read_at = UtcDateTime(allow_none=True, required=True)
    created_at = UtcDateTime(required=True)


class NotificationList(Schema):
    """The list envelope, plus how many of the caller's notifications are unread."""

    items = fields.List(fields.Nested(NotificationOut), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    unread = fields.Integer(required=True, metadata={"description": "Unread notifications of the caller (all pages)"})


class NotificationFilters(Schema):
    class Meta:
        unknown = EXCLUDE  # the query string also carries limit and offset

    unread = fields.Boolean(metadata={"description": "true: only unread ones"})


class NotificationsMarked(Schema):
    marked = fields.Integer(required=True, metadata={"description": "How many were unread and are now read"})


SCHEMAS.append(NotificationList)


def new_notification(
    user_id: ObjectId, kind: str, event: str, title: str, body: str, order_id: ObjectId | None, data: dict[str, Any]
) -> dict[str, Any]:
    """A notification document ready to insert."""
    return {
        "user_id": user_id,
        "type": kind,
        "event": event,
        "title": title,
        "body": body,
        "order_id": order_id,
        "data": data,
        "read": False,
        "read_at": None,
        "created_at": utcnow(),
    }


class Notifications:
    """Data access of the `notifications` collection; every read and write is keyed by its owner."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]
        self.users = db["users"]

    async def insert_many(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store new notifications."""
        if docs:
            result = await self.collection.insert_many(docs)
            for doc, new_id in zip(docs, result.inserted_ids, strict=False):
                doc["_id"] = new_id
        return docs

    async def find(
        self, user_id: ObjectId, unread_only: bool, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the user's notifications, newest first, and the total."""
        query: dict[str, Any] = {"user_id": user_id, **({"read": False} if unread_only else {})}
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def count_unread(self, user_id: ObjectId) -> int:
        """How many of the user's notifications are unread."""
        return await self.collection.count_documents({"user_id": user_id, "read": False})

    async def mark_read(self, user_id: ObjectId, notification_id: ObjectId) -> dict[str, Any] | None:
        """Mark one of the user's notifications read (kept as first read); None when it is not theirs."""
        now = utcnow()
        doc = await self.collection.find_one_and_update(
            {"_id": notification_id, "user_id": user_id, "read": False},
            {"$set": {"read": True, "read_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return doc or await self.collection.find_one({"_id": notification_id, "user_id": user_id})

    async def mark_all_read(self, user_id: ObjectId) -> int:
        """Mark every unread notification of the user read; how many were."""
        result = await self.collection.update_many(
            {"user_id": user_id, "read": False}, {"$set": {"read": True, "read_at": utcnow()}}
        )
        return result.modified_count

    async def managers_of(self, org_id: ObjectId) -> list[ObjectId]:
        """Active managers of an organization (they hear about its new orders)."""
        cursor = self.users.find({"organizations": org_id, "category": Category.MANAGER, "is_active": True}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]


def show(doc: dict[str, Any]) -> dict[str, Any]:
    """A notification as the API shows it."""
    return NOTIFICATION_OUT.dump(doc)


def show_many(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Notifications as the API shows them."""
    return [show(doc) for doc in docs]


NOTIFICATION_OUT = NotificationOut()
