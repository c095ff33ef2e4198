"""The user directory (SPEC section 4): the caller's own profile, invite codes, and who staff may
list, read and change.

Staff read users through the scope table (`dispatch.domain.scopes`): an ADMIN everyone, a MANAGER
the members of their organizations (and themselves); anyone else is 404. People edit their own
name, phone and email; staff change only category, activity and organizations, each within reach.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import ObjectId

from dispatch.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dispatch.core.pagination import Page
from dispatch.core.vocabulary import Category
from dispatch.domain import scopes
from dispatch.domain.identity import Identity
from dispatch.domain.organizations import check_reach, invitation_required
from dispatch.domain.scopes import Resource, User, is_admin, orgs_of
from dispatch.domain.sms_login import PhoneVerification
from models.directory import UserDirectory
from models.organizations import Organizations

# Nobody changes these on another account (not even an ADMIN): people edit their own profile.
PROFILE_FIELDS = frozenset({"username", "email", "phone", "region", "first_name", "last_name"})
# What an ADMIN may change on any account; a MANAGER only the organizations of their own.
ADMIN_FIELDS = frozenset({"category", "is_active", "organizations"})
MANAGER_FIELDS = frozenset({"organizations"})
# Fields a category may not change on its own profile.
LOCKED_OWN_FIELDS: dict[str, frozenset[str]] = {Category.DRIVER: frozenset({"first_name", "last_name", "phone"})}


def check_profile_fields(fields: Iterable[str]) -> None:
    """Refuse changes to another account's name, phone or email, whoever asks (403)."""
    locked = sorted(PROFILE_FIELDS & set(fields))
    if locked:
        raise ApiError(
            403,
            "profile_fields_locked",
            f"Nobody may change another account's {', '.join(locked)}; its owner edits them through /users/me.",
            {"fields": locked},
        )


def check_user_changes(caller: User, target: User, changes: dict[str, Any]) -> None:
    """Refuse a `PATCH /users/{id}` the caller's role may not make on this (visible) target."""
    allowed = ADMIN_FIELDS if is_admin(caller) else MANAGER_FIELDS
    refused = sorted(set(changes) - allowed)
    if refused:
        raise ApiError(
            403, "field_forbidden", f"Your account may not change: {', '.join(refused)}.", {"fields": refused}
        )
    if caller["_id"] == target["_id"] and {"category", "is_active"} & set(changes):
        raise ApiError(403, "own_account", "Change your own category or activity through another ADMIN.")
    if is_admin(caller):
        return
    check_reach(caller, target)
    theirs, mine = set(orgs_of(target)), set(orgs_of(caller))
    moved = theirs ^ set(changes.get("organizations", theirs))
    outside = moved - mine
    if outside:
        raise ApiError(
            403,
            "organization_out_of_scope",
            "You may only add or remove organizations you belong to.",
            {"organizations": sorted(str(o) for o in outside)},
        )
    if moved - theirs:
        raise invitation_required()


def _phone_to_verify(user: User, data: dict[str, Any]) -> str | None:
    """Take a phone that needs a texted code out of the changes and return it; a removal stays a change."""
    if "phone" not in data:
        return None
    if data["phone"] is None:
        data["phone_verified"] = False
        return None
    phone = data.pop("phone")
    return None if phone == user.get("phone") and user.get("phone_verified") else phone


