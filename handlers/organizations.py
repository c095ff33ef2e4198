"""Organizations: list, create, read and edit them with their members; add and remove members."""

from __future__ import annotations

from dispatch.core.events import scope_changed
from dispatch.core.policy import authenticated, roles
from dispatch.core.vocabulary import Category
from handlers.base import BaseHandler
from models.common import parse_id
from models.organizations import OrganizationIn, OrganizationPatch


class OrganizationsHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """Organizations the caller may read (clients: every organization's public card).
        ---
        tags: [organizations]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Organizations by name; `members` only where the caller may see them.
            content:
              application/json: {schema: OrganizationList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        shown, total = await self.services.organizations.page(self.current_user, page)
        self.write_json(page.envelope(shown, total))

    @roles(Category.MANAGER, Category.ADMIN)
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
        self.write_json(await self.services.organizations.create(self.current_user, data), 201)


class OrganizationHandler(BaseHandler):
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
        self.write_json(await self.services.organizations.get(self.current_user, parse_id(org_id)))

    @roles(Category.MANAGER, Category.ADMIN)
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
        org = await self.services.organizations.editable(self.current_user, parse_id(org_id))  # 404 comes before a 422
        data = self.load(OrganizationPatch())
        self.write_json(await self.services.organizations.edit(self.current_user, org, data))


class InviteCodeHandler(BaseHandler):
    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self, org_id: str) -> None:
        """Give the organization a new invite code; the old one stops working at once.
        ---
        operationId: rotateInviteCode
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
        self.write_json(await self.services.organizations.new_invite_code(self.current_user, parse_id(org_id)))


class MemberHandler(BaseHandler):
    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self, org_id: str, user_id: str) -> None:
        """Add a user to an organization directly (ADMIN only; a MANAGER invites instead).
        ---
        operationId: addMember
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
        self.write_json(await self.services.organizations.add_member(self.current_user, parse_id(org_id), user_id))

    @roles(Category.MANAGER, Category.ADMIN)
    async def delete(self, org_id: str, user_id: str) -> None:
        """Remove a member from an organization (a MANAGER: from their own, and never an ADMIN).
        ---
        operationId: removeMember
        tags: [organizations]
        responses:
          200:
            description: The organization with its remaining members.
            content:
              application/json: {schema: OrganizationOut}
        """
        shown, member = await self.services.organizations.remove_member(self.current_user, parse_id(org_id), user_id)
        await self.services.events.publish(scope_changed(member))  # their open sockets lose the organization
        self.write_json(shown)


default_handlers = [
    (r"/organizations", OrganizationsHandler),
    (r"/organizations/(?P<org_id>[^/]+)", OrganizationHandler),
    (r"/organizations/(?P<org_id>[^/]+)/invite-code", InviteCodeHandler),
    (r"/organizations/(?P<org_id>[^/]+)/members/(?P<user_id>[^/]+)", MemberHandler),
]
