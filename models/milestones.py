"""Milestone messages to an order's customer (SPEC section 11): the message catalogue and the data
access of `customer_messages`, the outbox the server records each message in before any attempt.

A message's `_id` is `<order id>:<milestone>`, so the database itself keeps it to one per milestone
per order whatever publishes the event twice. Its text is written when it is recorded, so every
attempt sends the same words. Its life:

    pending ──(the worker claims it: locked_until = now + lease)──► handed to the backend ──► sent

A worker killed mid-send leaves it pending with a lease that runs out; the redelivered task (or the
server's sweep) then sends it again with the same id (the SMS payload's `id`, the email's
`Message-ID`), so a gateway that dedupes by it shows the customer one message.

The query builders below are shared by the server (async client) and the worker (sync client).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.storage import index
from dispatch.core.vocabulary import Language, MessageStatus

COLLECTION = "customer_messages"
CATALOGUE = Path(__file__).resolve().parent.parent / "dispatch" / "messages"

index(COLLECTION, [("status", ASCENDING), ("queued_at", ASCENDING)], name="status_queued")


@cache
def catalogue(language: str) -> dict[str, Any]:
    """The message templates of one language (`dispatch/messages/<language>.json`)."""
    chosen = language if language in set(Language) else Language.EN
    loaded: dict[str, Any] = json.loads((CATALOGUE / f"{chosen}.json").read_text(encoding="utf-8"))
    return loaded


def message_id(order_id: Any, milestone: str) -> str:
    """The one id of an order's message of a milestone."""
    return f"{order_id}:{milestone}"


def new_message(
    order_id: Any, milestone: str, channel: str, to: str, subject: str, text: str, language: str, now: datetime
) -> dict[str, Any]:
    """A pending message, its task about to be sent."""
    return {
        "_id": message_id(order_id, milestone),
        "order_id": order_id,
        "milestone": milestone,
        "channel": channel,
        "to": to,
        "subject": subject,
        "text": text,
        "language": language,
        "status": MessageStatus.PENDING,
        "attempts": 0,
        "locked_until": now,
        "queued_at": now,
        "sent_at": None,
        "created_at": now,
    }


def claim_filter(msg_id: str, now: datetime) -> dict[str, Any]:
    """A pending message no worker holds: the one a worker may take."""
    return {"_id": msg_id, "status": MessageStatus.PENDING, "locked_until": {"$lte": now}}


def claim_update(now: datetime, lease: float) -> dict[str, Any]:
    """Hold a message for one attempt."""
    return {"$set": {"locked_until": now + timedelta(seconds=lease)}, "$inc": {"attempts": 1}}


def sent_update(now: datetime) -> dict[str, Any]:
    """The backend took the message."""
    return {"$set": {"status": MessageStatus.SENT, "sent_at": now}}


def lost_filter(now: datetime, queued_before: datetime) -> dict[str, Any]:
    """Pending messages nobody holds whose task seems lost (queued before `queued_before`)."""
    return {"status": MessageStatus.PENDING, "locked_until": {"$lte": now}, "queued_at": {"$lte": queued_before}}


class CustomerMessages:
    """Data access of `customer_messages` (the server's side)."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def exists(self, msg_id: str) -> bool:
        """Whether the message of this milestone was recorded already."""
        return await self.collection.count_documents({"_id": msg_id}, limit=1) == 1

    async def record(self, doc: dict[str, Any]) -> bool:
        """Store a new message; False when its milestone's message exists (nothing to send)."""
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def lost(self, now: datetime, queued_before: datetime, limit: int) -> list[str]:
        """Ids of pending messages whose task seems lost; marked queued again now."""
        cursor = self.collection.find(lost_filter(now, queued_before), {"_id": 1}).limit(limit)
        ids = [doc["_id"] async for doc in cursor]
        if ids:
            await self.collection.update_many({"_id": {"$in": ids}}, {"$set": {"queued_at": now}})
        return ids
