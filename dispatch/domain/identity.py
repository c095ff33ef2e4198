"""Identity: registration, verification, log-in, token sessions and password changes.

Handlers stay thin: they validate input and call these methods.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import ratelimit
from dispatch.core.errors import ApiError, Conflict, ValidationFailed
from dispatch.core.events import EventBus
from dispatch.core.phones import PhoneError, looks_like_phone, normalize
from dispatch.core.security import (
    TokenError,
    check_password,
    decode_token,
    encode_token,
    hash_password,
    password_fingerprint,
    random_code,
)
from dispatch.core.vocabulary import Category
from dispatch.domain.queue import TaskQueue
from dispatch.domain.sessions import TOUCH_EVERY, RefreshError, SessionStore
from dispatch.settings import Settings
from models.users import Users, new_user, password_problems

log = logging.getLogger("dispatch.identity")

ACTIVATION_TTL = 48 * 3600
RESET_TTL = 3600
EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+$")
PHONE_USERNAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _pair_limits(limits: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The limits with `login_account_ip` (failures of one address on one account): as `login_account`."""
    return {"login_account_ip": limits["login_account"], **limits}


@dataclass
class Caller:
    """Who sent a request: the user document (cached copy) and the session it came through."""

    user: dict[str, Any]
    session_id: str


