"""Organizations: schemas of the API and the data access of the `organizations` collection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from marshmallow import Schema, fields, validate
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.errors import Conflict
from dispatch.core.security import random_code
from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from models.common import Id, UtcDateTime, list_of, visible_text

COLLECTION = "organizations"

index(
    COLLECTION,
    "name_lower",
    unique=True,
    name="organization_name_unique",
    partialFilterExpression={"name_lower": {"$type": "string"}},
)
index(
    COLLECTION,
    "invite_code",
    unique=True,
    name="organization_invite_code_unique",
    partialFilterExpression={"invite_code": {"$type": "string"}},
)

# An organization's invite code is longer than a user's (8), so the two kinds never collide.
INVITE_CODE_LENGTH = 10
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes (0/O, 1/I)

NAME = validate.And(
    validate.Length(min=1, max=120), visible_text, validate.Regexp(r"\s*\S", error="Must not be blank.")
)
DESCRIPTION = validate.Length(max=2000)


class MemberOut(Schema):
    """A member as an organization shows it: who, not how to reach them."""

    id = Id(attribute="_id", required=True)
    username = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    category = fields.String(required=True)


class OrganizationOut(Schema):
    """An organization; `members` only for callers who may see them (ADMIN, its own MANAGERs and DRIVERs)."""

    id = Id(attribute="_id", required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    members = fields.List(fields.Nested(MemberOut), metadata={"description": "Users of this organization"})
    member_count = fields.Integer(metadata={"description": "How many users belong to it"})
    invite_code = fields.String(
        allow_none=True,
        metadata={"description": "Its managers and ADMINs only: a driver or client who registers with it joins"},
    )


OrganizationList = list_of(OrganizationOut, "OrganizationList")


class OrganizationIn(Schema):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=DESCRIPTION)


class OrganizationPatch(Schema):
    name = fields.String(validate=NAME)
    description = fields.String(validate=DESCRIPTION)


def _name_taken() -> Conflict:
    return Conflict("An organization with this name already exists.", "organization_name_taken", {"field": "name"})


class Organizations:
    """Data access of the `organizations` collection."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def insert(self, name: str, description: str) -> dict[str, Any]:
        """Create an organization; a name already used (in any letter case) → 409."""
        now = utcnow()
        doc = {
            "name": name.strip(),
            "name_lower": name.strip().lower(),
            "description": description,
            "invite_code": new_invite_code(),
            "created_at": now,
            "updated_at": now,
        }
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise _name_taken() from None
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, org_id: ObjectId) -> dict[str, Any] | None:
        """One organization, or None."""
        return await self.collection.find_one({"_id": org_id})

    async def find(self, query: dict[str, Any], offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of the organizations matching the (scope) query, by name, and the total."""
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("name_lower", 1), ("_id", 1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def by_invite_code(self, code: str) -> dict[str, Any] | None:
        """The organization whose invite code this is (any letter case), or None."""
        code = code.strip().upper()
        if len(code) != INVITE_CODE_LENGTH:
            return None
        return await self.collection.find_one({"invite_code": code})

    async def new_invite_code(self, org_id: ObjectId) -> dict[str, Any] | None:
        """Replace the organization's invite code (the old one stops working); None when it is gone."""
        return await self.collection.find_one_and_update(
            {"_id": org_id},
            {"$set": {"invite_code": new_invite_code(), "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def existing(self, org_ids: Iterable[ObjectId]) -> set[ObjectId]:
        """Which of these ids are organizations."""
        wanted = list(set(org_ids))
        if not wanted:
            return set()
        return {doc["_id"] async for doc in self.collection.find({"_id": {"$in": wanted}}, {"_id": 1})}

    async def update(self, org_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply changes (a new name must stay unique); None when the organization is gone."""
        changes = dict(changes)
        if "name" in changes:
            changes["name"] = changes["name"].strip()
            changes["name_lower"] = changes["name"].lower()
        try:
            return await self.collection.find_one_and_update(
                {"_id": org_id}, {"$set": {**changes, "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            raise _name_taken() from None


def new_invite_code() -> str:
    """A fresh organization invite code."""
    return random_code(INVITE_CODE_LENGTH, INVITE_ALPHABET)


def show(doc: dict[str, Any], members: list[dict[str, Any]] | None, *, manages: bool = False) -> dict[str, Any]:
    """An organization as the API shows it, members given as user documents; left out when None
    (the caller may not see them). The invite code only to those who manage it."""
    shown = {"description": "", **doc}
    shown.pop("invite_code", None)
    if members is not None:
        shown.update(members=members, member_count=len(members))
    if manages:
        shown["invite_code"] = doc.get("invite_code")
    return ORGANIZATION_OUT.dump(shown)


ORGANIZATION_OUT = OrganizationOut()
