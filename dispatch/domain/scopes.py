"""Who may see what (SPEC section 4): one table, per resource and category.

`dispatch.core.policy` decides which categories may call a handler method at all; this
table decides, for a caller who got in, which objects are theirs. Every row is asked the
same two ways: `query` gives the MongoDB filter of the documents the caller reaches (for
lists and lookups), `admits` tests one document already in hand. Objects outside the
caller's scope are `NotFound` (their existence is not leaked); a category with no row for
a resource is refused with 403.

An organization's API key is a caller too (SPEC section 9), though never a user: its principal
(`dispatch.domain.api_keys.principal_of`) carries `category: "api_key"`, its own id and
`organizations: [its organization]`, so its row (`K`) reads like a manager's, over fewer resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatch.core.errors import ApiError
from dispatch.core.vocabulary import Category, Principal
from models.users import orgs_of

__all__ = [
    "ORG_BOUND",
    "SCOPES",
    "Reach",
    "Resource",
    "admits",
    "is_admin",
    "is_api_key",
    "orgs_of",
    "query",
    "reach",
]

User = dict[str, Any]


def is_admin(user: User) -> bool:
    """Whether the user is an ADMIN."""
    return user.get("category") == Category.ADMIN


def is_api_key(caller: User) -> bool:
    """Whether the caller is an organization's API key rather than a person."""
    return caller.get("category") == Principal.API_KEY


@dataclass(frozen=True)
class Reach:
    """The documents whose `field` holds one of `values(caller)`; every document when `field` is None.

    A field holding a list (a user's `organizations`) matches when any element does, as in MongoDB.
    """

    field: str | None = None
    values: Callable[[User], list[Any]] = lambda user: []
    also: Reach | None = None  # a second way in: a document either reach admits is reached

    def query(self, user: User) -> dict[str, Any]:
        """The MongoDB filter of the reached documents."""
        mine = {} if self.field is None else {self.field: {"$in": self.values(user)}}
        return mine if self.also is None or not mine else {"$or": [self.also.query(user), mine]}

    def admits(self, user: User, doc: dict[str, Any]) -> bool:
        """Whether one document is reached."""
        if self.field is None or (self.also is not None and self.also.admits(user, doc)):
            return True
        held = doc.get(self.field)
        held = held if isinstance(held, list) else [held]
        return any(value in held for value in self.values(user))


def _me(user: User) -> list[Any]:
    return [user["_id"]]


EVERYTHING = Reach()
IN_THEIR_ORGS = Reach("organization", orgs_of)  # documents of the caller's organizations
DRIVEN = Reach("driver_id", _me)  # the caller is its driver
ORDERED = Reach("client_id", _me)  # the caller is its client
CREATED = Reach("created_by", _me)  # the caller wrote it
SHARED_OR_THEIRS = Reach("organization", lambda user: [None, *orgs_of(user)])  # the shared catalogue too
THEIR_MEMBERS = Reach("organizations", orgs_of)  # users sharing an organization with the caller
THEIR_ORGS = Reach("_id", orgs_of)  # the caller's organizations themselves


class Resource(StrEnum):
    """What the table speaks about; `_EDIT`/`_MEMBERS` rows are the narrower rights on the same documents."""

    ORDERS = "orders"
    VEHICLES = "vehicles"
    VEHICLE_TYPES = "vehicle_types"
    VEHICLE_TYPES_EDIT = "vehicle_types_edit"
    WAYBILLS = "waybills"
    WAYBILLS_EDIT = "waybills_edit"
    TICKETS = "tickets"
    TICKETS_OPERATE = "tickets_operate"
    USERS = "users"
    ORGANIZATIONS = "organizations"
    ORGANIZATIONS_EDIT = "organizations_edit"
    ORGANIZATION_MEMBERS = "organization_members"
    API_KEYS = "api_keys"  # asked of an organization: whose keys the caller runs
    WEBHOOKS = "webhooks"


A, M, D, B = Category.ADMIN, Category.MANAGER, Category.DRIVER, Category.BASE
K = Principal.API_KEY
# Callers that act only within their organizations (they name one of them; nearby searches only theirs).
ORG_BOUND = frozenset({M, K})

# The table. A missing category sees none of the resource (403 with REFUSALS' message, where given).
SCOPES: dict[Resource, dict[str, Reach]] = {
    Resource.ORDERS: {A: EVERYTHING, M: IN_THEIR_ORGS, D: DRIVEN, B: ORDERED, K: IN_THEIR_ORGS},
    Resource.VEHICLES: {A: EVERYTHING, M: IN_THEIR_ORGS, D: DRIVEN, K: IN_THEIR_ORGS},
    # Clients may order from any organization, so they read every price list.
    Resource.VEHICLE_TYPES: {
        A: EVERYTHING,
        B: EVERYTHING,
        M: SHARED_OR_THEIRS,
        D: SHARED_OR_THEIRS,
        K: SHARED_OR_THEIRS,
    },
    Resource.VEHICLE_TYPES_EDIT: {A: EVERYTHING, M: IN_THEIR_ORGS},  # the shared catalogue is the ADMINs'
    Resource.WAYBILLS: {A: EVERYTHING, M: IN_THEIR_ORGS, D: DRIVEN},
    Resource.WAYBILLS_EDIT: {A: EVERYTHING, D: DRIVEN},  # managers only read
    Resource.TICKETS: {A: EVERYTHING, M: Reach("organization", orgs_of, also=CREATED), D: CREATED, B: CREATED},
    Resource.TICKETS_OPERATE: {A: EVERYTHING, M: IN_THEIR_ORGS},  # may see and write internal notes
    Resource.USERS: {A: EVERYTHING, M: THEIR_MEMBERS},
    # Clients see every organization's public card (without members).
    Resource.ORGANIZATIONS: {A: EVERYTHING, B: EVERYTHING, M: THEIR_ORGS, D: THEIR_ORGS},
    Resource.ORGANIZATIONS_EDIT: {A: EVERYTHING, M: THEIR_ORGS},
    Resource.ORGANIZATION_MEMBERS: {A: EVERYTHING, M: THEIR_ORGS, D: THEIR_ORGS},
    Resource.API_KEYS: {A: EVERYTHING, M: THEIR_ORGS},
    Resource.WEBHOOKS: {A: EVERYTHING, M: IN_THEIR_ORGS, K: IN_THEIR_ORGS},
}
REFUSALS = {
    Resource.VEHICLES: "Your account may not read vehicles.",
    Resource.WAYBILLS: "Your account may not read waybills.",
    Resource.WAYBILLS_EDIT: "Your account may only read waybills.",
    Resource.USERS: "Your account may not read other users.",
    Resource.WEBHOOKS: "Your account may not manage webhooks.",
}


def reach(resource: Resource, user: User) -> Reach | None:
    """The row of the table for this caller, or None when their category reaches none of the resource."""
    return SCOPES[resource].get(str(user.get("category")))


def query(resource: Resource, user: User) -> dict[str, Any]:
    """The MongoDB filter of the documents of `resource` this caller may see; 403 if they may see none."""
    row = reach(resource, user)
    if row is None:
        raise ApiError(403, "forbidden", REFUSALS.get(resource, "Your account may not do this."))
    return row.query(user)


def admits(resource: Resource, user: User, doc: dict[str, Any]) -> bool:
    """Whether this caller reaches one document of `resource` (False when their category reaches none)."""
    row = reach(resource, user)
    return row is not None and row.admits(user, doc)
