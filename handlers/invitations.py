"""Invitations: managers invite people to their organization; each person accepts or declines their own."""

from __future__ import annotations

from typing import Any

from dispatch.core.errors import NotFound
from dispatch.core.policy import authenticated, roles
from dispatch.core.vocabulary import Category
from dispatch.domain.invitations import count_sent
from handlers.base import BaseHandler
from models.common import parse_id
from models.invitations import InvitationIn, present


class InvitationsBase(BaseHandler):
    """Shared lookups of the invitation handlers."""

    async def editable(self, org_id: str) -> dict[str, Any]:
        """The organization of the path, if the caller may manage its members (else 404)."""
        return await self.services.organizations.editable(self.current_user, parse_id(org_id))

    async def shown(self, doc: dict[str, Any]) -> dict[str, Any]:
        return (await present(self.services.db, [doc]))[0]


class OrganizationInvitationsHandler(InvitationsBase):
    @roles(Category.MANAGER, Category.ADMIN)
    async def get(self, org_id: str) -> None:
        """The organization's open invitations (ADMIN: any organization; MANAGER: their own).
        ---
        operationId: listInvitations
        tags: [organizations]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Pending, unexpired invitations, newest first.
            content:
              application/json: {schema: InvitationList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        org = await self.editable(org_id)
        docs, total = await self.services.invitations.of_organization(org["_id"], page.offset, page.limit)
        self.write_json(page.envelope(await present(self.services.db, docs), total))

    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self, org_id: str) -> None:
        """Invite someone to join the organization, by user id, email or phone; they accept it themselves.
        ---
        operationId: createInvitation
        tags: [organizations]
        description: >
          Answers 201 with the invitation whether or not the id, email or phone belongs to an account
          (nothing is revealed about who exists). An email or phone invitation reaches the account that
          has verified that address, also one registered later. A second invitation of the same
          invitee while one is pending returns the pending one. Invitations expire after 7 days.
          One account sends at most 100 invitations an hour (429).
        requestBody:
          required: true
          content:
            application/json: {schema: InvitationIn}
        responses:
          201:
            description: The pending invitation.
            content:
              application/json: {schema: InvitationOut}
          422: {$ref: '#/components/responses/422'}
          429: {$ref: '#/components/responses/429'}
        """
        org = await self.editable(org_id)
        data = self.load(InvitationIn())
        await count_sent(self.services.redis, self.services.settings, self.user_id)
        doc = await self.services.invitations.invite(org["_id"], data, self.user_id)
        self.write_json(await self.shown(doc), 201)


class OrganizationInvitationHandler(InvitationsBase):
    @roles(Category.MANAGER, Category.ADMIN)
    async def delete(self, org_id: str, invitation_id: str) -> None:
        """Withdraw a pending invitation of the organization.
        ---
        operationId: revokeInvitation
        tags: [organizations]
        responses:
          204: {description: The invitation is revoked; it can no longer be accepted.}
          404: {$ref: '#/components/responses/404'}
        """
        org = await self.editable(org_id)
        if await self.services.invitations.revoke(org["_id"], parse_id(invitation_id)) is None:
            raise NotFound("No such pending invitation.")
        self.set_status(204)
        self.finish()


class MyInvitationsHandler(InvitationsBase):
    @authenticated
    async def get(self) -> None:
        """Open invitations to organizations for the caller (by id, or by their verified email or phone).
        ---
        operationId: listMyInvitations
        tags: [users]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Pending, unexpired invitations to organizations the caller is not in, newest first.
            content:
              application/json: {schema: InvitationList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        docs, total = await self.services.invitations.of_user(self.current_user, page.offset, page.limit)
        self.write_json(page.envelope(await present(self.services.db, docs), total))


class MyInvitationBase(InvitationsBase):
    """One invitation of the caller's, found by the id of the path."""

    async def mine(self, invitation_id: str) -> dict[str, Any]:
        """The invitation if it is meant for the caller (else 404)."""
        doc = await self.services.invitations.addressed(parse_id(invitation_id), self.current_user)
        if doc is None:
            raise NotFound("No such invitation.")
        return doc


class AcceptInvitationHandler(MyInvitationBase):
    @authenticated
    async def post(self, invitation_id: str) -> None:
        """Accept an invitation: the caller joins the organization and its managers are notified.
        ---
        operationId: acceptInvitation
        tags: [users]
        responses:
          200:
            description: The accepted invitation; the caller's `organizations` now include it.
            content:
              application/json: {schema: InvitationOut}
          404: {$ref: '#/components/responses/404'}
          409:
            description: "`invitation_not_open`: already answered, revoked or expired (`details.status`)."
            content:
              application/json: {schema: Error}
        """
        accepted = await self.services.joining.accept(await self.mine(invitation_id), self.current_user)
        self.write_json(await self.shown(accepted))


class DeclineInvitationHandler(MyInvitationBase):
    @authenticated
    async def post(self, invitation_id: str) -> None:
        """Decline an invitation; it leaves the organization's pending list.
        ---
        operationId: declineInvitation
        tags: [users]
        responses:
          200:
            description: The declined invitation.
            content:
              application/json: {schema: InvitationOut}
          404: {$ref: '#/components/responses/404'}
          409:
            description: "`invitation_not_open`: already answered, revoked or expired (`details.status`)."
            content:
              application/json: {schema: Error}
        """
        declined = await self.services.joining.decline(await self.mine(invitation_id))
        self.write_json(await self.shown(declined))


default_handlers = [
    (r"/organizations/(?P<org_id>[^/]+)/invitations", OrganizationInvitationsHandler),
    (r"/organizations/(?P<org_id>[^/]+)/invitations/(?P<invitation_id>[^/]+)", OrganizationInvitationHandler),
    (r"/users/me/invitations", MyInvitationsHandler),
    (r"/users/me/invitations/(?P<invitation_id>[^/]+)/accept", AcceptInvitationHandler),
    (r"/users/me/invitations/(?P<invitation_id>[^/]+)/decline", DeclineInvitationHandler),
]
