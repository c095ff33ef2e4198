"""SMS log-in: a one-time 6-digit code sent to a phone, traded once for a token pair.

Only a digest of the code is kept in Redis, for 5 minutes, beside a count of attempts;
the fifth wrong code burns it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from dispatch import ratelimit
from dispatch.errors import ApiError, Conflict
from dispatch.identity import Identity
from dispatch.security import digest

CODE_TTL = 300
CODE_DIGITS = 6
MAX_ATTEMPTS = 5

# Count the attempt and read the digest in one step, so concurrent guesses cannot
# exceed MAX_ATTEMPTS; a missing (expired, used or burnt) code is never recreated.
_ATTEMPT = """
local stored = redis.call('HGET', KEYS[1], 'digest')
if not stored then return false end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {stored, attempts}
"""


def invalid_code(**details: Any) -> ApiError:
    """The one answer to a wrong, expired, used or burnt code."""
    return ApiError(400, "invalid_code", "This code is wrong or no longer valid; ask for a new one.", details)


class SmsLogin:
    """Codes and log-ins of one process, on the identity's Redis, users and task queue."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.redis = identity.redis
        self.limits = identity.settings.rate_limit_table

    async def request(self, phone: str, ip: str) -> None:
        """Send a fresh code to an E.164 phone (replacing any earlier one); throttled per phone and IP."""
        await ratelimit.hit(self.redis, self.limits, "sms_request_ip", ip)
        await ratelimit.hit(self.redis, self.limits, "sms_request_phone", phone)
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        key = _key(phone)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": self._digest(phone, code), "attempts": 0})
            pipe.expire(key, CODE_TTL)
            await pipe.execute()
        await self.identity.tasks.send("sms.send", phone, f"Your dispatch code: {code}")

    async def verify(self, phone: str, code: str, ip: str, user_agent: str) -> dict[str, Any]:
        """Trade a right code for a token pair of the phone's account, created (BASE) if new."""
        await ratelimit.hit(self.redis, self.limits, "sms_verify_ip", ip)
        await self._spend(phone, code)
        user = await self._user_of(phone)
        self.identity._check_can_log_in(user)  # the same active/verified rules as a password log-in
        return await self.identity.open_session(user, ip, user_agent)

    async def _spend(self, phone: str, code: str) -> None:
        """Use up a right code; a wrong one counts, and the last allowed wrong one burns the code."""
        key = _key(phone)
        found = await self.redis.eval(_ATTEMPT, 1, key)
        if not found:
            raise invalid_code()
        stored, attempts = found[0].decode(), int(found[1])
        if attempts <= MAX_ATTEMPTS and hmac.compare_digest(stored, self._digest(phone, code)):
            if await self.redis.delete(key):  # single use: only one of concurrent right answers wins
                return
            raise invalid_code()
        if attempts >= MAX_ATTEMPTS:
            await self.redis.delete(key)
        raise invalid_code(attempts_left=max(0, MAX_ATTEMPTS - attempts))

    async def _user_of(self, phone: str) -> dict[str, Any]:
        users = self.identity.users
        user = await users.find_for_login({"phone": phone})
        if user is not None:
            return user
        try:
            return await self.identity.register_phone(phone)
        except Conflict as exc:
            # The phone was taken a moment ago (a registration with this phone): log that account in.
            user = await users.find_for_login({"phone": phone}) if exc.code == "phone_taken" else None
            if user is None:
                raise
            return user

    def _digest(self, phone: str, code: str) -> str:
        # Salted with the phone and peppered with the server secret: a Redis dump alone reveals no code.
        return digest(f"{phone}:{code}:{self.identity.settings.jwt_secret}")


def _key(phone: str) -> str:
    return f"sms:code:{phone}"
