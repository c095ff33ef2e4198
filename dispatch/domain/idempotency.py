"""`Idempotency-Key`: the same key and request within 24 hours gets the first answer again.

The same key with a different request (method, path or body) → 409 `idempotency_key_reused`.
A request that fails is forgotten, so the client may retry it with the same key. A repeat
that arrives while the first is still running waits for its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import jsonutil
from dispatch.core.errors import Conflict, ValidationFailed
from dispatch.core.timeutil import utcnow
from models.idempotency import LIFETIME, IdempotencyRecords

HEADER = "Idempotency-Key"
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII without spaces, like Stripe's keys
WAIT_STEP = 0.05
WAIT_LIMIT = 10.0

Operation = Callable[[], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body bytes; `replayed` when it is a remembered one."""

    status: int
    body: bytes
    replayed: bool = False


def check_key(key: str) -> str:
    """The key if well-formed; 422 otherwise."""
    if not KEY.match(key):
        raise ValidationFailed({HEADER: ["1 to 255 printable ASCII characters without spaces."]})
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path and body bytes."""
    digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


class Idempotency:
    """The remembered answers of requests sent with an `Idempotency-Key`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.records = IdempotencyRecords(db)

    async def once(self, user_id: ObjectId, key: str, print_: str, operation: Operation) -> Answer:
        """Run the operation for the first request with this key; later ones get its answer."""
        records = self.records
        waited = 0.0
        while True:
            found = await records.claim(user_id, key, print_)
            if found is None:
                return await _run(records, user_id, key, operation)
            if utcnow() - found["created_at"] > LIFETIME:  # the TTL monitor runs only now and then
                await records.release(user_id, key, found["created_at"])
                continue
            if found["fingerprint"] != print_:
                raise Conflict("This Idempotency-Key was used for another request.", "idempotency_key_reused")
            if found.get("done"):
                return Answer(found["status"], bytes(found["body"]), replayed=True)
            if waited >= WAIT_LIMIT:
                raise Conflict(
                    "A request with this Idempotency-Key is still running; retry later.", "idempotency_key_in_use"
                )
            await asyncio.sleep(WAIT_STEP)
            waited += WAIT_STEP


async def _run(records: IdempotencyRecords, user_id: ObjectId, key: str, operation: Operation) -> Answer:
    try:
        status, data = await operation()
    except BaseException:
        await asyncio.shield(records.release(user_id, key))
        raise
    body = jsonutil.dumps(data)
    await records.complete(user_id, key, status, body)
    return Answer(status, body)
