"""Invitations to join an organization: schemas of the API and the data access of the `invitations` collection.

A MANAGER never adds a user directly (SPEC section 13): they invite a user id, an email address or a
phone number, and the user who owns it accepts or declines. Email and phone invitations are matched
when the user reads their invitations, so they also reach someone who registers later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.errors import ApiError
from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import InvitationStatus, choices
from models.common import Id, UtcDateTime, list_of
from models.users import OrganizationRef, orgs_of, phone_field_value

COLLECTION = "invitations"
TTL = timedelta(days=7)
TARGETS = ("user_id", "email", "phone")

# One pending invitation per organization and invitee: a second invite returns the first one.
index(
    COLLECTION,
    [("organization", 1), ("target", 1)],
    unique=True,
    name="pending_invitation_unique",
    partialFilterExpression={"pending": True},
)
index(COLLECTION, [("organization", 1), ("created_at", DESCENDING)], name="organization_created")
index(COLLECTION, "user_id", name="user_id")
index(COLLECTION, "email_lower", name="email_lower")
index(COLLECTION, "phone", name="phone")


class InvitationIn(Schema):
    """Whom to invite: exactly one of a user id, an email address or a phone number."""

    user_id = Id(metadata={"description": "A user's id"})
    email = fields.Email(validate=validate.Length(max=254))
    phone = fields.String(validate=validate.Length(max=32), metadata={"description": "E.164, or national with region"})
    region = fields.String(
        validate=validate.Length(equal=2),
        metadata={"description": "Region code (RU, DE, …) for a national phone number"},
    )

    @validates_schema
    def check(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [name for name in TARGETS if data.get(name) not in (None, "")]
        if len(given) != 1:
            raise ValidationError(
                {name: ["Give exactly one of user_id, email or phone."] for name in (given or TARGETS)}
            )
        if "phone" in given:
            data["phone"] = phone_field_value(data)


class InvitationOut(Schema):
    """An invitation as its organization's managers and its invitee see it."""

    id = Id(attribute="_id", required=True)
    organization = fields.Nested(OrganizationRef, required=True)
    user_id = Id(allow_none=True, required=True, metadata={"description": "As invited (null: by email or phone)"})
    email = fields.String(allow_none=True, required=True)
    phone = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(choices(InvitationStatus)))
    created_at = UtcDateTime(required=True)
    expires_at = UtcDateTime(required=True)
    responded_at = UtcDateTime(allow_none=True, required=True)


InvitationList = list_of(InvitationOut, "InvitationList")


def target_of(data: dict[str, Any]) -> str:
    """The invitee key of a loaded `InvitationIn`: `user:<id>`, `email:<lowercase>` or `phone:<E.164>`."""
    if data.get("user_id") is not None:
        return f"user:{data['user_id']}"
    if data.get("email"):
        return f"email:{data['email'].lower()}"
    return f"phone:{data['phone']}"


def addressed_to(user: dict[str, Any]) -> dict[str, Any]:
    """The query of invitations meant for this user: by id, or by an address they have verified."""
    ways: list[dict[str, Any]] = [{"user_id": user["_id"]}]
    if user.get("email_lower") and user.get("email_verified"):
        ways.append({"email_lower": user["email_lower"]})
    if user.get("phone") and user.get("phone_verified"):
        ways.append({"phone": user["phone"]})
    return {"$or": ways}


def _open(now: Any) -> dict[str, Any]:
    return {"status": InvitationStatus.PENDING, "expires_at": {"$gt": now}}


# Concurrent invitations of one person race on the unique index of pending ones: the losers match the winner.
UPSERT_ATTEMPTS = 3


class Invitations:
    """Data access of the `invitations` collection."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def invite(self, org_id: ObjectId, data: dict[str, Any], invited_by: ObjectId) -> dict[str, Any]:
        """The open invitation of this invitee to this organization: the pending one, else a new one."""
        target, now = target_of(data), utcnow()
        await self.collection.update_many(
            {"organization": org_id, "target": target, "pending": True, "expires_at": {"$lte": now}},
            {"$set": {"status": InvitationStatus.EXPIRED, "pending": False}},
        )
        doc = {
            "organization": org_id,
            "target": target,
            "user_id": data.get("user_id"),
            "email": data.get("email"),
            "email_lower": (data.get("email") or "").lower() or None,
            "phone": data.get("phone"),
            "invited_by": invited_by,
            "status": InvitationStatus.PENDING,
            "pending": True,
            "created_at": now,
            "expires_at": now + TTL,
            "responded_at": None,
        }
        pending = {"organization": org_id, "target": target, "pending": True}
        for _ in range(UPSERT_ATTEMPTS):
            try:
                found = await self.collection.find_one_and_update(
                    pending, {"$setOnInsert": doc}, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:  # a concurrent invite of the same person inserted it first: match it now
                found = await self.collection.find_one(pending)
            if found is not None:
                return found
        raise ApiError(409, "invitation_conflict", "The invitation changed while it was made; send it again.")

    async def of_organization(self, org_id: ObjectId, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of the organization's open invitations, newest first, and the total."""
        query = {"organization": org_id, **_open(utcnow())}
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def of_user(self, user: dict[str, Any], offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of the open invitations meant for this user, newest first, and the total."""
        query = {**addressed_to(user), **_open(utcnow()), "organization": {"$nin": orgs_of(user)}}
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def addressed(self, invitation_id: ObjectId, user: dict[str, Any]) -> dict[str, Any] | None:
        """One invitation meant for this user (whatever its status), or None."""
        return await self.collection.find_one({"_id": invitation_id, **addressed_to(user)})

    async def answer(self, invitation: dict[str, Any], status: str) -> dict[str, Any] | None:
        """Move an open invitation to `accepted` or `declined` (compare-and-set); None when it is no longer open."""
        now = utcnow()
        return await self.collection.find_one_and_update(
            {"_id": invitation["_id"], **_open(now)},
            {"$set": {"status": status, "pending": False, "responded_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def settle(self, org_id: ObjectId, user: dict[str, Any]) -> None:
        """Close the user's other open invitations to an organization they have just joined."""
        await self.collection.update_many(
            {"organization": org_id, "pending": True, **addressed_to(user)},
            {"$set": {"status": InvitationStatus.ACCEPTED, "pending": False, "responded_at": utcnow()}},
        )

    async def revoke(self, org_id: ObjectId, invitation_id: ObjectId) -> dict[str, Any] | None:
        """Withdraw an open invitation of the organization; None when there is no such open one."""
        return await self.collection.find_one_and_update(
            {"_id": invitation_id, "organization": org_id, **_open(utcnow())},
            {"$set": {"status": InvitationStatus.REVOKED, "pending": False, "responded_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )


async def present(db: AsyncDatabase[Any], docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Invitations as the API shows them: the organization as `{id, name}`, lapsed ones as `expired`."""
    org_ids = list({doc["organization"] for doc in docs})
    names = {org["_id"]: org["name"] async for org in db["organizations"].find({"_id": {"$in": org_ids}}, {"name": 1})}
    now = utcnow()
    return [
        INVITATION_OUT.dump(
            {
                **doc,
                "organization": {"id": doc["organization"], "name": names.get(doc["organization"], "")},
                "status": (
                    InvitationStatus.EXPIRED
                    if doc["status"] == InvitationStatus.PENDING and doc["expires_at"] <= now
                    else doc["status"]
                ),
            }
        )
        for doc in docs
    ]


INVITATION_OUT = InvitationOut()
