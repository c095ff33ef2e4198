"""Fixtures: real services started once per session, a fresh database and Redis db per test.

Given DISPATCH_MONGODB_URL / DISPATCH_REDIS_URL, the suite uses those servers; otherwise it
starts private throw-away instances on free ports (redis-server, secantusd-py) and one
real Celery worker, and stops them at the end.

Tests marked `both_redis` run twice: on the single Redis, and on a 3-master Redis Cluster on
loopback (started once, when the first of them needs it; the Celery broker stays on the single
Redis, as in production). Their `settings` say which (`redis_mode`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tornado.httpserver
import tornado.ioloop
import tornado.web
from pymongo import MongoClient

from dispatch.app import make_app
from dispatch.core.storage import ensure_indexes
from dispatch.services import Services
from dispatch.settings import Settings
from dispatch.tools import devservices
from tests.support.helpers import Api, close_services
from tests.support.processes import redis_db_url, unmeasured

# The test client's own debug lines (request URLs, some with a `?token=`) are not the server's logs,
# which tests read to prove that no secret is ever logged.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

APP_DB = 1  # Redis logical db of the app's live state in tests (the user cache is the next one)
BROKER_DB = 0  # Redis logical db of the Celery broker in tests


@dataclass
class Running:
    """Where the session's real services (stores, worker) listen, and the folders the worker shares."""

    mongodb_url: str
    redis_url: str
    outbox_dir: Path
    media_dir: Path
    root: Path

    def settings(self, **changes: Any) -> Settings:
        """Settings of one test: its own database, the app's Redis db, the shared worker folders."""
        base = {
            "mongodb_url": self.mongodb_url,
            "mongodb_db": f"test_{uuid.uuid4().hex[:12]}",
            "redis_url": redis_db_url(self.redis_url, APP_DB),
            "broker_url": redis_db_url(self.redis_url, BROKER_DB),
            "email_backend": "file",
            "sms_backend": "file",
            "outbox_dir": str(self.outbox_dir),
            "media_dir": str(self.media_dir),
            "jwt_secret": "test-secret-" + "x" * 32,
            "bcrypt_rounds": 4,
            "public_url": "http://dispatch.test",
        }
        base.update(changes)
        return Settings.from_mapping(base)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("services")
    group = devservices.Group()
    try:
        with unmeasured():
            mongodb_url = (
                os.environ.get("DISPATCH_MONGODB_URL")
                or group.add(devservices.start_mongo(devservices.free_port(), ":memory:", root / "log")).url
            )
        redis_url = (
            os.environ.get("DISPATCH_REDIS_URL")
            or group.add(devservices.start_redis(devservices.free_port(), root / "redis", root / "log")).url
        )
        found = Running(mongodb_url, redis_url, root / "outbox", root / "media", root)
        worker_env = {
            **os.environ,
            **{
                f"DISPATCH_{k.upper()}": str(v)
                for k, v in {
                    "mongodb_url": mongodb_url,
                    "redis_url": redis_db_url(redis_url, APP_DB),
                    "broker_url": redis_db_url(redis_url, BROKER_DB),
                    "email_backend": "file",
                    "sms_backend": "file",
                    "outbox_dir": found.outbox_dir,
                    "media_dir": found.media_dir,
                    "log_level": "WARNING",
                    # Webhook deliveries in tests: a short timeout, quick retries, few attempts, and
                    # webhooks turned off after 3 failed deliveries (20 in production).
                    "webhook_timeout": 2,
                    "webhook_retry_base": 0.05,
                    "webhook_max_attempts": 4,
                    "webhook_disable_after": 3,
                }.items()
            },
        }
        group.add(devservices.start_worker(worker_env, root / "log", concurrency=2))
        devservices.wait_worker_ready(redis_db_url(redis_url, BROKER_DB))
        yield found
    finally:
        group.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster on loopback ports: the URL of one node."""
    root = tmp_path_factory.mktemp("redis-cluster")
    group = devservices.Group()
    try:
        ports = [devservices.free_port() for _ in range(3)]
        yield devservices.start_redis_cluster(ports, root / "data", root / "log", group)
    finally:
        group.stop()


@pytest.fixture
def redis_mode() -> str:
    """`single` or `cluster` (tests marked `both_redis` get each in turn)."""
    return "single"


# Files that take minutes go first: with the suite split over processes by file, a long one picked
# up last would leave the other process idle at the end.
LONG_FILES = ("tests/reliability/test_api_fuzz.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONG_FILES)  # stable: the rest keep their order


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_redis") and "redis_mode" in metafunc.fixturenames:
        metafunc.parametrize("redis_mode", ["single", "cluster"])


@pytest.fixture
def redis_settings(request: pytest.FixtureRequest, redis_mode: str) -> dict[str, Any]:
    """The settings that put a test on the Redis of its `redis_mode` (none: the single Redis)."""
    if redis_mode == "cluster":
        return {"redis_url": request.getfixturevalue("redis_cluster"), "redis_cluster": True}
    return {}


@pytest.fixture
def settings(services: Running, redis_settings: dict[str, Any]) -> Settings:
    return services.settings(**redis_settings)


@pytest.fixture
def io_loop() -> Iterator[tornado.ioloop.IOLoop]:
    """The test's own loop, the thread's current one while the test runs, closed with its sockets after.

    pytest-tornado's fixture of this name makes its loop current through `asyncio.get_event_loop()`,
    which quietly creates a loop of its own that nothing closes; once an `asyncio.run` replaces it,
    it is collected, unclosed, in whichever later test the collector happens to run.
    """
    loop = tornado.ioloop.IOLoop(make_current=False)
    asyncio.set_event_loop(loop.asyncio_loop)  # type: ignore[attr-defined]
    yield loop
    asyncio.set_event_loop(None)
    loop.close(all_fds=True)


@pytest.fixture
def app(io_loop: Any, settings: Settings) -> Iterator[tornado.web.Application]:
    """The app on the test's own services (its database, the app's Redis dbs flushed)."""

    async def start() -> Services:
        opened = Services.open(settings)  # on the test's loop, which the clients then use
        await opened.redis.flushdb()
        await opened.cache.flushdb()
        await ensure_indexes(opened.db)
        opened.start_sweeps()  # as a serving process does
        return opened

    services = io_loop.run_sync(start)
    yield make_app(services)

    async def stop() -> None:
        await services.mongo.drop_database(settings.mongodb_db)
        await close_services(services)

    io_loop.run_sync(stop)


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest, io_loop: Any, _unused_port: Any, app: tornado.web.Application, settings: Settings
) -> Iterator[tornado.httpserver.HTTPServer]:
    """The app on a real socket, with the production server's limits."""
    server = tornado.httpserver.HTTPServer(app, max_body_size=settings.max_body_bytes)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=10)


