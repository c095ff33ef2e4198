"""Webhook deliveries under failure: receivers that fail, hang or flood, a webhook that keeps failing,
and a worker killed and Redis restarted without its data while deliveries wait. Nothing is lost,
one order's deliveries keep their order, and no receiver holds a worker past the timeout.

The session's worker sends with a 2 s timeout, retries from 0.05 s, 4 attempts, and turns a webhook
off after 3 failed deliveries (tests/conftest.py); the fault test runs its own stack with the same.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatch.settings import Settings
from dispatch.tools import devservices
from tests.conftest import Running
from tests.support.factories import login, make_org, make_user
from tests.support.fleet_fixtures import API, World, make_vehicle_type, make_world, order_body
from tests.support.helpers import Api, api_at
from tests.support.receiver import Receiver, receiving, verify
from tests.support.stack import Stack, in_thread, kill_group

TIMEOUT = 2  # the worker's DISPATCH_WEBHOOK_TIMEOUT in tests


@pytest.fixture
def settings(services: Running) -> Settings:
    return services.settings(webhook_sweep_interval=0.2)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Private services whose server sweeps every 0.2 s and whose workers send with the tests' policy."""
    private = Stack(tmp_path).start(
        webhook_sweep_interval=0.2, webhook_timeout=TIMEOUT, webhook_retry_base=0.05, webhook_max_attempts=4
    )
    yield private
    private.stop()


