"""Users: the caller's own profile, invite codes, and the users list of managers and admins."""

from __future__ import annotations

from dispatch.core.events import scope_changed
from dispatch.core.policy import authenticated, roles
from dispatch.core.vocabulary import Category
from dispatch.domain.directory import check_profile_fields
from handlers.base import BaseHandler
from models.common import parse_id
from models.directory import REFERRAL_OUT, InviteIn, UserAdminPatch, UserFilter
from models.users import MePatch, present, present_one

FILTERS = ("category", "organization", "q")


class MeHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """The caller's profile.
        ---
        operationId: getMe
        tags: [users]
        responses:
          200:
            description: The caller.
            content:
              application/json: {schema: UserOut}
        """
        self.write_json(await present_one(self.services.db, self.current_user))

    @authenticated
    async def patch(self) -> None:
        """Edit the caller's profile; a new email address must be verified again, a new phone first.
        ---
        operationId: updateMe
        tags: [users]
        description: >
          A new `phone` (or the caller's own unverified one, to get another code) is not set here: the
          answer is 202, a 6-digit code is texted to that number, and `POST /users/me/phone/verify`
          sets it. Other fields of the same request are applied either way. `phone: null` removes the
          phone at once (200).
        requestBody:
          required: true
          content:
            application/json: {schema: MePatch}
        responses:
          200:
            description: The updated profile.
            content:
              application/json: {schema: UserOut}
          202:
            description: The other fields are applied; a code is on its way to the new phone.
            content:
              application/json: {schema: UserOut}
          403: {$ref: '#/components/responses/403'}
          409: {$ref: '#/components/responses/409'}
          429: {$ref: '#/components/responses/429'}
        """
        data = self.load(MePatch())
        updated, phone_pending = await self.services.directory.edit_own(self.current_user, data, self.client_ip)
        self.write_json(await present_one(self.services.db, updated), 202 if phone_pending else 200)


class InviteHandler(BaseHandler):
    @authenticated
    async def post(self) -> None:
        """Apply someone's invite code to the caller's account (once).
        ---
        operationId: applyInviteCode
        tags: [users]
        requestBody:
          required: true
          content:
            application/json: {schema: InviteIn}
        responses:
          200:
            description: The caller's profile, now with `invited_by`.
            content:
              application/json: {schema: UserOut}
          409:
            description: "`own_invite_code` (the caller's own code) or `invite_already_applied`."
            content:
              application/json: {schema: Error}
          422:
            description: "`validation_error` with `details.code`: no user has this code."
            content:
              application/json: {schema: Error}
        """
        data = self.load(InviteIn())
        updated = await self.services.directory.apply_invite(self.current_user, data["code"])
        self.write_json(await present_one(self.services.db, updated))


class ReferralsHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """Users who joined with the caller's invite code, newest first.
        ---
        operationId: listMyReferrals
        tags: [users]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: The caller's referrals.
            content:
              application/json: {schema: ReferralList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        docs, total = await self.services.directory.referrals(self.current_user, page)
        self.write_json(page.envelope(REFERRAL_OUT.dump(docs, many=True), total))


class UsersHandler(BaseHandler):
    @roles(Category.MANAGER, Category.ADMIN)
    async def get(self) -> None:
        """Users with their organizations (ADMIN: everyone; MANAGER: members of their organizations).
        ---
        tags: [users]
        parameters:
          - {in: query, schema: UserFilter}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Users by username.
            content:
              application/json: {schema: UserList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        filters = self.load(
            UserFilter(),
            {
                name: self.get_query_argument(name)
                for name in FILTERS
                if self.get_query_argument(name, None) is not None
            },
        )
        docs, total = await self.services.directory.search(self.current_user, filters, page)
        self.write_json(page.envelope(await present(self.services.db, docs), total))


class UserHandler(BaseHandler):
    @roles(Category.MANAGER, Category.ADMIN)
    async def get(self, user_id: str) -> None:
        """One user with their organizations (MANAGER: members of their organizations only).
        ---
        tags: [users]
        responses:
          200:
            description: The user.
            content:
              application/json: {schema: UserOut}
        """
        user = await self.services.directory.get(self.current_user, parse_id(user_id))
        self.write_json(await present_one(self.services.db, user))

    @roles(Category.MANAGER, Category.ADMIN)
    async def patch(self, user_id: str) -> None:
        """Change a user's category, activity or organizations; never their name, phone or email.
        ---
        tags: [users]
        description: >
          ADMIN: category, is_active and organizations of anyone but their own category and activity.
          MANAGER: only removing their own organizations from non-ADMIN members (adding one is by
          invitation, 403 `invitation_required`).
          Deactivating an account ends all its sessions at once. Name, phone or email → 403
          `profile_fields_locked`, whoever asks.
        requestBody:
          required: true
          content:
            application/json: {schema: UserAdminPatch}
        responses:
          200:
            description: The updated user.
            content:
              application/json: {schema: UserOut}
        """
        check_profile_fields(self.json_body())  # refused whatever their values, so before validation
        data = self.load(UserAdminPatch())
        updated = await self.services.directory.change(self.current_user, parse_id(user_id), data)
        if {"organizations", "category"} & set(data):
            await self.services.events.publish(scope_changed(updated["_id"]))  # their open sockets re-check access
        self.write_json(await present_one(self.services.db, updated))


class UserSessionsHandler(BaseHandler):
    @roles(Category.ADMIN)
    async def delete(self, user_id: str) -> None:
        """End every session of a user (signed out everywhere; the account stays active).
        ---
        operationId: endUserSessions
        tags: [users]
        description: Their refresh tokens stop working at once and so do access tokens of those sessions;
          they can sign in again. Deactivating the account (`PATCH is_active=false`) ends them too.
        responses:
          204: {description: Every session of the user is ended.}
        """
        await self.services.directory.end_sessions(self.current_user, parse_id(user_id))
        self.set_status(204)
        self.finish()


default_handlers = [
    (r"/users", UsersHandler),
    (r"/users/me", MeHandler),
    (r"/users/me/invite", InviteHandler),
    (r"/users/me/referrals", ReferralsHandler),
    (r"/users/(?P<user_id>[^/]+)", UserHandler),
    (r"/users/(?P<user_id>[^/]+)/sessions", UserSessionsHandler),
]