@pytest.fixture(autouse=True)
def ws_cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """Websocket clients a test opened are closed when it ends, while its loop still runs."""
    from tests.support.realtime_client import OPEN, close_all

    loop = request.getfixturevalue("io_loop") if "io_loop" in request.fixturenames else None
    if "http_server" in request.fixturenames:
        request.getfixturevalue("http_server")  # so clients close before the app and its stores do
    yield
    if OPEN and loop is not None:
        close_all()
        loop.run_sync(lambda: asyncio.sleep(0.05))


@pytest.fixture
def api(http_server: Any, io_loop: Any, base_url: str) -> Iterator[Api]:
    """A JSON client of the running app that checks the API invariants on every answer.

    It pools keep-alive connections (httpx), as integrations and apps do, so a connection the
    server closes silently after an answer shows up as a failed request.
    """
    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=4), trust_env=False)
    yield Api(client, base_url)
    io_loop.run_sync(client.aclose)


@pytest.fixture
def sync_db(services: Running, settings: Settings) -> Iterator[Any]:
    """A synchronous view of the test's database, for assertions outside the loop."""
    client: MongoClient = MongoClient(services.mongodb_url, tz_aware=True)
    yield client[settings.mongodb_db]
    client.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files for people to look at (screenshots)."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(Path(__file__).resolve().parent.parent / ".pytest_cache", ignore_errors=True)
