"""Login sessions in Redis: one per device, rotating refresh tokens, replay detection.

Layout: `sess:<sid>` hash (uid, rt = digest of the current refresh secret, ip, ua,
created, last_used); `{sess:<sid>}:used` set of digests already rotated away (its hash tag puts it
in the slot of `sess:<sid>` on a Redis Cluster, so one script can check and rotate both);
`usess:<uid>` set of the user's session ids. A refresh token is `<sid>.<secret>`.

A session's own keys change together (one script, or one DEL); the user's set lives in another
slot, so it is written beside them in a plain pipeline, never in one transaction: a login whose
pipeline failed answers 503 and its tokens never leave, and ids whose session is gone are dropped
from the set when it is next listed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from dispatch.core.events import EventBus, session_ended
from dispatch.core.security import digest

TOUCH_EVERY = 60  # seconds between last-used updates made by ordinary requests

# Compare-and-set of the refresh digest: 1 rotated, 0 no session, -1 replay of a used token, -2 unknown.
ROTATE = """
local current = redis.call('HGET', KEYS[1], 'rt')
if not current then return 0 end
if current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'rt', ARGV[2], 'last_used', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return 1
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -1 end
return -2
"""


def session_key(sid: str) -> str:
    """The hash of one session."""
    return f"sess:{sid}"


def used_key(sid: str) -> str:
    """The set of a session's rotated-away refresh digests (same cluster slot as its hash)."""
    return "{" + session_key(sid) + "}:used"


def user_key(user_id: str) -> str:
    """The set of a user's session ids."""
    return f"usess:{user_id}"


class RefreshError(Exception):
    """The refresh token cannot be used; `replayed` when it had been rotated away already."""

    def __init__(self, replayed: bool = False) -> None:
        super().__init__("replayed" if replayed else "invalid")
        self.replayed = replayed


@dataclass
class Session:
    """One login session as stored."""

    id: str
    user_id: str
    ip: str
    user_agent: str
    created_at: float
    last_used_at: float


class SessionStore:
    """Sessions of all users, shared by every server process through Redis."""

    def __init__(self, redis: aioredis.Redis, ttl: int, events: EventBus) -> None:
        self.redis = redis
        self.ttl = ttl
        self.events = events  # an ended session's open sockets learn it through the bus
        self._rotate = redis.register_script(ROTATE)

    async def create(self, user_id: str, ip: str, user_agent: str) -> tuple[str, str]:
        """Open a session; returns (session id, refresh token)."""
        sid = secrets.token_hex(16)
        secret = secrets.token_urlsafe(32)
        now = str(time.time())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(user_key(user_id), sid)
            pipe.expire(user_key(user_id), self.ttl)
            pipe.hset(
                session_key(sid),
                mapping={
                    "uid": user_id,
                    "rt": digest(secret),
                    "ip": ip,
                    "ua": user_agent[:300],
                    "created": now,
                    "last_used": now,
                },
            )
            pipe.expire(session_key(sid), self.ttl)
            await pipe.execute()
        return sid, f"{sid}.{secret}"

    async def rotate(self, refresh_token: str) -> tuple[str, str, str]:
        """Swap a refresh token for a new one; returns (user id, session id, new token).

        A token that was already rotated away ends the whole session (it was stolen or replayed).
        """
        sid, _, secret = refresh_token.partition(".")
        if not sid or not secret or len(refresh_token) > 200:
            raise RefreshError()
        new_secret = secrets.token_urlsafe(32)
        outcome = await self._rotate(
            keys=[session_key(sid), used_key(sid)],
            args=[digest(secret), digest(new_secret), str(time.time()), self.ttl],
        )
        if outcome == -1:
            uid = await self.redis.hget(session_key(sid), "uid")
            await self.revoke(sid, _text(uid) if uid else None)
            raise RefreshError(replayed=True)
        if outcome != 1:
            raise RefreshError()
        uid = await self.redis.hget(session_key(sid), "uid")
        if uid is None:
            raise RefreshError()
        await self.redis.expire(user_key(_text(uid)), self.ttl)
        return _text(uid), sid, f"{sid}.{new_secret}"

    async def owner(self, sid: str) -> tuple[str | None, float]:
        """The user id a live session belongs to (None if gone), and when it was last used."""
        uid, last_used = await self.redis.hmget(session_key(sid), ["uid", "last_used"])
        return (_text(uid) if uid else None), float(last_used or 0)

    async def touch(self, sid: str) -> None:
        """Record that the session was used now."""
        await self.redis.hset(session_key(sid), "last_used", str(time.time()))

    async def list(self, user_id: str) -> list[Session]:
        """The user's live sessions, newest first."""
        sids = [_text(s) for s in await self.redis.smembers(user_key(user_id))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(session_key(sid))
            rows = await pipe.execute()
        sessions, gone = [], []
        for sid, row in zip(sids, rows, strict=False):
            if not row:
                gone.append(sid)
                continue
            sessions.append(_session(sid, row))
        if gone:
            await self.redis.srem(user_key(user_id), *gone)
        return sorted(sessions, key=lambda s: s.created_at, reverse=True)

    async def revoke(self, sid: str, user_id: str | None) -> bool:
        """End one session; True if it existed. Its open websockets close too."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(session_key(sid), used_key(sid))  # the session ends here: first, in one step
            if user_id:
                pipe.srem(user_key(user_id), sid)
            deleted, *_ = await pipe.execute()
        if user_id:
            await self.events.publish(session_ended(user_id, sid))
        return bool(deleted)

    async def revoke_all(self, user_id: str) -> int:
        """End every session of a user; returns how many there were."""
        sids = [_text(s) for s in await self.redis.smembers(user_key(user_id))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:  # one DEL per session: its keys share a slot, other sessions' may not
                pipe.delete(session_key(sid), used_key(sid))
            pipe.delete(user_key(user_id))
            await pipe.execute()
        await self.events.publish(session_ended(user_id, "*"))
        return len(sids)


def _text(value: bytes | str) -> str:
    """A Redis answer as text (the client answers bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def _session(sid: str, row: dict[bytes, bytes]) -> Session:
    text = {k.decode(): v.decode() for k, v in row.items()}
    return Session(
        sid,
        text["uid"],
        text.get("ip", ""),
        text.get("ua", ""),
        float(text.get("created", 0)),
        float(text.get("last_used", 0)),
    )
