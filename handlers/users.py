"""Users: the caller's own profile, invite codes, and the users list of managers and admins."""

from __future__ import annotations

from typing import Any

from dispatch.domain import scopes
from dispatch.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dispatch.core.events import scope_changed
from dispatch.core.policy import authenticated, roles
from handlers.base import BaseHandler
from models.common import parse_id
from models.directory import REFERRAL_OUT, InviteIn, UserAdminPatch, UserFilter
from models.users import MePatch, present, present_one

FILTERS = ("category", "organization", "q")

# Fields a category may not change on its own profile (SPEC section 4).
LOCKED_OWN_FIELDS = {"DRIVER": {"first_name", "last_name", "phone"}}


class MeHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """The caller's profile.
        ---
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
        data.pop("region", None)
        user = self.current_user
        unchanged = {"phone"} if data.get("phone", False) == user.get("phone") else set()  # a re-send changes nothing
        locked = LOCKED_OWN_FIELDS.get(self.current_category or "", set()) & (set(data) - unchanged)
        if locked:
            raise ApiError(403, "field_locked", f"Your account may not change: {', '.join(sorted(locked))}.",
                           {"fields": sorted(locked)})
        new_phone = _phone_to_verify(user, data)
        if new_phone:  # before any write: a refused number (taken, throttled) changes nothing
            await self.services.phone_verification.request(self.user_id, new_phone, self.client_ip)
        if "email" in data and data["email"].lower() != (user.get("email_lower") or ""):
            data.update(email_lower=data["email"].lower(), email_verified=False)
        else:
            data.pop("email", None)
        updated = await self.services.identity.users.update(self.user_id, data) if data else user
        if not data.get("email_verified", True):
            await self.services.identity.send_activation(updated)
        self.write_json(await present_one(self.services.db, updated), 202 if new_phone else 200)


def _phone_to_verify(user: dict[str, Any], data: dict[str, Any]) -> str | None:
    """Take a phone that needs a texted code out of the changes and return it; a removal stays a change."""
    if "phone" not in data:
        return None
    if data["phone"] is None:
        data["phone_verified"] = False
        return None
    phone = data.pop("phone")
    return None if phone == user.get("phone") and user.get("phone_verified") else phone


class InviteHandler(BaseHandler):
    @authenticated
    async def post(self) -> None:
        """Apply someone's invite code to the caller's account (once).
        ---
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
        inviter = await self.services.directory.by_invite_code(data["code"])
        if inviter is None:
            raise ValidationFailed({"code": ["No user has this invite code."]})
        if inviter["_id"] == self.user_id:
            raise Conflict("This is your own invite code.", "own_invite_code")
        # compare-and-set: of two concurrent applies, only one finds `invited_by` still empty
        updated = await self.services.identity.users.update(self.user_id, {"invited_by": inviter["_id"]},
                                                   expect={"invited_by": None})
        if updated is None:
            raise Conflict("An invite code was already applied to your account.", "invite_already_applied")
        self.write_json(await present_one(self.services.db, updated))


class ReferralsHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """Users who joined with the caller's invite code, newest first.
        ---
        tags: [users]
        parameters:
          - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200}}
          - {name: offset, in: query, schema: {type: integer, minimum: 0}}
        responses:
          200:
            description: The caller's referrals.
            content:
              application/json: {schema: ReferralList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        docs, total = await self.services.directory.referrals(self.user_id, page.offset, page.limit)
        self.write_json(page.envelope(REFERRAL_OUT.dump(docs, many=True), total))


class UsersHandler(BaseHandler):
    @roles("MANAGER", "ADMIN")
    async def get(self) -> None:
        """Users with their organizations (ADMIN: everyone; MANAGER: members of their organizations).
        ---
        tags: [users]
        parameters:
          - {name: category, in: query, schema: {type: string, enum: [BASE, DRIVER, MANAGER, ADMIN]}}
          - {name: organization, in: query, schema: {type: string}, description: An organization id}
          - {name: q, in: query, schema: {type: string, minLength: 1, maxLength: 100},
             description: "Part of the username, email, first or last name (any letter case)"}
          - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200}}
          - {name: offset, in: query, schema: {type: integer, minimum: 0}}
        responses:
          200:
            description: Users by username.
            content:
              application/json: {schema: UserList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        filters = self.load(UserFilter(), {name: self.get_query_argument(name) for name in FILTERS
                                           if self.get_query_argument(name, None) is not None})
        docs, total = await self.services.directory.search(scopes.user_scope(self.current_user), filters,
                                                          page.offset, page.limit)
        self.write_json(page.envelope(await present(self.services.db, docs), total))


class UserHandler(BaseHandler):
    @roles("MANAGER", "ADMIN")
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
        self.write_json(await present_one(self.services.db, await self.target(user_id)))

    @roles("MANAGER", "ADMIN")
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
        scopes.check_profile_fields(self.json_body())
        data = self.load(UserAdminPatch())
        target = await self.target(user_id)
        scopes.check_user_changes(self.current_user, target, data)
        if "organizations" in data:
            data["organizations"] = await self.known_orgs(data["organizations"])
        updated = await self.services.identity.users.update(target["_id"], data) if data else target
        if updated is None:
            raise NotFound("No such user.")
        if data.get("is_active") is False:
            await self.services.identity.sessions.revoke_all(str(target["_id"]))
        if {"organizations", "category"} & set(data):
            await self.services.events.publish(scope_changed(target["_id"]))  # their open sockets re-check access
        self.write_json(await present_one(self.services.db, updated))

    async def target(self, user_id: str) -> dict[str, Any]:
        """The user of the path, if the caller may read it (else 404)."""
        return scopes.visible_user(self.current_user, await self.services.identity.users.get(parse_id(user_id)))

    async def known_orgs(self, org_ids: list[Any]) -> list[Any]:
        """The ids without repeats, in order; an id that is no organization → 422."""
        unique = list(dict.fromkeys(org_ids))
        unknown = set(unique) - await self.services.organizations.existing(unique)
        if unknown:
            raise ValidationFailed({"organizations": [f"No organization has id {oid}." for oid in sorted(unknown)]})
        return unique


default_handlers = [
    (r"/users", UsersHandler),
    (r"/users/me", MeHandler),
    (r"/users/me/invite", InviteHandler),
    (r"/users/me/referrals", ReferralsHandler),
    (r"/users/(?P<user_id>[^/]+)", UserHandler),
]
