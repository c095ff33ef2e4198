"""Organizations: list, create, read and edit them with their members; add and remove members."""

from __future__ import annotations

from typing import Any

from dispatch.domain import scopes
from dispatch.core.errors import NotFound
from dispatch.core.events import scope_changed
from dispatch.core.policy import authenticated, roles
from handlers.base import BaseHandler
from models.common import parse_id
from models.organizations import OrganizationIn, OrganizationPatch, show


class OrganizationsBase(BaseHandler):
    """Shared lookups of the organization handlers (members included)."""

    async def shown(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Organizations as this caller may see them: with members where allowed."""
        with_members = [doc["_id"] for doc in docs if scopes.sees_members(self.current_user, doc["_id"])]
        members = await self.services.directory.members(with_members)
        return [show(doc, members.get(doc["_id"]), manages=scopes.manages_org(self.current_user, doc["_id"]))
                for doc in docs]

    async def shown_one(self, doc: dict[str, Any]) -> dict[str, Any]:
        return (await self.shown([doc]))[0]

    async def editable(self, org_id: str) -> dict[str, Any]:
        """The organization of the path, if the caller may edit it (else 404)."""
        return scopes.editable_org(self.current_user, await self.services.organizations.get(parse_id(org_id)))


class OrganizationsHandler(OrganizationsBase):
    @authenticated
    async def get(self) -> None:
        """Organizations the caller may read (clients: every organization's public card).
        ---
        tags: [organizations]
        parameters:
          - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200}}
          - {name: offset, in: query, schema: {type: integer, minimum: 0}}
        responses:
          200:
            description: Organizations by name; `members` only where the caller may see them.
            content:
              application/json: {schema: OrganizationList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        docs, total = await self.services.organizations.find(scopes.org_read_scope(self.current_user),
                                                             page.offset, page.limit)
        self.write_json(page.envelope(await self.shown(docs), total))

    @roles("MANAGER", "ADMIN")
    async def post(self) -> None:
        """Create an organization; a MANAGER who creates one becomes its member.
        ---
        tags: [organizations]
        requestBody:
          required: true
          content:
            application/json: {schema: OrganizationIn}
        responses:
          201:
            description: The new organization.
            content:
              application/json: {schema: OrganizationOut}
          409: {$ref: '#/components/responses/409'}
        """
        data = self.load(OrganizationIn())
        org = await self.services.organizations.insert(data["name"], data["description"])
        if self.current_category == "MANAGER":
            self.current_user = await self.services.identity.users.update(
                self.user_id, {}, extra={"$addToSet": {"organizations": org["_id"]}})
        self.write_json(await self.shown_one(org), 201)


class OrganizationHandler(OrganizationsBase):
    @authenticated
    async def get(self, org_id: str) -> None:
        """One organization, with its members where the caller may see them.
        ---
        tags: [organizations]
        responses:
          200:
            description: The organization.
            content:
              application/json: {schema: OrganizationOut}
        """
        org = scopes.visible_org(self.current_user, await self.services.organizations.get(parse_id(org_id)))
        self.write_json(await self.shown_one(org))

    @roles("MANAGER", "ADMIN")
    async def patch(self, org_id: str) -> None:
        """Edit an organization's name or description (ADMIN: any; MANAGER: their own).
        ---
        tags: [organizations]
        requestBody:
          required: true
          content:
            application/json: {schema: OrganizationPatch}
        responses:
          200:
            description: The updated organization.
            content:
              application/json: {schema: OrganizationOut}
          409: {$ref: '#/components/responses/409'}
        """
        org = await self.editable(org_id)
        data = self.load(OrganizationPatch())
        updated = await self.services.organizations.update(org["_id"], data) if data else org
        if updated is None:
            raise NotFound("No such organization.")
        self.write_json(await self.shown_one(updated))


class InviteCodeHandler(OrganizationsBase):
    @roles("MANAGER", "ADMIN")
    async def post(self, org_id: str) -> None:
        """Give the organization a new invite code; the old one stops working at once.
        ---
        tags: [organizations]
        description: >
          A driver or client who registers with the organization's code (`invite_code` of
          `POST /auth/register`) joins it. A MANAGER joins only by invitation.
        responses:
          200:
            description: The organization with its new `invite_code`.
            content:
              application/json: {schema: OrganizationOut}
        """
        org = await self.editable(org_id)
        updated = await self.services.organizations.new_invite_code(org["_id"])
        if updated is None:
            raise NotFound("No such organization.")
        self.write_json(await self.shown_one(updated))


class MemberHandler(OrganizationsBase):
    @roles("MANAGER", "ADMIN")
    async def post(self, org_id: str, user_id: str) -> None:
        """Add a user to an organization directly (ADMIN only; a MANAGER invites instead).
        ---
        tags: [organizations]
        description: >
          A MANAGER of the organization gets 403 `invitation_required`: they invite the user with
          `POST /organizations/{id}/invitations`, and the user joins by accepting it.
        responses:
          200:
            description: The organization with its members (adding a member twice changes nothing).
            content:
              application/json: {schema: OrganizationOut}
          403: {$ref: '#/components/responses/403'}
        """
        org = await self.editable(org_id)
        scopes.check_direct_add(self.current_user)
        target = await self.target(user_id)
        await self.services.identity.users.update(target["_id"], {}, extra={"$addToSet": {"organizations": org["_id"]}})
        await self.answer(org)

    @roles("MANAGER", "ADMIN")
    async def delete(self, org_id: str, user_id: str) -> None:
        """Remove a member from an organization (a MANAGER: from their own, and never an ADMIN).
        ---
        tags: [organizations]
        responses:
          200:
            description: The organization with its remaining members.
            content:
              application/json: {schema: OrganizationOut}
        """
        org = await self.editable(org_id)
        target = await self.target(user_id)
        if org["_id"] not in scopes.own_orgs(target):
            raise NotFound("This user is not a member of the organization.")
        await self.services.identity.users.update(target["_id"], {}, extra={"$pull": {"organizations": org["_id"]}})
        await self.services.events.publish(scope_changed(target["_id"]))  # their open sockets lose the organization
        await self.answer(org)

    async def target(self, user_id: str) -> dict[str, Any]:
        """The user of the path, if the caller may change their membership."""
        return scopes.check_member_change(self.current_user, await self.services.identity.users.get(parse_id(user_id)))

    async def answer(self, org: dict[str, Any]) -> None:
        if org["_id"] in scopes.own_orgs(self.current_user):  # the caller's own membership may have changed
            self.current_user = await self.services.identity.users.get(self.user_id) or self.current_user
        self.write_json(await self.shown_one(org))


default_handlers = [
    (r"/organizations", OrganizationsHandler),
    (r"/organizations/(?P<org_id>[^/]+)", OrganizationHandler),
    (r"/organizations/(?P<org_id>[^/]+)/invite-code", InviteCodeHandler),
    (r"/organizations/(?P<org_id>[^/]+)/members/(?P<user_id>[^/]+)", MemberHandler),
]