class Directory:
    """Users on behalf of a caller: their own account, and the directory staff work with."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.users = identity.users
        self.store = UserDirectory(identity.db)
        self.orgs = Organizations(identity.db)

    # --- the caller's own account ---------------------------------------------------
    async def edit_own(self, user: User, data: dict[str, Any], client_ip: str) -> tuple[User, bool]:
        """Apply the caller's profile changes; True when a code went to a new phone (set once proved)."""
        data.pop("region", None)
        unchanged = {"phone"} if data.get("phone", False) == user.get("phone") else set()  # a re-send changes nothing
        locked = LOCKED_OWN_FIELDS.get(str(user.get("category")), frozenset()) & (set(data) - unchanged)
        if locked:
            raise ApiError(
                403,
                "field_locked",
                f"Your account may not change: {', '.join(sorted(locked))}.",
                {"fields": sorted(locked)},
            )
        new_phone = _phone_to_verify(user, data)
        if new_phone:  # before any write: a refused number (taken, throttled) changes nothing
            await PhoneVerification(self.identity).request(user["_id"], new_phone, client_ip)
        if "email" in data and data["email"].lower() != (user.get("email_lower") or ""):
            data.update(email_lower=data["email"].lower(), email_verified=False)
        else:
            data.pop("email", None)
        updated = await self.users.update(user["_id"], data) if data else user
        if updated is None:  # the account was deleted meanwhile
            raise NotFound("No such user.")
        if not data.get("email_verified", True):
            await self.identity.send_activation(updated)
        return updated, bool(new_phone)

    async def apply_invite(self, user: User, code: str) -> User:
        """Record who invited the caller (once): the owner of this invite code."""
        inviter = await self.store.by_invite_code(code)
        if inviter is None:
            raise ValidationFailed({"code": ["No user has this invite code."]})
        if inviter["_id"] == user["_id"]:
            raise Conflict("This is your own invite code.", "own_invite_code")
        # compare-and-set: of two concurrent applies, only one finds `invited_by` still empty
        updated = await self.users.update(user["_id"], {"invited_by": inviter["_id"]}, expect={"invited_by": None})
        if updated is None:
            raise Conflict("An invite code was already applied to your account.", "invite_already_applied")
        return updated

    async def referrals(self, user: User, page: Page) -> tuple[list[User], int]:
        """A page of the users who joined with the caller's invite code, newest first, and the total."""
        return await self.store.referrals(user["_id"], page.offset, page.limit)

    # --- the directory staff work with ----------------------------------------------
    async def search(self, caller: User, filters: dict[str, Any], page: Page) -> tuple[list[User], int]:
        """A page of the users the caller may read matching the filters, by username, and the total."""
        return await self.store.search(scopes.query(Resource.USERS, caller), filters, page.offset, page.limit)

    async def get(self, caller: User, user_id: ObjectId) -> User:
        """A user the caller may read (themselves, or within their scope); 404 otherwise."""
        scopes.query(Resource.USERS, caller)  # a category that reads no users is refused (403) first
        target = await self.users.get(user_id)
        if target is None or not (caller["_id"] == target["_id"] or scopes.admits(Resource.USERS, caller, target)):
            raise NotFound("No such user.")
        return target

    async def change(self, caller: User, user_id: ObjectId, changes: dict[str, Any]) -> User:
        """Change a user's category, activity or organizations (after `check_profile_fields` on the request)."""
        target = await self.get(caller, user_id)
        check_user_changes(caller, target, changes)
        if "organizations" in changes:
            changes["organizations"] = await self._known_orgs(changes["organizations"])
        updated = await self.users.update(target["_id"], changes) if changes else target
        if updated is None:
            raise NotFound("No such user.")
        if changes.get("is_active") is False:
            await self.identity.sessions.revoke_all(str(target["_id"]))
        return updated

    async def end_sessions(self, caller: User, user_id: ObjectId) -> int:
        """End every session of a user the caller may read (an administrator's action); how many ended."""
        target = await self.get(caller, user_id)
        return await self.identity.sessions.revoke_all(str(target["_id"]))

    async def _known_orgs(self, org_ids: list[Any]) -> list[Any]:
        """The ids without repeats, in order; an id that is no organization → 422."""
        unique = list(dict.fromkeys(org_ids))
        unknown = set(unique) - await self.orgs.existing(unique)
        if unknown:
            raise ValidationFailed({"organizations": [f"No organization has id {oid}." for oid in sorted(unknown)]})
        return unique
