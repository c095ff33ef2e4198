"""Who may see and change which users and organizations (SPEC section 4), in one place.

`dispatch.core.policy` decides which categories may call a handler method at all; this
module decides, for a caller who got in, which objects are theirs. Objects outside
the caller's scope are `NotFound` (their existence is not leaked); actions the caller's
role may not take on an object it can see are 403.
"""

from __future__ import annotations

from typing import Any, Iterable

from bson import ObjectId

from dispatch.core.errors import ApiError, NotFound

User = dict[str, Any]

# Nobody changes these on another account (not even an ADMIN): people edit their own profile.
PROFILE_FIELDS = frozenset({"username", "email", "phone", "region", "first_name", "last_name"})
# What an ADMIN may change on any account; a MANAGER only the organizations of their own.
ADMIN_FIELDS = frozenset({"category", "is_active", "organizations"})
MANAGER_FIELDS = frozenset({"organizations"})


def own_orgs(user: User) -> set[ObjectId]:
    """The organizations a user belongs to."""
    return set(user.get("organizations") or [])


def is_admin(user: User) -> bool:
    """Whether the user is an ADMIN."""
    return user.get("category") == "ADMIN"


# --- users -----------------------------------------------------------------
def user_scope(caller: User) -> set[ObjectId] | None:
    """Organizations whose members the caller may list and read; None: everyone (ADMIN)."""
    if is_admin(caller):
        return None
    if caller.get("category") == "MANAGER":
        return own_orgs(caller)
    raise ApiError(403, "forbidden", "Your account may not read other users.")


def can_see_user(caller: User, target: User) -> bool:
    """Whether the caller may read this user (themselves, or a member of a shared organization)."""
    scope = user_scope(caller)
    return scope is None or caller["_id"] == target["_id"] or bool(scope & own_orgs(target))


def visible_user(caller: User, target: User | None) -> User:
    """The target if the caller may read it; otherwise 404."""
    if target is None or not can_see_user(caller, target):
        raise NotFound("No such user.")
    return target


def check_profile_fields(fields: Iterable[str]) -> None:
    """Refuse changes to another account's name, phone or email, whoever asks (403)."""
    locked = sorted(PROFILE_FIELDS & set(fields))
    if locked:
        raise ApiError(403, "profile_fields_locked",
                       f"Nobody may change another account's {', '.join(locked)}; its owner edits them "
                       "through /users/me.", {"fields": locked})


def check_user_changes(caller: User, target: User, changes: dict[str, Any]) -> None:
    """Refuse a `PATCH /users/{id}` the caller's role may not make on this (visible) target."""
    allowed = ADMIN_FIELDS if is_admin(caller) else MANAGER_FIELDS
    refused = sorted(set(changes) - allowed)
    if refused:
        raise ApiError(403, "field_forbidden", f"Your account may not change: {', '.join(refused)}.",
                       {"fields": refused})
    if caller["_id"] == target["_id"] and {"category", "is_active"} & set(changes):
        raise ApiError(403, "own_account", "Change your own category or activity through another ADMIN.")
    if is_admin(caller):
        return
    _check_manager_reach(caller, target)
    moved = own_orgs(target) ^ set(changes.get("organizations", own_orgs(target)))
    outside = moved - own_orgs(caller)
    if outside:
        raise ApiError(403, "organization_out_of_scope",
                       "You may only add or remove organizations you belong to.",
                       {"organizations": sorted(str(o) for o in outside)})
    if moved - own_orgs(target):
        raise invitation_required()


def _check_manager_reach(caller: User, target: User) -> None:
    if is_admin(target):
        raise ApiError(403, "admin_out_of_reach", "Only an ADMIN may change the organizations of an ADMIN.")


# --- organizations -----------------------------------------------------------
def org_read_scope(caller: User) -> set[ObjectId] | None:
    """Organizations the caller may read; None: all of them (ADMIN; BASE sees public cards only)."""
    if is_admin(caller) or caller.get("category") == "BASE":
        return None
    return own_orgs(caller)


def sees_members(caller: User, org_id: ObjectId) -> bool:
    """Whether the caller may see who belongs to this organization."""
    if is_admin(caller):
        return True
    return caller.get("category") in ("MANAGER", "DRIVER") and org_id in own_orgs(caller)


def visible_org(caller: User, org: dict[str, Any] | None) -> dict[str, Any]:
    """The organization if the caller may read it; otherwise 404."""
    scope = org_read_scope(caller)
    if org is None or (scope is not None and org["_id"] not in scope):
        raise NotFound("No such organization.")
    return org


def manages_org(caller: User, org_id: ObjectId) -> bool:
    """Whether the caller may edit this organization and its members (ADMIN, or a MANAGER of it)."""
    return is_admin(caller) or (caller.get("category") == "MANAGER" and org_id in own_orgs(caller))


def editable_org(caller: User, org: dict[str, Any] | None) -> dict[str, Any]:
    """The organization if the caller may edit it and its members (ADMIN, or a MANAGER of it); else 404."""
    if org is None or not manages_org(caller, org["_id"]):
        raise NotFound("No such organization.")
    return org


def check_member_change(caller: User, target: User | None) -> User:
    """The user to add to or remove from an organization the caller may edit; 404 / 403 otherwise."""
    if target is None:
        raise NotFound("No such user.")
    if not is_admin(caller):
        _check_manager_reach(caller, target)
    return target


def check_direct_add(caller: User) -> None:
    """Only an ADMIN adds a member directly; anyone else invites them and they accept (SPEC section 13)."""
    if not is_admin(caller):
        raise invitation_required()


def invitation_required() -> ApiError:
    """The refusal of a MANAGER's direct add: nobody is pulled into an organization."""
    return ApiError(403, "invitation_required",
                    "A MANAGER adds a member by invitation: POST /organizations/{id}/invitations; "
                    "the user joins when they accept it.")
