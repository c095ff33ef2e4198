"""SMS codes: log-in with a one-time 6-digit code, and verifying the phone of a signed-in account.

Only a digest of a code is kept in Redis, for 5 minutes, beside a count of attempts;
the fifth wrong code burns it. Sending is throttled per phone and per IP.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from bson import ObjectId

from dispatch.core import ratelimit
from dispatch.core.errors import ApiError, Conflict, NotFound
from dispatch.core.security import digest
from dispatch.domain.identity import Identity

CODE_TTL = 300
CODE_DIGITS = 6
MAX_ATTEMPTS = 5

# Count the attempt and read the digest in one step, so concurrent guesses cannot
# exceed MAX_ATTEMPTS; a missing (expired, used or burnt) code is never recreated.
_ATTEMPT = """
local stored = redis.call('HGET', KEYS[1], 'digest')
if not stored then return false end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {stored, attempts, redis.call('HGET', KEYS[1], 'phone')}
"""


def invalid_code(**details: Any) -> ApiError:
    """The one answer to a wrong, expired, used or burnt code."""
    return ApiError(400, "invalid_code", "This code is wrong or no longer valid; ask for a new one.", details)


def phone_taken() -> Conflict:
    """The 409 of a phone another account has verified."""
    return Conflict("This phone is already taken.", "phone_taken", {"field": "phone"})


class SmsCodes:
    """One-time codes texted to a phone, kept in Redis under a key of the caller's choosing."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.redis = identity.redis
        self.limits = identity.settings.rate_limit_table

    async def send(self, key: str, phone: str, ip: str) -> None:
        """Text a fresh code for `key` to an E.164 phone (replacing any earlier one); throttled per phone and IP."""
        await ratelimit.hit(self.redis, self.limits, "sms_request_ip", ip)
        await ratelimit.hit(self.redis, self.limits, "sms_request_phone", phone)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": self._digest(key, phone, code), "attempts": 0, "phone": phone})
            pipe.expire(key, CODE_TTL)
            await pipe.execute()
        await self.identity.tasks.send("sms.send", phone, f"Your dispatch code: {code}")

    async def spend(self, key: str, code: str, ip: str) -> str:
        """Use up a right code and return its phone; a wrong one counts, the last allowed one burns it."""
        await ratelimit.hit(self.redis, self.limits, "sms_verify_ip", ip)
        found = await self.redis.eval(_ATTEMPT, 1, key)
        if not found:
            raise invalid_code()
        # A code stored before codes named their phone has no third field (Lua drops a trailing nil): it fails.
        stored, attempts, phone = found[0].decode(), int(found[1]), found[2].decode() if len(found) > 2 else ""
        if attempts <= MAX_ATTEMPTS and hmac.compare_digest(stored, self._digest(key, phone, code)):
            if await self.redis.delete(key):  # single use: only one of concurrent right answers wins
                return phone
            raise invalid_code()
        if attempts >= MAX_ATTEMPTS:
            await self.redis.delete(key)
        raise invalid_code(attempts_left=max(0, MAX_ATTEMPTS - attempts))

    def _digest(self, key: str, phone: str, code: str) -> str:
        # Salted with the key and phone, peppered with the server secret: a Redis dump alone reveals no code.
        return digest(f"{key}:{phone}:{code}:{self.identity.settings.jwt_secret}")


class SmsLogin:
    """Log-in by a code texted to a phone; it reaches only the account that verified the phone."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.codes = SmsCodes(identity)

    async def request(self, phone: str, ip: str) -> None:
        """Send a fresh log-in code to an E.164 phone."""
        await self.codes.send(_login_key(phone), phone, ip)

    async def verify(self, phone: str, code: str, ip: str, user_agent: str) -> dict[str, Any]:
        """Trade a right code for a token pair of the phone's verified holder, created (BASE) if none."""
        await self.codes.spend(_login_key(phone), code, ip)
        user = await self._user_of(phone)
        self.identity._check_can_log_in(user)  # the same active/verified rules as a password log-in
        return await self.identity.open_session(user, ip, user_agent)

    async def _user_of(self, phone: str) -> dict[str, Any]:
        users = self.identity.users
        user = await users.verified_holder(phone)
        if user is None:
            try:
                user = await self.identity.register_phone(phone)
            except Conflict as exc:
                # Verified by another account a moment ago: log that account in.
                user = await users.verified_holder(phone) if exc.code == "phone_taken" else None
                if user is None:
                    raise
        # The owner has proven the number: whoever held it unverified loses it.
        await users.release_unverified(phone, user["_id"])
        return user


class PhoneVerification:
    """A signed-in user's new phone counts only once a code texted to it comes back."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.codes = SmsCodes(identity)

    async def request(self, user_id: ObjectId, phone: str, ip: str) -> None:
        """Text a code to `phone` for this account; 409 when another account has verified it."""
        holder = await self.identity.users.verified_holder(phone)
        if holder is not None and holder["_id"] != user_id:
            raise phone_taken()
        await self.codes.send(_verify_key(user_id), phone, ip)

    async def verify(self, user_id: ObjectId, code: str, ip: str) -> dict[str, Any]:
        """Set the phone the code was sent to as the account's verified phone; returns the user."""
        phone = await self.codes.spend(_verify_key(user_id), code, ip)
        user = await self.identity.users.claim_phone(user_id, phone)
        if user is None:  # the account was deleted meanwhile
            raise NotFound("No such user.")
        return user


def _login_key(phone: str) -> str:
    return f"sms:code:{phone}"


def _verify_key(user_id: ObjectId) -> str:
    return f"sms:verify:{user_id}"