class Identity:
    """Accounts and sessions of one process."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Any],
        redis: aioredis.Redis,
        cache: aioredis.Redis,
        tasks: TaskQueue,
        events: EventBus,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.users = Users(db, cache, settings.cache_prefix)
        self.sessions = SessionStore(redis, settings.refresh_ttl, events)
        self.tasks = tasks

    # --- accounts -------------------------------------------------------
    async def register(
        self, data: dict[str, Any], *, category: str | None = None, verified: bool = False
    ) -> dict[str, Any]:
        """Create an account and send its activation email (unless already verified).

        `verified` (accounts made by an operator: seeds, the CLI) trusts the email and phone as given;
        a self-registered phone stays unverified until a texted code comes back.
        """
        invited_by = await self._inviter(str(data["invite_code"])) if data.get("invite_code") else None
        if data.get("phone") and await self.users.verified_holder(data["phone"]) is not None:
            raise Conflict("This phone is already taken.", "phone_taken", {"field": "phone"})
        password_hash = await hash_password(data["password"], self.settings.bcrypt_rounds)
        doc = new_user(
            data,
            password_hash,
            category=category or data["category"],
            verified=verified,
            invited_by=invited_by,
            phone_verified=verified,
        )
        doc = await self.users.insert(doc)
        doc.pop("password_hash", None)
        if not verified:
            await self.send_activation(doc)
        return doc

    async def register_phone(self, phone: str) -> dict[str, Any]:
        """Create a BASE account known by a verified E.164 phone alone: generated username, no password."""
        for _ in range(3):  # a generated-username collision is retried with a new name
            data = {"username": f"user_{random_code(10, PHONE_USERNAME_ALPHABET)}", "phone": phone}
            try:
                doc = await self.users.insert(new_user(data, None, category=Category.BASE, phone_verified=True))
            except Conflict as exc:
                if exc.code != "username_taken":
                    raise
                continue
            doc.pop("password_hash", None)
            return doc
        raise Conflict("Could not allocate a username; try again.")

    async def _inviter(self, code: str) -> ObjectId:
        inviter = await self.users.collection.find_one({"invite_code": code.strip().upper()}, {"_id": 1})
        if inviter is None:
            raise ValidationFailed({"invite_code": ["No user has this invite code."]})
        return cast(ObjectId, inviter["_id"])

    async def send_activation(self, user: dict[str, Any]) -> None:
        """Email a signed, expiring, single-use activation link to the user's address."""
        token = encode_token(
            self.settings.jwt_secret, "activate", str(user["_id"]), ACTIVATION_TTL, email=user["email_lower"]
        )
        link = f"{self.settings.public_url.rstrip('/')}/api/v1/auth/activate?{urlencode({'token': token})}"
        body = (
            f"Hello {user['username']},\n\nConfirm your email address to start using dispatch:\n\n{link}\n\n"
            f"The link works once, for {ACTIVATION_TTL // 3600} hours.\n"
        )
        await self.tasks.send("email.send", user["email"], "Confirm your email address", body)

    async def activate(self, token: str) -> dict[str, Any]:
        """Mark the address of an activation token verified; a used, expired or forged token → 400."""
        claims = self._claims(token, "activate")
        await self._spend(claims)
        user = await self.users.update(
            ObjectId(claims["sub"]), {"email_verified": True}, expect={"email_lower": claims.get("email")}
        )
        if user is None:
            raise ApiError(400, "invalid_token", "This link is not valid for the account's current address.")
        return user

    # --- log-in and sessions -------------------------------------------
    async def login(self, login: str, password: str, ip: str, user_agent: str) -> dict[str, Any]:
        """Check credentials (email, phone or username) and open a session; returns the token pair."""
        limits = self.settings.rate_limit_table
        await ratelimit.hit(self.redis, limits, "login_ip", ip)
        user = await self.users.find_for_login(self._login_query(login))
        # One count per account whatever it is called by (username, email, phone); unknown logins by their text.
        key = str(user["_id"]) if user else login.strip().lower()
        await self._admit(key, ip)
        if not await check_password(password, user.get("password_hash") if user else None) or user is None:
            await ratelimit.count(self.redis, limits, "login_account", key)
            raise ApiError(401, "invalid_credentials", "Wrong login or password.")
        self._check_can_log_in(user)
        await ratelimit.clear(self.redis, _pair_limits(limits), "login_account_ip", f"{key}|{ip}")
        return await self.open_session(user, ip, user_agent)

    async def _admit(self, key: str, ip: str) -> None:
        """429 for an address over its own limit on this account, or one that failed while the account is over."""
        # An address with no failure here may still try while the account is under attack: one attacker
        # cannot lock the owner out, and each further address gets one guess before it is refused too.
        limits = _pair_limits(self.settings.rate_limit_table)
        tries = await ratelimit.count(self.redis, limits, "login_account_ip", f"{key}|{ip}")  # this one included
        if tries > limits["login_account_ip"][0]:
            raise ratelimit.exceeded(limits, "login_account_ip")
        if tries > 1 and await ratelimit.used(self.redis, limits, "login_account", key) >= limits["login_account"][0]:
            raise ratelimit.exceeded(limits, "login_account")

    def _login_query(self, login: str) -> dict[str, Any]:
        text = login.strip()
        if EMAIL_LIKE.match(text):
            return {"email_lower": text.lower()}
        if looks_like_phone(text):
            try:
                return {"phone": normalize(text), "phone_verified": True}  # an unconfirmed number proves nothing
            except PhoneError:
                pass
        return {"username_lower": text.lower()}

    def _check_can_log_in(self, user: dict[str, Any]) -> None:
        if not user.get("is_active", False):
            raise ApiError(403, "account_inactive", "This account is deactivated.")
        if self.settings.require_email_verification and not user.get("email_verified") and user.get("email"):
            raise ApiError(403, "email_not_verified", "Confirm your email address first: see the link we sent.")

    async def open_session(self, user: dict[str, Any], ip: str, user_agent: str) -> dict[str, Any]:
        """A new session for a user whose credentials were checked; returns the token pair."""
        sid, refresh_token = await self.sessions.create(str(user["_id"]), ip, user_agent)
        return self._token_pair(str(user["_id"]), sid, refresh_token)

    def _token_pair(self, user_id: str, sid: str, refresh_token: str) -> dict[str, Any]:
        access = encode_token(self.settings.jwt_secret, "access", user_id, self.settings.access_ttl, sid=sid)
        return {
            "access_token": access,
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_in": self.settings.access_ttl,
        }

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Rotate a refresh token; replay of a rotated one ends its whole session."""
        try:
            user_id, sid, new_token = await self.sessions.rotate(refresh_token)
        except RefreshError as exc:
            if exc.replayed:
                raise ApiError(
                    401, "refresh_token_reused", "This refresh token was already used; the session is ended."
                ) from None
            raise ApiError(401, "invalid_refresh_token", "The refresh token is not valid.") from None
        user = await self.users.get(user_id)
        if user is None or not user.get("is_active"):
            await self.sessions.revoke(sid, user_id)
            raise ApiError(401, "invalid_refresh_token", "The refresh token is not valid.")
        return self._token_pair(user_id, sid, new_token)

    async def resolve(self, token: str) -> Caller:
        """The caller behind an access token; 401 when it is expired, forged or its session ended."""
        try:
            claims = decode_token(self.settings.jwt_secret, token, "access")
        except TokenError as exc:
            code = "token_expired" if str(exc) == "expired" else "invalid_token"
            raise ApiError(
                401,
                code,
                "The access token has expired." if code == "token_expired" else "The access token is not valid.",
            ) from None
        sid = claims.get("sid")
        if not isinstance(sid, str):
            raise ApiError(401, "invalid_token", "The access token is not valid.")
        # The session check and the (cached) user read are independent: one round trip each, together.
        (owner, last_used), user = await asyncio.gather(self.sessions.owner(sid), self.users.get(claims["sub"]))
        if owner != claims["sub"]:
            raise ApiError(401, "session_ended", "This session has ended; sign in again.")
        if user is None or not user.get("is_active"):
            raise ApiError(401, "session_ended", "This account can no longer sign in.")
        if time.time() - last_used > TOUCH_EVERY:
            await self.sessions.touch(sid)
        return Caller(user, sid)

    # --- passwords ------------------------------------------------------
    async def forgot_password(self, email: str, ip: str) -> None:
        """Email a reset link if the address has an account; says nothing either way."""
        limits = self.settings.rate_limit_table
        await ratelimit.hit(self.redis, limits, "password_forgot_ip", ip)
        await ratelimit.hit(self.redis, limits, "password_forgot_account", email.lower())
        user = await self.users.find_for_login({"email_lower": email.lower()})
        if user is None or not user.get("is_active"):
            return
        token = encode_token(
            self.settings.jwt_secret,
            "reset",
            str(user["_id"]),
            RESET_TTL,
            pwd=password_fingerprint(user.get("password_hash")),
        )
        body = (
            f"Hello {user['username']},\n\nSomeone asked to reset your dispatch password. If it was you, "
            f"POST this token with your new password to /api/v1/auth/password/reset within an hour:\n\n"
            f"{token}\n\nOr open {self.settings.public_url.rstrip('/')}/reset-password?"
            f"{urlencode({'token': token})}\n\nIf it was not you, ignore this email.\n"
        )
        await self.tasks.send("email.send", user["email"], "Reset your password", body)

    async def reset_password(self, token: str, new_password: str) -> None:
        """Set a new password from a reset token; every session of the account ends."""
        claims = self._claims(token, "reset")
        user = await self.users.find_for_login({"_id": ObjectId(claims["sub"])})
        if user is None or password_fingerprint(user.get("password_hash")) != claims.get("pwd"):
            raise ApiError(400, "invalid_token", "This reset link is no longer valid.")
        self._check_policy(new_password, user)
        await self._spend(claims)
        await self._set_password(user, new_password)

    async def change_password(self, user_id: ObjectId, old_password: str, new_password: str) -> None:
        """Change a password knowing the old one; every session of the account ends."""
        user = await self.users.find_for_login({"_id": user_id})
        if user is None or not await check_password(old_password, user.get("password_hash")):
            raise ValidationFailed({"old_password": ["Wrong password."]})
        self._check_policy(new_password, user)
        await self._set_password(user, new_password)

    def _check_policy(self, password: str, user: dict[str, Any]) -> None:
        problems = password_problems(password, user.get("username", ""), user.get("email") or "")
        if problems:
            raise ValidationFailed({"new_password": problems})

    async def _set_password(self, user: dict[str, Any], password: str) -> None:
        password_hash = await hash_password(password, self.settings.bcrypt_rounds)
        await self.users.update(user["_id"], {"password_hash": password_hash})
        await self.sessions.revoke_all(str(user["_id"]))

    # --- single-use signed tokens ---------------------------------------
    def _claims(self, token: str, purpose: str) -> dict[str, Any]:
        try:
            claims = decode_token(self.settings.jwt_secret, token, purpose)
        except TokenError as exc:
            raise ApiError(
                400,
                "invalid_token",
                f"This link is {'expired' if str(exc) == 'expired' else 'not valid'}.",
                {"reason": str(exc)},
            ) from None
        if not ObjectId.is_valid(claims["sub"]):
            raise ApiError(400, "invalid_token", "This link is not valid.")
        return claims

    async def _spend(self, claims: dict[str, Any]) -> None:
        """Mark a single-use token used; a second use → 400."""
        ttl = max(1, int(claims["exp"] - time.time()) + 1)
        if not await self.redis.set(f"used:{claims['jti']}", b"1", nx=True, ex=ttl):
            raise ApiError(400, "invalid_token", "This link was already used.", {"reason": "used"})
