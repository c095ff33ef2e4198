"""Reading users for administration: filtered lists in a scope, organization members, referrals.

Writes to users still go through `models.users.Users.update` (it drops the Redis cache entry).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from marshmallow import Schema, fields, validate
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.vocabulary import Category, choices
from models.common import Id, JsonBoolean, UtcDateTime, list_of
from models.users import COLLECTION, UserOut, orgs_of

HIDDEN = {"password_hash": 0}
SEARCHED_FIELDS = ("username", "email", "phone", "first_name", "last_name")
ORDER = [("username_lower", 1), ("_id", 1)]

UserList = list_of(UserOut, "UserList")


class UserFilter(Schema):
    """Query filters of `GET /users`."""

    category = fields.String(validate=validate.OneOf(choices(Category)))
    organization = Id(metadata={"description": "An organization id"})
    q = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Part of the username, email, phone, first or last name (any case)"},
    )


class ReferralOut(Schema):
    """Someone who joined with my invite code: who, not how to reach them."""

    id = Id(attribute="_id", required=True)
    username = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    created_at = UtcDateTime(required=True, metadata={"description": "When they signed up"})


ReferralList = list_of(ReferralOut, "ReferralList")
REFERRAL_OUT = ReferralOut()


class InviteIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))


class UserDirectory:
    """Queries on the `users` collection that administration screens need."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def search(
        self, scope: dict[str, Any], filters: dict[str, Any], offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of users matching the filters within the caller's scope query."""
        query = _search_query(scope, filters)
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query, HIDDEN).sort(ORDER).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def members(self, org_ids: Iterable[ObjectId]) -> dict[ObjectId, list[dict[str, Any]]]:
        """The users of each organization, by username, in one query."""
        wanted = list(set(org_ids))
        out: dict[ObjectId, list[dict[str, Any]]] = {oid: [] for oid in wanted}
        if not wanted:
            return out
        async for doc in self.collection.find({"organizations": {"$in": wanted}}, HIDDEN).sort(ORDER):
            for oid in orgs_of(doc):
                if oid in out:
                    out[oid].append(doc)
        return out

    async def by_invite_code(self, code: str) -> dict[str, Any] | None:
        """The owner of an invite code (any letter case), or None."""
        return await self.collection.find_one({"invite_code": code.strip().upper()}, {"_id": 1})

    async def referrals(self, user_id: ObjectId, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of the users who applied this user's invite code, newest first, and the total."""
        query = {"invited_by": user_id}
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query, HIDDEN).sort([("created_at", -1), ("_id", -1)]).skip(offset)
        return await cursor.limit(limit).to_list(), total


def _search_query(scope: dict[str, Any], filters: dict[str, Any]) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [scope] if scope else []
    if "organization" in filters:
        conditions.append({"organizations": filters["organization"]})
    if "category" in filters:
        conditions.append({"category": filters["category"]})
    if filters.get("q"):
        # user text is matched literally, never as a pattern
        pattern = {"$regex": re.escape(filters["q"]), "$options": "i"}
        conditions.append({"$or": [{field: pattern} for field in SEARCHED_FIELDS]})
    return {"$and": conditions} if conditions else {}


class UserAdminPatch(Schema):
    """What `PATCH /users/{id}` may change (ADMIN: all three; MANAGER: organizations within their own)."""

    category = fields.String(validate=validate.OneOf(choices(Category)))
    is_active = JsonBoolean(metadata={"description": "false ends every session of the account at once"})
    organizations = fields.List(
        Id(),
        validate=validate.Length(max=200),
        metadata={"description": "The full list of the user's organization ids"},
    )
