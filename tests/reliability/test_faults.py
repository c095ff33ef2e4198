"""Faults with nothing lost: Redis, the MongoDB-wire server, the Celery worker and a server process
killed (kill -9) and restarted while drivers stream and messages wait to be sent.

Every test runs its own redis-server, secantusd-py, `dispatch serve` and worker processes
(tests/reliability/stack.py), so the session's shared services are never disturbed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import tornado.httpclient
import tornado.web

from dispatch.app import close_app, make_app
from dispatch.storage import ensure_indexes, open_stores
from tests.helpers import Api, Response, assert_error_envelope
from tests.realtime_client import fleet
from tests.reliability.stack import Console, Driver, Stack, in_thread

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    private = Stack(tmp_path).start()
    yield private
    private.stop()


@pytest.fixture
def stack_app(io_loop: Any, stack: Stack) -> Iterator[tornado.web.Application]:
    """An application object on the stack's stores, to make users and tokens (it serves nothing)."""
    stores = open_stores(stack.settings)  # type: ignore[arg-type]
    io_loop.run_sync(lambda: ensure_indexes(stores.mongo[stack.settings.mongodb_db]))  # type: ignore[union-attr]
    application = make_app(stack.settings, mongo=stores.mongo, redis=stores.redis, cache=stores.cache)  # type: ignore
    yield application

    async def stop() -> None:
        await close_app(application)
        await stores.close()

    io_loop.run_sync(stop)


async def until(condition: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def fetch(url: str, token: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await tornado.httpclient.AsyncHTTPClient().fetch(url, headers=headers, raise_error=False,
                                                              request_timeout=30)
    return Response(answer.code, answer.headers, answer.body or b"")


def stored_ids(stack: Stack, driver_ids: list[str]) -> dict[str, list[str]]:
    """Each driver's stored GPS point ids (`<driver_id>:<seq>`)."""
    db = stack.sync_db()
    try:
        return {d: [doc["_id"] for doc in db["gps_points"].find({"_id": {"$regex": f"^{d}:"}}, {"_id": 1})]
                for d in driver_ids}
    finally:
        db.client.close()


def assert_stored_exactly_once(stack: Stack, team: dict[str, Any], drivers: list[Driver]) -> tuple[int, int]:
    """Every point each driver sent is stored, once; (sent, stored) in total."""
    ids = [str(crew["user"]["_id"]) for crew in team["drivers"]]
    stored = stored_ids(stack, ids)
    for driver_id, driver in zip(ids, drivers):
        assert len(stored[driver_id]) == len(set(stored[driver_id]))
        assert {int(i.rpartition(":")[2]) for i in stored[driver_id]} == driver.sent
    return sum(len(d.sent) for d in drivers), sum(len(v) for v in stored.values())


def assert_clean_log(text: str) -> None:
    """No handler crashed and nothing logged a traceback."""
    assert "tornado.application" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@pytest.mark.gen_test(timeout=120)
async def test_redis_killed_and_restarted_while_drivers_stream(stack: Stack, stack_app: Any) -> None:
    server = stack.serve()
    team = await fleet(stack_app, Api(tornado.httpclient.AsyncHTTPClient(), server.url), drivers=3)
    console = Console([server.url], team["manager_token"], f"fleet:{team['org']['_id']}").start()
    await asyncio.wait_for(console.subscribed.wait(), 10)
    drivers = [Driver([server.url], crew["token"]).start() for crew in team["drivers"]]
    watched = team["drivers"][0]["vehicle"]["id"]
    await until(lambda: all(d.acked >= 10 for d in drivers) and len(console.seqs(watched)) >= 5, what="streaming")

    await in_thread(stack.kill_redis)
    # Meanwhile REST that needs no Redis answers; what needs it says 503 with the error envelope.
    assert (await fetch(server.url + "/healthz")).status == 200
    assert (await fetch(server.url + "/api/openapi.json")).status == 200
    me = await fetch(server.url + "/api/v1/users/me", team["manager_token"])
    assert me.status == 503, me.body
    assert_error_envelope(me)
    assert me.error_code == "service_unavailable"
    ready = await fetch(server.url + "/readyz")
    assert ready.status == 503 and ready.error_code == "not_ready"
    sent_before = [d.seq for d in drivers]
    await until(lambda: all(d.seq >= s + 20 for d, s in zip(drivers, sent_before)), what="streaming in the outage")

    await in_thread(stack.start_redis)
    back, mark = time.monotonic(), drivers[0].seq
    await until(lambda: any(n > mark for n in console.seqs(watched)), timeout=5, what="live frames after Redis")
    resumed = next(t for t, f in console.arrivals if f["vehicle_id"] == watched and f["lat"] > 40 + mark / 10_000)
    assert (await fetch(server.url + "/api/v1/users/me", team["manager_token"])).status == 200

    for driver in drivers:
        await driver.finish()
    await console.stop()
    sent, stored = assert_stored_exactly_once(stack, team, drivers)
    print(f"\nredis restart: sent={sent} stored={stored} live again after {resumed - back:.2f}s "
          f"reconnects={sum(d.reconnects for d in drivers)}")
    assert_clean_log(server.log())
