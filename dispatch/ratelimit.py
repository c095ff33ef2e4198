"""The one rate limiter: fixed windows counted in Redis, shared by every server process."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from dispatch.errors import ApiError


async def hit(redis: aioredis.Redis, limits: dict[str, tuple[int, int]], name: str, key: str) -> None:
    """Count one attempt against limit `name` for `key`; over the limit → 429 with Retry-After."""
    count, seconds = limits[name]
    window = int(time.time()) // seconds
    redis_key = f"rl:{name}:{key}:{window}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(redis_key)
        pipe.expire(redis_key, seconds + 1)
        used, _ = await pipe.execute()
    if used > count:
        retry_after = max(1, (window + 1) * seconds - int(time.time()))
        raise ApiError(429, "rate_limited", f"Too many attempts; try again in {retry_after} s.",
                       {"retry_after": retry_after}, headers={"Retry-After": str(retry_after)})


async def clear(redis: aioredis.Redis, limits: dict[str, tuple[int, int]], name: str, key: str) -> None:
    """Forget the attempts of the current window (after a success)."""
    seconds = limits[name][1]
    await redis.delete(f"rl:{name}:{key}:{int(time.time()) // seconds}")
