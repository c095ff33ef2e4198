"""API keys (SPEC section 9): organizations' machine credentials, and the principal a key acts as.

An organization's MANAGERs and the ADMINs create, list and revoke its keys. A key is shown once,
stored as its SHA-256 only, and acts for its organization alone: `principal_of` turns its
document into the caller the domain works with (`category: "api_key"`, the key's id, its
organization as `organizations`), which the scope table reads like any caller. It is never a
user: not stored among them, never in the user cache. Each request made with a key is counted
against the key's rate limit; `last_used_at` is written at most once a minute per key.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import ratelimit
from dispatch.core.errors import ApiError, NotFound
from dispatch.core.pagination import Page
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import Principal
from dispatch.domain import scopes
from dispatch.domain.scopes import Resource, User
from dispatch.settings import Settings
from models.api_keys import ApiKeys
from models.organizations import Organizations

HEADER = "X-API-Key"
PREFIX = "dsp_"
SHOWN_PREFIX = 8  # characters of a key kept to recognise it in lists
RANDOM_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits
MAX_KEY_LENGTH = 100  # longer header values are not keys: refused without a lookup
TOUCH_EVERY = 60  # seconds between two `last_used_at` writes of one key
RATE_WINDOW = 60  # the per-key rate limit counts requests per minute
LIMIT_NAME = "api_key"


def new_key() -> str:
    """A new key's text: `dsp_` and 43 random URL-safe characters."""
    return PREFIX + secrets.token_urlsafe(RANDOM_BYTES)


def digest(key: str) -> str:
    """What is stored of a key: the hex SHA-256 of its text."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(text: str) -> bool:
    """Whether a credential is shaped like an API key (sockets refuse those with 4403, not 4401)."""
    return text.startswith(PREFIX)


def principal_of(doc: dict[str, Any]) -> User:
    """The caller a key acts as: its id, its organization, its scopes; `category` says it is a key."""
    return {
        "_id": doc["_id"],
        "category": Principal.API_KEY,
        "organizations": [doc["organization"]],
        "scopes": list(doc["scopes"]),
        "name": doc["name"],
    }


def invalid_key() -> ApiError:
    """The 401 of an unknown, malformed or revoked key (one answer for all: nothing about which)."""
    return ApiError(401, "invalid_api_key", "The API key is not valid (unknown or revoked).")


class KeyDesk:
    """Keys of organizations on behalf of their managers, and the admission of requests made with keys."""

    def __init__(self, settings: Settings, db: AsyncDatabase[Any], redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = ApiKeys(db)
        self.orgs = Organizations(db)

    # --- managing keys --------------------------------------------------------------
    async def create(self, caller: User, org: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new key of an organization the caller runs (`organization`); the only answer showing its text."""
        key = new_key()
        doc = await self.keys.insert(
            {
                "organization": org["_id"],
                "name": data["name"],
                "scopes": sorted(set(data["scopes"])),
                "prefix": key[:SHOWN_PREFIX],
                "hash": digest(key),
                "created_by": caller["_id"],
                "created_at": utcnow(),
                "last_used_at": None,
                "revoked_at": None,
            }
        )
        return {**doc, "key": key}

    async def page(self, caller: User, org_id: ObjectId, page: Page) -> tuple[list[dict[str, Any]], int]:
        """The organization's keys (unrevoked), newest first."""
        await self.organization(caller, org_id)
        return await self.keys.page(org_id, page)

    async def revoke(self, caller: User, org_id: ObjectId, key_id: ObjectId) -> None:
        """Revoke a key: every request with it is refused from now on (404 when there is no such key)."""
        await self.organization(caller, org_id)
        if await self.keys.revoke(org_id, key_id, utcnow()) is None:
            raise NotFound("No such API key.")

    async def organization(self, caller: User, org_id: ObjectId) -> dict[str, Any]:
        """The organization if the caller runs its keys (ADMIN, or a MANAGER of it); 404 otherwise."""
        org = await self.orgs.get(org_id)
        if org is None or not scopes.admits(Resource.API_KEYS, caller, org):
            raise NotFound("No such organization.")
        return org

    # --- requests made with a key -----------------------------------------------------
    async def resolve(self, key: str) -> User:
        """The principal of an unrevoked key; 401 `invalid_api_key` otherwise."""
        key = key.strip()
        if not looks_like_key(key) or len(key) > MAX_KEY_LENGTH or not key.isascii():
            raise invalid_key()
        doc = await self.keys.active_by_hash(digest(key))
        if doc is None:
            raise invalid_key()
        return principal_of(doc)

    async def admit(self, principal: User) -> None:
        """Count one request of the key against its rate limit (429 beyond), and note its use."""
        limits = {LIMIT_NAME: (self.settings.api_key_rate_limit, RATE_WINDOW)}
        await ratelimit.hit(self.redis, limits, LIMIT_NAME, str(principal["_id"]))
        # A busy key writes MongoDB once a minute, not once a request.
        if await self.redis.set(f"apikey:used:{principal['_id']}", b"1", nx=True, ex=TOUCH_EVERY):
            await self.keys.touch(principal["_id"], utcnow())
