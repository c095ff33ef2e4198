"""The storage clients of one process: pymongo's async client and redis.asyncio.

Redis is one server (`redis.asyncio.Redis`) or a Redis Cluster (`redis.asyncio.RedisCluster`),
chosen once here from `DISPATCH_REDIS_CLUSTER`. Both speak the same commands for what the server
does, so the rest of the code holds "a Redis client" and keeps one path; where the two differ
(sharded pub/sub, the cache's key prefix, the readiness check) it asks `is_cluster`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from bson import ObjectId
from kombu.exceptions import OperationalError as BrokerUnreachable
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisUnreachable
from redis.exceptions import TimeoutError as RedisTimeout

from dispatch.settings import Settings

log = logging.getLogger("dispatch.storage")

# What a call raises when MongoDB, Redis or the Celery broker cannot be reached right now (a killed
# or restarting server, a timeout; on a Redis Cluster also a node down, the cluster not `ok`, slots
# moving): answered 503 `service_unavailable`, never 500.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisUnreachable,
    RedisTimeout,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
UNAVAILABLE: tuple[type[Exception], ...] = (ConnectionFailure, *REDIS_UNAVAILABLE, BrokerUnreachable)
# Whatever a Redis call may raise (redis-py's cluster client raises some errors outside RedisError).
REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)

REDIS_POOL_SIZE = 200  # connections per client and process
REDIS_POOL_WAIT = 5.0  # seconds a command waits for a free connection before failing (503)

# Indexes every collection needs: (collection, IndexModel). Models append to it at import.
INDEXES: list[tuple[str, IndexModel]] = []
# Indexes a model no longer wants (collection, name): dropped at start-up before INDEXES are created.
RETIRED: list[tuple[str, str]] = []
# Idempotent data upgrades (a field older documents lack): run at start-up before indexes are created.
Migration = Callable[[AsyncDatabase[Any]], Awaitable[None]]
MIGRATIONS: list[Migration] = []


def index(collection: str, keys: Any, **options: Any) -> None:
    """Declare an index; `ensure_indexes` creates it at start-up."""
    INDEXES.append((collection, IndexModel(keys, **options)))


def retire_index(collection: str, name: str) -> None:
    """Declare an index of before that must go (its keys or options changed)."""
    RETIRED.append((collection, name))


def migration(upgrade: Migration) -> Migration:
    """Declare an idempotent data upgrade that `ensure_indexes` runs first."""
    MIGRATIONS.append(upgrade)
    return upgrade


@dataclass
class Stores:
    """The clients one process holds, created on its running event loop."""

    mongo: AsyncMongoClient[Any]
    redis: aioredis.Redis
    cache: aioredis.Redis  # may be `redis` itself (a cluster's cache is a key prefix)

    async def close(self) -> None:
        """Close every client."""
        await self.redis.aclose()
        if self.cache is not self.redis:
            await self.cache.aclose()
        await self.mongo.close()


def open_stores(settings: Settings) -> Stores:
    """Create the clients; call from a coroutine running on the process's loop."""
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="dispatch"
    )
    # A pooled connection that died with a restarted Redis fails on its next use: retry such a
    # command on a fresh connection (twice, briefly apart) instead of failing the request, while a
    # Redis that is really down still fails fast (503).
    options = {
        "decode_responses": False,
        "health_check_interval": 30,
        "socket_connect_timeout": 2,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        "retry_on_error": [RedisUnreachable, RedisTimeout],
    }
    if settings.redis_cluster:
        redis = _cluster(settings.redis_url, options)
        same = settings.effective_cache_url == settings.redis_url
        cache = redis if same else _cluster(settings.effective_cache_url, options)
        return Stores(mongo=mongo, redis=redis, cache=cache)
    redis = aioredis.Redis.from_pool(_pool(settings.redis_url, options))
    cache = aioredis.Redis.from_pool(_pool(settings.effective_cache_url, options))
    return Stores(mongo=mongo, redis=redis, cache=cache)


def _cluster(url: str, options: dict[str, Any]) -> aioredis.Redis:
    """A Redis Cluster client from the URL of one of its nodes (it discovers the others on first use).

    Typed as `Redis`: it answers every command the server sends as one Redis would, so callers keep
    one code path; `is_cluster` tells the few places that differ.
    """
    client = RedisCluster.from_url(
        url,
        max_connections=REDIS_POOL_SIZE,  # per node
        **options,
    )
    return cast(aioredis.Redis, client)


def is_cluster(redis: Any) -> bool:
    """Whether a Redis client talks to a Redis Cluster."""
    return isinstance(redis, RedisCluster)


async def check_redis(redis: aioredis.Redis) -> None:
    """Raise unless Redis serves: one server answers PING; a cluster reports `cluster_state:ok`."""
    if not is_cluster(redis):
        await redis.ping()
        return
    state = (await cast(RedisCluster, redis).cluster_info()).get("cluster_state")
    if state != "ok":
        raise RedisUnreachable(f"cluster_state is {state}")


def _pool(url: str, options: dict[str, Any]) -> aioredis.BlockingConnectionPool:
    # A burst (hundreds of sockets opening or closing at once) waits for a free connection
    # instead of failing with "too many connections".
    return aioredis.BlockingConnectionPool.from_url(
        url, max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT, **options
    )


async def ensure_indexes(db: AsyncDatabase[Any], indexes: Iterable[tuple[str, IndexModel]] = ()) -> None:
    """Upgrade old data, drop retired indexes, create every declared index (all idempotent)."""
    for upgrade in MIGRATIONS:
        await upgrade(db)
    for collection, name in RETIRED:
        if name in await db[collection].index_information():
            await db[collection].drop_index(name)
    by_collection: dict[str, list[IndexModel]] = {}
    for collection, model in list(indexes) or INDEXES:
        by_collection.setdefault(collection, []).append(model)
    for collection, models in by_collection.items():
        await db[collection].create_indexes(models)
    log.debug("indexes ensured on %d collections", len(by_collection))


@functools.lru_cache(maxsize=65536)
def object_id(text: str) -> ObjectId:
    """The ObjectId of a hex id, remembered: the GPS stream names the same drivers, trucks and orders
    thousands of times a second, and parsing one costs more than looking it up (ObjectIds are immutable)."""
    return ObjectId(text)
