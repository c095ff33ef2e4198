"""Organizations and their members (SPEC sections 4 and 13): who reads, edits and joins which.

Reading follows the scope table (`dispatch.domain.scopes`); an organization outside the caller's
reach is 404. Only an ADMIN adds a member directly: a MANAGER invites, and the user joins by
accepting (`dispatch.domain.invitations`). Nobody but an ADMIN changes an ADMIN's memberships.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.errors import ApiError, NotFound
from dispatch.core.pagination import Page
from dispatch.core.vocabulary import Category
from dispatch.domain import scopes
from dispatch.domain.scopes import Resource, User, is_admin, orgs_of
from models.common import parse_id
from models.directory import UserDirectory
from models.organizations import Organizations, show
from models.users import Users


def invitation_required() -> ApiError:
    """The refusal of a MANAGER's direct add: nobody is pulled into an organization."""
    return ApiError(
        403,
        "invitation_required",
        "A MANAGER adds a member by invitation: POST /organizations/{id}/invitations; "
        "the user joins when they accept it.",
    )


def check_reach(caller: User, target: User) -> None:
    """Refuse a non-ADMIN's change to an ADMIN's memberships (403)."""
    if not is_admin(caller) and is_admin(target):
        raise ApiError(403, "admin_out_of_reach", "Only an ADMIN may change the organizations of an ADMIN.")


class OrganizationDesk:
    """Organizations and memberships on behalf of a caller; answers are organizations as that caller sees them."""

    def __init__(self, db: AsyncDatabase[Any], users: Users) -> None:
        self.orgs = Organizations(db)
        self.directory = UserDirectory(db)
        self.users = users

    # --- reads ----------------------------------------------------------------------
    async def page(self, caller: User, page: Page) -> tuple[list[dict[str, Any]], int]:
        """The organizations the caller may read, by name, as they see them, and how many there are."""
        docs, total = await self.orgs.find(scopes.query(Resource.ORGANIZATIONS, caller), page.offset, page.limit)
        return await self.shown(caller, docs), total

    async def get(self, caller: User, org_id: ObjectId) -> dict[str, Any]:
        """One organization the caller may read, as they see it (404 otherwise)."""
        org = await self.orgs.get(org_id)
        if org is None or not scopes.admits(Resource.ORGANIZATIONS, caller, org):
            raise NotFound("No such organization.")
        return await self.shown_one(caller, org)

    async def editable(self, caller: User, org_id: ObjectId) -> dict[str, Any]:
        """The organization if the caller may edit it and its members (ADMIN, or a MANAGER of it); else 404."""
        org = await self.orgs.get(org_id)
        if org is None or not scopes.admits(Resource.ORGANIZATIONS_EDIT, caller, org):
            raise NotFound("No such organization.")
        return org

    async def shown(self, caller: User, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Organizations as this caller may see them: with members where allowed."""
        with_members = [doc["_id"] for doc in docs if scopes.admits(Resource.ORGANIZATION_MEMBERS, caller, doc)]
        members = await self.directory.members(with_members)
        return [
            show(doc, members.get(doc["_id"]), manages=scopes.admits(Resource.ORGANIZATIONS_EDIT, caller, doc))
            for doc in docs
        ]

    async def shown_one(self, caller: User, doc: dict[str, Any]) -> dict[str, Any]:
        """One organization as this caller may see it."""
        return (await self.shown(caller, [doc]))[0]

    # --- changes ----------------------------------------------------------------------
    async def create(self, caller: User, data: dict[str, Any]) -> dict[str, Any]:
        """A new organization; a MANAGER who creates one becomes its member (and sees it so)."""
        org = await self.orgs.insert(data["name"], data["description"])
        if caller.get("category") == Category.MANAGER:
            caller = (
                await self.users.update(caller["_id"], {}, extra={"$addToSet": {"organizations": org["_id"]}}) or caller
            )
        return await self.shown_one(caller, org)

    async def edit(self, caller: User, org: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """Change the name or description of an organization `editable` gave this caller."""
        updated = await self.orgs.update(org["_id"], changes) if changes else org
        if updated is None:
            raise NotFound("No such organization.")
        return await self.shown_one(caller, updated)

    async def new_invite_code(self, caller: User, org_id: ObjectId) -> dict[str, Any]:
        """Give the organization a new invite code; the old one stops working at once."""
        org = await self.editable(caller, org_id)
        updated = await self.orgs.new_invite_code(org["_id"])
        if updated is None:
            raise NotFound("No such organization.")
        return await self.shown_one(caller, updated)

    # The member's id comes as written in the path: it is parsed (400) only after the checks before it.
    async def add_member(self, caller: User, org_id: ObjectId, member: str) -> dict[str, Any]:
        """Add a user directly (ADMIN only; anyone else invites them and they accept, SPEC section 13)."""
        org = await self.editable(caller, org_id)
        if not is_admin(caller):
            raise invitation_required()
        target = await self._member_to_change(caller, member)
        await self.users.update(target["_id"], {}, extra={"$addToSet": {"organizations": org["_id"]}})
        return await self._answer(caller, org)

    async def remove_member(self, caller: User, org_id: ObjectId, member: str) -> tuple[dict[str, Any], ObjectId]:
        """Take a member out (a MANAGER: of their own organization, and never an ADMIN); also the member's id."""
        org = await self.editable(caller, org_id)
        target = await self._member_to_change(caller, member)
        if org["_id"] not in orgs_of(target):
            raise NotFound("This user is not a member of the organization.")
        await self.users.update(target["_id"], {}, extra={"$pull": {"organizations": org["_id"]}})
        return await self._answer(caller, org), target["_id"]

    async def _member_to_change(self, caller: User, member: str) -> User:
        target = await self.users.get(parse_id(member))
        if target is None:
            raise NotFound("No such user.")
        check_reach(caller, target)
        return target

    async def _answer(self, caller: User, org: dict[str, Any]) -> dict[str, Any]:
        if org["_id"] in orgs_of(caller):  # the caller's own membership may have changed
            caller = await self.users.get(caller["_id"]) or caller
        return await self.shown_one(caller, org)
