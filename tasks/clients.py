"""The store clients of one worker process, made on first use (after the prefork worker has forked)."""

from __future__ import annotations

from typing import Any

import redis
from celery.signals import worker_process_shutdown
from pymongo import MongoClient
from redis.cluster import RedisCluster

_CLIENTS: dict[str, Any] = {}


def mongo(url: str) -> MongoClient[Any]:
    """This process's MongoDB client of `url`."""
    key = "mongo " + url
    if key not in _CLIENTS:
        _CLIENTS[key] = MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="dispatch-worker")
    client: MongoClient[Any] = _CLIENTS[key]
    return client


def redis_of(url: str, *, cluster: bool = False) -> redis.Redis:
    """This process's Redis client of `url` (a node of a Redis Cluster when `cluster`)."""
    key = f"redis {cluster} {url}"
    if key not in _CLIENTS:
        if cluster:  # answers the commands a worker sends as one Redis would
            _CLIENTS[key] = RedisCluster.from_url(url, socket_connect_timeout=2)
        else:
            _CLIENTS[key] = redis.Redis.from_url(url, socket_connect_timeout=2)
    client: redis.Redis = _CLIENTS[key]
    return client


@worker_process_shutdown.connect
def close_clients(**kwargs: Any) -> None:
    """Close this process's clients (at worker shutdown)."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()
