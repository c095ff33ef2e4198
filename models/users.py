"""Users: schemas of the API and the data access of the `users` collection (with its Redis cache)."""

from __future__ import annotations

from typing import Any, cast

import bson
import redis.asyncio as aioredis
from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dispatch.core.errors import Conflict
from dispatch.core.phones import PhoneError, normalize
from dispatch.core.security import MAX_PASSWORD_BYTES, random_code
from dispatch.core.storage import index, migration, retire_index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import SELF_REGISTRATION, Category, Language, choices
from models.common import Id, UtcDateTime, visible_text

COLLECTION = "users"
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes (0/O, 1/I)
CACHE_TTL = 3600

index(COLLECTION, "username_lower", unique=True, name="username_unique")
index(
    COLLECTION,
    "email_lower",
    unique=True,
    name="email_unique",
    partialFilterExpression={"email_lower": {"$type": "string"}},
)
# Only a verified phone is unique: a number someone typed in but never confirmed blocks nobody.
index(
    COLLECTION,
    "phone",
    unique=True,
    name="verified_phone_unique",
    partialFilterExpression={"phone": {"$type": "string"}, "phone_verified": True},
)
index(COLLECTION, "invite_code", unique=True, name="invite_code_unique")
index(COLLECTION, "invited_by", name="invited_by")
index(COLLECTION, [("organizations", 1), ("category", 1)], name="organizations_category")
retire_index(COLLECTION, "phone_unique")  # it made every phone unique, verified or not


@migration
async def _phones_need_verification(db: AsyncDatabase[Any]) -> None:
    """Mark phones stored before verification: SMS log-in made the phone-only accounts; others never proved theirs."""
    users = db[COLLECTION]
    legacy = {"phone_verified": {"$exists": False}}
    await users.update_many({**legacy, "phone": {"$type": "string"}, "email": None}, {"$set": {"phone_verified": True}})
    await users.update_many(legacy, {"$set": {"phone_verified": False}})


USERNAME = validate.And(
    visible_text,
    validate.Regexp(r"^[A-Za-z0-9_.-]{3,32}$", error="3 to 32 letters, digits, dots, dashes or underscores."),
)
NAME = validate.And(validate.Length(max=100), visible_text)


def orgs_of(user: dict[str, Any]) -> list[ObjectId]:
    """The organizations a user belongs to: the one way to ask (none when the field is missing or null)."""
    return list(user.get("organizations") or [])


def password_problems(password: str, username: str = "", email: str = "") -> list[str]:
    """Why a password breaks the policy (empty when it is acceptable)."""
    problems = []
    if len(password) < 8:
        problems.append("At least 8 characters.")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        problems.append(f"At most {MAX_PASSWORD_BYTES} bytes.")
    if password.isdigit():
        problems.append("Not only digits.")
    if password.lower() in {username.lower(), email.lower()} - {""}:
        problems.append("Must differ from the username and the email.")
    return problems


def phone_field_value(data: dict[str, Any], field: str = "phone") -> str | None:
    """The E.164 phone of a payload (with its optional `region`), or a ValidationError."""
    phone = data.get(field)
    if phone in (None, ""):
        return None
    try:
        return normalize(phone, data.get("region"))
    except PhoneError as exc:
        raise ValidationError({field: [str(exc)]}) from None


class OrganizationRef(Schema):
    id = Id(required=True)
    name = fields.String(required=True)


