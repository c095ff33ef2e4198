"""Passwords (bcrypt, off the event loop) and signed tokens (PyJWT, HS256)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import bcrypt
import jwt

from dispatch.core.timeutil import utcnow

ALGORITHM = "HS256"
# bcrypt releases the GIL while hashing, so these threads run beside the event loop.
_HASH_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bcrypt")
ALPHANUMERIC = string.ascii_letters + string.digits
MAX_PASSWORD_BYTES = 72  # bcrypt's limit


class TokenError(Exception):
    """A token is forged, expired, of the wrong purpose or malformed."""


async def hash_password(password: str, rounds: int) -> str:
    """bcrypt hash of a password, computed in a worker thread."""
    salt = bcrypt.gensalt(rounds)
    digest = await asyncio.get_running_loop().run_in_executor(_HASH_POOL, bcrypt.hashpw, password.encode(), salt)
    return digest.decode()


async def check_password(password: str, hashed: str | None) -> bool:
    """Whether the password matches; with no hash, still spends the time (no account probing)."""
    candidate = password.encode()
    usable = hashed is not None and len(candidate) <= MAX_PASSWORD_BYTES
    target = (hashed if usable else _DUMMY_HASH).encode()  # type: ignore[union-attr]
    matched = await asyncio.get_running_loop().run_in_executor(
        _HASH_POOL, bcrypt.checkpw, candidate[:MAX_PASSWORD_BYTES], target
    )
    return bool(matched) and usable


_DUMMY_HASH = bcrypt.hashpw(b"no such account", bcrypt.gensalt(4)).decode()


def password_fingerprint(hashed: str | None) -> str:
    """A short digest of the current hash: tokens carrying it die when the password changes."""
    return hashlib.sha256((hashed or "").encode()).hexdigest()[:16]


def random_code(length: int, alphabet: str = ALPHANUMERIC) -> str:
    """A random string from a CSPRNG (invite codes, file names)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def digest(value: str) -> str:
    """SHA-256 hex digest, for storing secrets (refresh tokens, SMS codes) that must not leak."""
    return hashlib.sha256(value.encode()).hexdigest()


def encode_token(secret: str, purpose: str, subject: str, ttl: int, **claims: Any) -> str:
    """A signed JWT with `sub`, `typ` (purpose), `jti`, `iat` and `exp`."""
    now = utcnow()
    payload = {
        "sub": subject,
        "typ": purpose,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str, purpose: str) -> dict[str, Any]:
    """Verify signature, expiry and purpose; only HS256 is accepted (no `alg: none`)."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "typ", "jti", "iat", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.PyJWTError:
        raise TokenError("invalid") from None
    if claims.get("typ") != purpose:
        raise TokenError("invalid")
    return claims