async def until(condition: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def webhook(api: Api, world: World, url: str, events: list[str]) -> dict[str, Any]:
    answer = await api.post(
        f"{API}/webhooks",
        {"organization": world.org("a"), "url": url, "events": events},
        token=world.tokens["manager_a"],
    )
    assert answer.status == 201, answer.json
    return dict(answer.json)


async def log_of(api: Api, world: World, hook: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await api.get(f"{API}/webhooks/{hook['id']}/deliveries", token=world.tokens["manager_a"])
    return list(answer.json["items"])


@pytest.mark.gen_test(timeout=60)
async def test_a_failing_receiver_is_retried_and_later_events_of_the_order_wait(
    api: Api, app: Any, receiver: Receiver
) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", driver="driver")
    hook = await webhook(api, world, receiver.url("/flaky", fail_first=2), ["order.created", "order.assigned"])
    vehicle_type = await make_vehicle_type(app)
    order = await api.post(
        f"{API}/orders", order_body(vehicle_type, organization=world.org("a")), token=world.tokens["client"]
    )
    await api.post(
        f"{API}/orders/{order.json['id']}/assign", {"vehicle_id": world.id("truck")}, token=world.tokens["manager_a"]
    )

    got = await receiver.wait("/flaky", 4)
    # `created` failed twice and was retried; `assigned`, recorded meanwhile, waited for it.
    assert [r.json["type"] for r in got] == ["order.created"] * 3 + ["order.assigned"]
    assert len({r.json["id"] for r in got[:3]}) == 1 and all(verify(hook["secret"], r) for r in got)

    async def settled() -> bool:
        return all(item["status"] == "delivered" for item in await log_of(api, world, hook))

    await until(settled, what="both delivered")
    assigned, created = await log_of(api, world, hook)  # newest first
    assert (created["event_type"], created["attempts"], created["last_status_code"]) == ("order.created", 3, 200)
    assert (assigned["event_type"], assigned["attempts"]) == ("order.assigned", 1)
    assert created["delivered_at"] <= assigned["delivered_at"]


@pytest.mark.gen_test(timeout=60)
async def test_a_hanging_or_flooding_receiver_does_not_stall_other_endpoints(
    api: Api, app: Any, receiver: Receiver
) -> None:
    world = await make_world(app)
    hanging = await webhook(api, world, receiver.url("/hang", hang=True), ["order.created"])
    flooding = await webhook(api, world, receiver.url("/huge", huge=True), ["order.created"])
    await webhook(api, world, receiver.url("/good"), ["order.created"])
    vehicle_type = await make_vehicle_type(app)
    body = order_body(vehicle_type, organization=world.org("a"))
    assert (await api.post(f"{API}/orders", body, token=world.tokens["client"])).status == 201

    (first,) = await receiver.wait("/good", 1)
    (hang, *_) = await receiver.wait("/hang", 1)
    await until(lambda: _true(hang.closed_at is not None), what="the hanging request closed")
    assert first.at < hang.closed_at  # type: ignore[operator]  # served while the hanging one held a worker
    assert hang.closed_at - hang.at < TIMEOUT + 2.5  # type: ignore[operator]  # cut off at the deadline

    # The workers are free again: the next event reaches the good endpoint at once.
    assert (await api.post(f"{API}/orders", body, token=world.tokens["client"])).status == 201
    await receiver.wait("/good", 2)

    async def attempted() -> bool:
        hang_log, huge_log = await log_of(api, world, hanging), await log_of(api, world, flooding)
        return all(item["attempts"] >= 1 for item in hang_log + huge_log)

    await until(attempted, what="an attempt of each")
    hang_log, huge_log = await log_of(api, world, hanging), await log_of(api, world, flooding)
    assert any(item["last_error"] == f"No answer within {TIMEOUT} s." for item in hang_log), hang_log
    assert all(item["last_status_code"] == 500 for item in huge_log if item["attempts"]), huge_log
    assert all(item["last_error"].startswith("HTTP 500: xxx") for item in huge_log if item["attempts"])


async def _true(value: bool) -> bool:
    return value


@pytest.mark.gen_test(timeout=60)
async def test_consecutive_failures_turn_the_webhook_off_and_tell_its_managers(
    api: Api, app: Any, receiver: Receiver
) -> None:
    world = await make_world(app)
    hook = await webhook(api, world, receiver.url("/down", status=503), ["ping"])
    path = f"{API}/webhooks/{hook['id']}"
    for _ in range(3):  # the tests' worker turns a webhook off after 3 failed deliveries
        assert (await api.post(f"{path}/test", token=world.tokens["manager_a"])).status == 202

    async def turned_off() -> bool:
        return (await api.get(path, token=world.tokens["manager_a"])).json["active"] is False

    await until(turned_off, what="the webhook inactive")
    log = await log_of(api, world, hook)
    assert [(item["status"], item["attempts"], item["last_status_code"]) for item in log] == [("failed", 4, 503)] * 3

    async def told() -> bool:
        notes = (await api.get(f"{API}/notifications", token=world.tokens["manager_a"])).json["items"]
        return any(note["event"] == "webhook_disabled" and note["data"]["webhook_id"] == hook["id"] for note in notes)

    await until(told, what="the managers told")
    others = (await api.get(f"{API}/notifications", token=world.tokens["manager_b"])).json["items"]
    assert not any(note["event"] == "webhook_disabled" for note in others)

    again = await api.patch(path, {"active": True}, token=world.tokens["manager_a"])
    assert (again.json["active"], again.json["consecutive_failures"]) == (True, 0)


@pytest.mark.gen_test(timeout=180)
async def test_a_killed_worker_and_a_redis_restarted_empty_lose_no_delivery(
    stack: Stack, stack_app: Any, receiver: Receiver
) -> None:
    server = stack.serve()
    worker = stack.worker()
    await in_thread(devservices.wait_worker_ready, stack.settings.effective_broker_url)  # type: ignore[union-attr]
    org = await make_org(stack_app)
    manager = await make_user(stack_app, "MANAGER", organizations=[org["_id"]])
    token = await login(stack_app, manager)
    async with api_at(server.url) as api:
        created = await api.post(
            f"{API}/webhooks",
            {"organization": str(org["_id"]), "url": receiver.url("/hook"), "events": ["ping"]},
            token=token,
        )
        hook = created.json
        path = f"{API}/webhooks/{hook['id']}/test"
        assert (await api.post(path, token=token)).status == 202
        await receiver.wait("/hook", 1)  # the worker sends

        await in_thread(kill_group, worker.process)
        queued = [(await api.post(path, token=token)).json for _ in range(5)]
        assert all(delivery["status"] == "pending" for delivery in queued)
    # The tasks wait in the broker, the deliveries in MongoDB.

    # Redis restarted without its data: the queued tasks are gone; the outbox in MongoDB is not.
    await in_thread(stack.kill_redis)
    shutil.rmtree(stack.root / "redis")
    await in_thread(stack.start_redis)
    stack.worker()

    # The worker may have died after the first delivery got through and before it was recorded:
    # then that one is sent again (at least once, under the same delivery id).
    def statuses() -> list[str]:
        db = stack.sync_db()
        try:
            return [doc["status"] for doc in db["webhook_deliveries"].find({"webhook_id": {"$exists": True}})]
        finally:
            db.client.close()

    async def all_delivered() -> bool:
        return await in_thread(statuses) == ["delivered"] * 6

    await until(all_delivered, 60, "every delivery recorded as delivered")
    got = receiver.got("/hook")
    assert {r.json["id"] for r in got} >= {delivery["event_id"] for delivery in queued}
    assert all(verify(hook["secret"], r) for r in got)
    print(f"\nwebhooks after a worker kill and an empty Redis: {len(got)} requests for 6 deliveries")