class UserOut(Schema):
    """A user as the API shows it (never the password hash or internal flags)."""

    id = Id(attribute="_id", required=True)
    username = fields.String(required=True)
    email = fields.String(allow_none=True, required=True, metadata={"description": "None for phone-only accounts"})
    phone = fields.String(allow_none=True, required=True)
    phone_verified = fields.Boolean(
        required=True,
        metadata={"description": "The phone came back with an SMS code; only then does it log in or stay unique"},
    )
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    category = fields.String(required=True, validate=validate.OneOf(choices(Category)))
    is_active = fields.Boolean(required=True)
    email_verified = fields.Boolean(required=True)
    organizations = fields.List(fields.Nested(OrganizationRef), required=True)
    avatar_url = fields.String(allow_none=True, required=True)
    invite_code = fields.String(required=True)
    language = fields.String(
        allow_none=True,
        required=True,
        dump_default=None,
        validate=validate.OneOf(choices(Language)),
        metadata={"description": "Language of messages to this user (null: the server's default language)"},
    )
    invited_by = Id(allow_none=True, load_default=None)
    rating = fields.Float(allow_none=True, metadata={"description": "Drivers only: average score (1–5)"})
    rating_count = fields.Integer(metadata={"description": "Drivers only: how many ratings"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class RegisterIn(Schema):
    username = fields.String(required=True, validate=USERNAME)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, load_only=True)
    category = fields.String(load_default=Category.BASE.value, validate=validate.OneOf(choices(SELF_REGISTRATION)))
    phone = fields.String(allow_none=True, validate=validate.Length(max=32))
    region = fields.String(
        validate=validate.Length(equal=2),
        metadata={"description": "Region code (RU, DE, …) for a national phone number"},
    )
    first_name = fields.String(load_default="", validate=NAME)
    last_name = fields.String(load_default="", validate=NAME)
    invite_code = fields.String(validate=validate.Length(max=32))

    @validates_schema
    def check(self, data: dict[str, Any], **kwargs: Any) -> None:
        problems = password_problems(data.get("password", ""), data.get("username", ""), data.get("email", ""))
        if problems:
            raise ValidationError({"password": problems})
        data["phone"] = phone_field_value(data)


class MePatch(Schema):
    """What a user may change on their own profile (the role rules are applied by the handler)."""

    email = fields.Email(validate=validate.Length(max=254))
    phone = fields.String(allow_none=True, validate=validate.Length(max=32))
    region = fields.String(validate=validate.Length(equal=2))
    first_name = fields.String(validate=NAME)
    last_name = fields.String(validate=NAME)
    language = fields.String(
        allow_none=True,
        validate=validate.OneOf(choices(Language)),
        metadata={"description": "`en` or `ru`: the language of SMS and email to you (null: the default)"},
    )

    @validates_schema
    def check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "phone" in data:
            data["phone"] = phone_field_value(data)


def new_user(
    data: dict[str, Any],
    password_hash: str | None,
    *,
    category: str,
    verified: bool = False,
    invited_by: ObjectId | None = None,
    phone_verified: bool = False,
) -> dict[str, Any]:
    """A user document ready to insert."""
    now = utcnow()
    return {
        "username": data["username"],
        "username_lower": data["username"].lower(),
        "email": data.get("email"),
        "email_lower": data["email"].lower() if data.get("email") else None,
        "phone": data.get("phone"),
        "phone_verified": bool(data.get("phone")) and phone_verified,
        "first_name": data.get("first_name", ""),
        "last_name": data.get("last_name", ""),
        "password_hash": password_hash,
        "category": category,
        "is_active": True,
        "email_verified": verified,
        "organizations": [],
        "avatar_url": None,
        "invite_code": random_code(8, INVITE_ALPHABET),
        "invited_by": invited_by,
        "created_at": now,
        "updated_at": now,
    }


def _duplicate_field(exc: DuplicateKeyError) -> str:
    text = str(exc.details or exc)
    for name, field in (
        ("username", "username"),
        ("email", "email"),
        ("phone", "phone"),
        ("invite_code", "invite_code"),
    ):
        if name in text:
            return field
    return "user"


def cache_key(prefix: str, user_id: Any) -> str:
    """The user cache's key of a user (the worker drops it too, after an avatar change)."""
    return f"{prefix}user:{user_id}"


class Users:
    """Data access of the `users` collection; reads by id go through the Redis cache."""

    def __init__(self, db: AsyncDatabase[Any], cache: aioredis.Redis, prefix: str = "") -> None:
        self.collection = db[COLLECTION]
        self.cache = cache
        self.prefix = prefix  # `cache:` where the cache shares a Redis Cluster's one db with live state

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert a new user; a taken username, email or phone → 409 naming the field."""
        for _ in range(3):  # an invite-code collision is retried with a new code
            try:
                result = await self.collection.insert_one(doc)
            except DuplicateKeyError as exc:
                field = _duplicate_field(exc)
                if field == "invite_code":
                    doc.pop("_id", None)
                    doc["invite_code"] = random_code(8, INVITE_ALPHABET)
                    continue
                raise Conflict(f"This {field} is already taken.", f"{field}_taken", {"field": field}) from None
            doc["_id"] = result.inserted_id
            return doc
        raise Conflict("Could not allocate an invite code; try again.")

    async def get(self, user_id: ObjectId | str) -> dict[str, Any] | None:
        """A user by id (cached, without the password hash), or None."""
        key = cache_key(self.prefix, user_id)
        cached = await self.cache.get(key)
        if cached is not None:
            return bson.decode(cast(bytes, cached))  # the cache client answers bytes
        if not isinstance(user_id, ObjectId):
            if not ObjectId.is_valid(user_id):
                return None
            user_id = ObjectId(user_id)
        doc = await self.collection.find_one({"_id": user_id}, {"password_hash": 0})
        if doc is not None:
            await self.cache.set(key, bson.encode(doc), ex=CACHE_TTL)
        return doc

    async def find_for_login(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """The full document (password hash included) matching a login query."""
        return await self.collection.find_one(query)

    async def verified_holder(self, phone: str) -> dict[str, Any] | None:
        """The account that verified this phone (full document), or None."""
        return await self.collection.find_one({"phone": phone, "phone_verified": True})

    async def claim_phone(self, user_id: ObjectId, phone: str) -> dict[str, Any] | None:
        """Make `phone` this account's verified phone (409 if another verified it); unverified holders lose it."""
        doc = await self.update(user_id, {"phone": phone, "phone_verified": True})
        await self.release_unverified(phone, user_id)
        return doc

    async def release_unverified(self, phone: str, keep: ObjectId) -> None:
        """Take the phone off every other account that holds it without having verified it."""
        query = {"phone": phone, "phone_verified": {"$ne": True}, "_id": {"$ne": keep}}
        holders = [doc["_id"] async for doc in self.collection.find(query, {"_id": 1})]
        if not holders:
            return
        await self.collection.update_many(
            {**query, "_id": {"$in": holders}},
            {"$set": {"phone": None, "phone_verified": False, "updated_at": utcnow()}},
        )
        for holder in holders:
            await self.forget(holder)

    async def update(
        self,
        user_id: ObjectId,
        changes: dict[str, Any],
        *,
        expect: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Apply `$set` changes (plus other operators in `extra`) and drop the cache entry.

        `expect` adds conditions to the filter (compare-and-set); None when nothing matched.
        """
        update: dict[str, Any] = {"$set": {**changes, "updated_at": utcnow()}, **(extra or {})}
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": user_id, **(expect or {})},
                update,
                projection={"password_hash": 0},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as exc:
            field = _duplicate_field(exc)
            raise Conflict(f"This {field} is already taken.", f"{field}_taken", {"field": field}) from None
        finally:
            await self.forget(user_id)
        return doc

    async def forget(self, user_id: ObjectId | str) -> None:
        """Drop a user's cache entry (after any write)."""
        await self.cache.delete(cache_key(self.prefix, user_id))


async def present(db: AsyncDatabase[Any], docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Users as the API shows them: organizations expanded to `{id, name}` with one query."""
    org_ids = {oid for doc in docs for oid in orgs_of(doc)}
    names: dict[ObjectId, str] = {}
    if org_ids:
        async for org in db["organizations"].find({"_id": {"$in": list(org_ids)}}, {"name": 1}):
            names[org["_id"]] = org["name"]
    out = []
    for doc in docs:
        shown = {
            "phone_verified": False,
            **doc,
            "organizations": [{"id": oid, "name": names[oid]} for oid in orgs_of(doc) if oid in names],
        }
        data = USER_OUT.dump(shown)
        if doc.get("category") != Category.DRIVER:
            data.pop("rating", None)
            data.pop("rating_count", None)
        else:
            data.setdefault("rating", None)
            data.setdefault("rating_count", 0)
        out.append(data)
    return out


async def present_one(db: AsyncDatabase[Any], doc: dict[str, Any]) -> dict[str, Any]:
    """One user as the API shows it."""
    return (await present(db, [doc]))[0]


USER_OUT = UserOut()
