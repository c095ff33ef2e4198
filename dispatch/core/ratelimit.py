"""The one rate limiter: fixed windows counted in Redis, shared by every server process."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from dispatch.core.errors import ApiError


def _window(seconds: int) -> int:
    return int(time.time()) // seconds


async def count(redis: aioredis.Redis, limits: dict[str, tuple[int, int]], name: str, key: str) -> int:
    """Count one attempt against limit `name` for `key` without judging it; returns the window's total."""
    seconds = limits[name][1]
    redis_key = f"rl:{name}:{key}:{_window(seconds)}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(redis_key)
        pipe.expire(redis_key, seconds + 1)
        used, _ = await pipe.execute()
    return int(used)


async def used(redis: aioredis.Redis, limits: dict[str, tuple[int, int]], name: str, key: str) -> int:
    """How many attempts limit `name` has counted for `key` in the current window."""
    value = await redis.get(f"rl:{name}:{key}:{_window(limits[name][1])}")
    return int(value or 0)


def exceeded(limits: dict[str, tuple[int, int]], name: str) -> ApiError:
    """The 429 of limit `name`, with Retry-After until its window ends."""
    seconds = limits[name][1]
    retry_after = max(1, (_window(seconds) + 1) * seconds - int(time.time()))
    return ApiError(
        429,
        "rate_limited",
        f"Too many attempts; try again in {retry_after} s.",
        {"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


async def hit(redis: aioredis.Redis, limits: dict[str, tuple[int, int]], name: str, key: str) -> None:
    """Count one attempt against limit `name` for `key`; over the limit → 429 with Retry-After."""
    if await count(redis, limits, name, key) > limits[name][0]:
        raise exceeded(limits, name)


async def clear(redis: aioredis.Redis, limits: dict[str, tuple[int, int]], name: str, key: str) -> None:
    """Forget the attempts of the current window (after a success)."""
    await redis.delete(f"rl:{name}:{key}:{_window(limits[name][1])}")
