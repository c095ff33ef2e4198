"""Joining an organization by invitation: the invitee accepts, becomes a member, its managers are told."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import ratelimit
from dispatch.core.errors import Conflict, ValidationFailed
from dispatch.core.events import Event, EventBus
from dispatch.core.vocabulary import Category, InvitationStatus
from dispatch.settings import Settings
from models.invitations import Invitations
from models.notifications import Notifications, new_notification, show
from models.organizations import Organizations
from models.users import Users

# Invitations one account may send per hour: enough to onboard a fleet, too few to flood people's lists
# (a self-registered MANAGER may create many organizations). `DISPATCH_RATE_LIMITS` may override it.
SENT_LIMIT = {"invitations_sent": (100, 3600)}

# Who may join an organization with its invite code at registration; a MANAGER (who would read every
# member's personal data) joins only by an invitation addressed to them.
JOIN_BY_CODE = (Category.BASE, Category.DRIVER)


async def count_sent(redis: aioredis.Redis, settings: Settings, inviter: ObjectId) -> None:
    """Count one invitation against its sender's hourly limit (429 past it)."""
    await ratelimit.hit(redis, {**SENT_LIMIT, **settings.rate_limit_table}, "invitations_sent", str(inviter))


async def organization_of_code(db: AsyncDatabase[Any], data: dict[str, Any]) -> dict[str, Any] | None:
    """The organization a registration joins through its invite code (the code is then taken out of
    `data`); None when the code is no organization's (it may be a user's referral code)."""
    code = data.get("invite_code")
    org = await Organizations(db).by_invite_code(code) if code else None
    if org is None:
        return None
    if data.get("category") not in JOIN_BY_CODE:
        raise ValidationFailed(
            {"invite_code": ["An organization's code is for drivers and clients; a manager joins by invitation."]}
        )
    del data["invite_code"]
    return org


class Joining:
    """Accepting and declining invitations on behalf of their invitee."""

    def __init__(self, db: AsyncDatabase[Any], users: Users, events: EventBus) -> None:
        self.db = db
        self.invitations = Invitations(db)
        self.users = users
        self.events = events

    async def accept(self, invitation: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        """Make the invitee a member of the inviting organization and tell its managers."""
        answered = await self._answer(invitation, InvitationStatus.ACCEPTED)
        org_id = answered["organization"]
        member = await self.users.update(user["_id"], {}, extra={"$addToSet": {"organizations": org_id}}) or user
        await self.invitations.settle(org_id, member)
        await self.tell_managers(org_id, member)
        return answered

    async def decline(self, invitation: dict[str, Any]) -> dict[str, Any]:
        """Refuse an invitation; the organization's managers see it leave their pending list."""
        return await self._answer(invitation, InvitationStatus.DECLINED)

    async def _answer(self, invitation: dict[str, Any], status: str) -> dict[str, Any]:
        answered = await self.invitations.answer(invitation, status)
        if answered is None:  # answered, revoked or lapsed meanwhile: the invitee may know which
            raise Conflict(
                "This invitation is no longer open.",
                "invitation_not_open",
                {
                    "status": invitation["status"]
                    if invitation["status"] != InvitationStatus.PENDING
                    else InvitationStatus.EXPIRED
                },
            )
        return answered

    async def tell_managers(self, org_id: Any, member: dict[str, Any]) -> None:
        """A notification, stored and pushed live, to each active manager of the organization."""
        org = await self.db["organizations"].find_one({"_id": org_id}, {"name": 1}) or {"name": ""}
        who = " ".join(filter(None, (member.get("first_name"), member.get("last_name")))) or member["username"]
        store = Notifications(self.db)
        docs = await store.insert_many(
            [
                new_notification(
                    manager,
                    "organization",
                    "member_joined",
                    "A new member joined",
                    f"{who} accepted the invitation to {org['name']}.",
                    None,
                    {"organization": str(org_id), "user_id": str(member["_id"])},
                )
                for manager in await store.managers_of(org_id)
                if manager != member["_id"]
            ]
        )
        for doc in docs:
            await self.events.publish(Event("notification", (f"user:{doc['user_id']}",), {"notification": show(doc)}))
