"""Remembered answers of requests sent with an `Idempotency-Key` (collection `idempotency`).

One document per (user, key): the fingerprint of the first request, then its answer. The
unique index makes the first insert the only winner, so two concurrent identical requests
run the operation once; the TTL index forgets keys after 24 hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow

COLLECTION = "idempotency"
LIFETIME = timedelta(hours=24)

index(COLLECTION, [("user_id", 1), ("key", 1)], unique=True, name="user_key_unique")
index(COLLECTION, "created_at", expireAfterSeconds=int(LIFETIME.total_seconds()), name="expire_after_24h")


class IdempotencyRecords:
    """Data access of `idempotency`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def claim(self, user_id: ObjectId, key: str, fingerprint: str) -> dict[str, Any] | None:
        """Record a first request for this key (None), or return the record already there."""
        while True:
            doc = {"user_id": user_id, "key": key, "fingerprint": fingerprint, "done": False, "created_at": utcnow()}
            try:
                await self.collection.insert_one(doc)
                return None
            except DuplicateKeyError:
                found = await self.collection.find_one({"user_id": user_id, "key": key})
            if found is not None:  # else it was released meanwhile: try to be first again
                return found

    async def complete(self, user_id: ObjectId, key: str, status: int, body: bytes) -> None:
        """Keep the answer of the request that claimed the key."""
        await self.collection.update_one(
            {"user_id": user_id, "key": key}, {"$set": {"done": True, "status": status, "body": Binary(body)}}
        )

    async def release(self, user_id: ObjectId, key: str, created_at: datetime | None = None) -> None:
        """Forget a key (its request failed, or the record outlived its 24 hours)."""
        query: dict[str, Any] = {"user_id": user_id, "key": key}
        if created_at is not None:
            query["created_at"] = created_at
        await self.collection.delete_one(query)
