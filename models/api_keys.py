"""API keys of organizations (SPEC section 9): schemas of the API and the data access of `api_keys`.

A key is stored only as the SHA-256 of its text (`hash`, unique): keys are 43 random URL-safe
characters after `dsp_`, far beyond guessing, so a fast hash is the standard (a password hash such
as bcrypt would cost every request a deliberate slowdown and protect nothing more). The first 8
characters (`prefix`) are kept to tell keys apart in lists. A revoked key keeps its document
(`revoked_at` set) so orders and timelines that name it still say which key acted.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from marshmallow import Schema, fields, validate
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.pagination import Page
from dispatch.core.storage import index
from dispatch.core.vocabulary import KeyScope, choices
from models.common import Id, UtcDateTime, list_of, visible_text

COLLECTION = "api_keys"
ACTIVE = {"revoked_at": None}

index(COLLECTION, "hash", unique=True, name="hash_unique")
index(COLLECTION, [("organization", 1), ("created_at", DESCENDING)], name="organization_created")


class ApiKeyIn(Schema):
    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=100), visible_text],
        metadata={"description": "What the key is for (the integration's name)"},
    )
    scopes = fields.List(
        fields.String(validate=validate.OneOf(choices(KeyScope))),
        required=True,
        validate=validate.Length(min=1, max=len(KeyScope)),
        metadata={"description": "What the key may do; at least one"},
    )


class ApiKeyOut(Schema):
    """An API key as its organization's managers see it: never the key itself."""

    id = Id(attribute="_id", required=True)
    organization = Id(required=True)
    name = fields.String(required=True)
    scopes = fields.List(fields.String(validate=validate.OneOf(choices(KeyScope))), required=True)
    prefix = fields.String(required=True, metadata={"description": "The key's first 8 characters, to recognise it"})
    created_by = Id(required=True, metadata={"description": "The manager or admin who created it"})
    created_at = UtcDateTime(required=True)
    last_used_at = UtcDateTime(
        allow_none=True, required=True, metadata={"description": "Last request made with it (to the minute)"}
    )


class ApiKeyCreated(ApiKeyOut):
    """The answer to creating a key: the only time the key is shown."""

    key = fields.String(
        required=True,
        metadata={"description": "`dsp_` + 43 URL-safe characters: send it as `X-API-Key`; shown only now"},
    )


ApiKeyList = list_of(ApiKeyOut, "ApiKeyList")


class ApiKeys:
    """Data access of `api_keys`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a new key (its hash, never its text)."""
        result = await self.collection.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def active_by_hash(self, digest: str) -> dict[str, Any] | None:
        """The unrevoked key with this hash, or None."""
        return await self.collection.find_one({"hash": digest, **ACTIVE})

    async def page(self, organization: ObjectId, page: Page) -> tuple[list[dict[str, Any]], int]:
        """An organization's unrevoked keys, newest first, and how many there are."""
        query = {"organization": organization, **ACTIVE}
        cursor = (
            self.collection.find(query, {"hash": 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip(page.offset)
            .limit(page.limit)
        )
        return await cursor.to_list(), await self.collection.count_documents(query)

    async def revoke(self, organization: ObjectId, key_id: ObjectId, at: Any) -> dict[str, Any] | None:
        """Revoke an unrevoked key of the organization; None when there is none."""
        return await self.collection.find_one_and_update(
            {"_id": key_id, "organization": organization, **ACTIVE},
            {"$set": {"revoked_at": at}},
            return_document=ReturnDocument.AFTER,
        )

    async def touch(self, key_id: ObjectId, at: Any) -> None:
        """Record that the key was used."""
        await self.collection.update_one({"_id": key_id}, {"$set": {"last_used_at": at}})
