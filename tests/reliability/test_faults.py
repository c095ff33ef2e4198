"""Faults with nothing lost: Redis, the MongoDB-wire server, the Celery worker and a server process
killed (kill -9) and restarted while drivers stream and messages wait to be sent.

Every test runs its own redis-server, secantusd-py, `dispatch serve` and worker processes
(tests/support/stack.py), so the session's shared services are never disturbed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.httpclient

from dispatch.core import jsonutil
from dispatch.tools import devservices
from tasks import make_celery
from tests.support.gateways import Gateway, Sink, gateway_running, smtp_running
from tests.support.helpers import Response, api_at, assert_error_envelope
from tests.support.realtime_client import WsClient, fleet, ws_url
from tests.support.stack import Console, Driver, Stack, in_thread, kill_group

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


# Waits are for events (acks, frames, a server back); a limit only says how long without the event is a
# failure, so a busy machine makes the tests slower, not red. Whole tests keep a hang guard only.
HANG_GUARD = 600


async def until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def fetch(url: str, token: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await tornado.httpclient.AsyncHTTPClient().fetch(
        url, headers=headers, raise_error=False, request_timeout=30
    )
    return Response(answer.code, answer.headers, answer.body or b"")


def stored_ids(stack: Stack, driver_ids: list[str]) -> dict[str, list[str]]:
    """Each driver's stored GPS point ids (`<driver_id>:<seq>`)."""
    db = stack.sync_db()
    try:
        return {
            d: [doc["_id"] for doc in db["gps_points"].find({"_id": {"$regex": f"^{d}:"}}, {"_id": 1})]
            for d in driver_ids
        }
    finally:
        db.client.close()


def assert_stored_exactly_once(stack: Stack, team: dict[str, Any], drivers: list[Driver]) -> tuple[int, int]:
    """Every point each driver sent is stored, once; (sent, stored) in total."""
    ids = [str(crew["user"]["_id"]) for crew in team["drivers"]]
    stored = stored_ids(stack, ids)
    for driver_id, driver in zip(ids, drivers, strict=False):
        assert len(stored[driver_id]) == len(set(stored[driver_id]))
        assert {int(i.rpartition(":")[2]) for i in stored[driver_id]} == driver.sent
    return sum(len(d.sent) for d in drivers), sum(len(v) for v in stored.values())


def assert_clean_log(text: str) -> None:
    """No handler crashed and nothing logged a traceback."""
    assert "tornado.application" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_redis_killed_and_restarted_while_drivers_stream(stack: Stack, stack_app: Any) -> None:
    server = stack.serve()
    async with api_at(server.url) as api:
        team = await fleet(stack_app, api, drivers=3)
    console = Console([server.url], team["manager_token"], f"fleet:{team['org']['_id']}").start()
    await asyncio.wait_for(console.subscribed.wait(), 10)
    drivers = [Driver([server.url], crew["token"]).start() for crew in team["drivers"]]
    watched = team["drivers"][0]["vehicle"]["id"]
    await until(lambda: all(d.acked >= 10 for d in drivers) and len(console.seqs(watched)) >= 5, what="streaming")
    # Emails wait in the broker (no worker yet); the append-only file syncs once a second.
    sender = make_celery(stack.settings)  # type: ignore[arg-type]
    for n in range(5):
        await in_thread(lambda n=n: sender.send_task("email.send", args=["ops@example.com", f"Queued {n}", "Hi."]))
    sender.close()
    await asyncio.sleep(1.5)

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
    # Sockets: a new one is told to come back later (1013); an open console's new subscription gets an error.
    newcomer = await WsClient.connect(ws_url(server.url, "/ws/console"), team["manager_token"])
    assert await newcomer.closed() == 1013
    await console.conn.write_message(  # type: ignore[union-attr]
        jsonutil.dumps({"type": "subscribe", "channel": f"vehicle:{watched}"})
    )
    drivers[1].drop()  # this one loses its connection in the outage and keeps retrying
    sent_before = [d.seq for d in drivers]
    await until(
        lambda: all(d.seq >= s + 20 for d, s in zip(drivers, sent_before, strict=True)), what="streaming in the outage"
    )
    await until(lambda: bool(console.errors) and 1013 in drivers[1].close_codes, what="answers in the outage")
    assert {"type": "error", "code": "service_unavailable"}.items() <= console.errors[0].items()

    await in_thread(stack.start_redis)
    back, mark = time.monotonic(), drivers[0].seq
    await until(lambda: any(n > mark for n in console.seqs(watched)), what="live frames after Redis")
    resumed = next(t for t, f in console.arrivals if f["vehicle_id"] == watched and f["lat"] > 40 + mark / 10_000)
    # Connections pooled before the restart are dead: none of them may turn a request into a 503 now.
    again = await asyncio.gather(*(fetch(server.url + "/api/v1/users/me", team["manager_token"]) for _ in range(20)))
    assert [r.status for r in again] == [200] * 20, [r.body for r in again if r.status != 200][:1]

    stack.worker()
    outbox = stack.root / "outbox" / "email"
    await until(lambda: len(list(outbox.glob("*.eml"))) >= 5, timeout=30, what="the queued emails")
    for driver in drivers:
        await driver.finish()
    await console.stop()
    sent, stored = assert_stored_exactly_once(stack, team, drivers)
    assert drivers[1].reconnects >= 2  # refused while Redis was down, then back
    print(
        f"\nredis restart: sent={sent} stored={stored} live again after {resumed - back:.2f}s "
        f"reconnects={sum(d.reconnects for d in drivers)} (close codes {drivers[1].close_codes}) "
        f"emails queued=5 delivered={len(list(outbox.glob('*.eml')))}"
    )
    assert_clean_log(server.log())


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_mongodb_restarted_history_is_retried_and_acked_only_once_stored(stack: Stack, stack_app: Any) -> None:
    server = stack.serve()
    async with api_at(server.url) as api:
        team = await fleet(stack_app, api, drivers=2)
    drivers = [Driver([server.url], crew["token"]).start() for crew in team["drivers"]]
    await until(lambda: all(d.acked >= 10 for d in drivers), what="streaming")

    await in_thread(stack.kill_mongo)
    sent_at_kill = [d.seq for d in drivers]
    # A request that needs MongoDB waits for a server, then answers 503 (the outage lasts at least that long).
    vehicles = await fetch(server.url + "/api/v1/vehicles", team["manager_token"])
    assert vehicles.status == 503, vehicles.body
    assert_error_envelope(vehicles)
    assert vehicles.error_code == "service_unavailable"
    settled = time.monotonic()  # acks of points stored just before the kill have arrived by now
    sent_in_outage = [d.seq for d in drivers]
    await asyncio.sleep(1)
    assert [[seq for t, seq in d.acks if t > settled] for d in drivers] == [[], []], "acked while MongoDB was down"
    assert all(d.acked <= s for d, s in zip(drivers, sent_at_kill, strict=False))
    assert all(d.seq > s for d, s in zip(drivers, sent_in_outage, strict=False))  # the drivers kept sending all along

    await in_thread(stack.start_mongo)
    for driver, sent in zip(drivers, sent_in_outage, strict=False):
        await until(lambda driver=driver, sent=sent: driver.acked >= sent, what="acks after MongoDB came back")
    again = await asyncio.gather(*(fetch(server.url + "/api/v1/vehicles", team["manager_token"]) for _ in range(20)))
    assert [r.status for r in again] == [200] * 20
    for driver in drivers:
        await driver.finish()
    sent, stored = assert_stored_exactly_once(stack, team, drivers)
    print(
        f"\nmongodb restart: sent={sent} stored={stored} unacked during the outage="
        f"{sum(d.seq - s for d, s in zip(drivers, sent_at_kill, strict=False))}"
    )
    log = server.log()
    assert "GPS history write failed" in log  # batches were retried, not dropped
    assert_clean_log(log)


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_server_killed_clients_move_to_another_and_since_fills_the_gap(stack: Stack, stack_app: Any) -> None:
    doomed, spare = stack.serve("doomed"), stack.serve("spare")
    urls = [doomed.url, spare.url]
    async with api_at(spare.url) as api:
        team = await fleet(stack_app, api, drivers=2)
    console = Console(urls, team["manager_token"], f"fleet:{team['org']['_id']}").start()
    await asyncio.wait_for(console.subscribed.wait(), 10)
    drivers = [Driver(urls, crew["token"]).start() for crew in team["drivers"]]
    await until(lambda: all(d.acked >= 10 for d in drivers) and len(console.frames) >= 10, what="streaming")

    # The console comes back only after the drivers streamed to the spare: what it missed meanwhile
    # only `since` can give it.
    console.away.clear()
    await in_thread(doomed.kill)
    sent_at_kill = [d.seq for d in drivers]
    await until(
        lambda: all(d.acked > s + 10 for d, s in zip(drivers, sent_at_kill, strict=True)), what="drivers on the spare"
    )
    assert console.reconnects == 1 and not console.subscribed.is_set()
    console.away.set()
    await until(lambda: console.subscribed.is_set(), what="the console on the spare")
    assert all(d.reconnects >= 1 for d in drivers)
    for driver in drivers:
        await driver.finish()
    vehicles = [crew["vehicle"]["id"] for crew in team["drivers"]]
    await until(
        lambda: all(console.seqs(v) >= d.sent for v, d in zip(vehicles, drivers, strict=False)),
        what="every point on the console",
    )
    await console.stop()
    sent, stored = assert_stored_exactly_once(stack, team, drivers)
    shown = sum(len(console.seqs(v)) for v in vehicles)
    print(
        f"\nserver killed: sent={sent} stored={stored} console saw {shown} distinct points "
        f"({len(console.frames)} frames)"
    )
    assert_clean_log(spare.log())


@pytest.fixture
def slow_sinks() -> Iterator[tuple[Sink, int, Gateway]]:
    """An SMTP server and an SMS gateway that take their time over each message."""
    with smtp_running(delay=0.3) as (smtp, port), gateway_running(delay=0.3) as gateway:
        yield smtp, port, gateway


def wait_until(condition: Callable[[], bool], timeout: float, what: str, state: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what} {state()}"
        time.sleep(0.05)


def test_worker_killed_with_messages_in_flight_and_queued_delivers_them_all(
    stack: Stack, slow_sinks: tuple[Sink, int, Gateway]
) -> None:
    smtp, smtp_port, gateway = slow_sinks
    env = {
        "DISPATCH_EMAIL_BACKEND": "smtp",
        "DISPATCH_SMTP_HOST": "127.0.0.1",
        "DISPATCH_SMTP_PORT": str(smtp_port),
        "DISPATCH_SMS_BACKEND": "http",
        "DISPATCH_SMS_HTTP_URL": gateway.url,
        "DISPATCH_TASK_VISIBILITY_TIMEOUT": "3",
        "DISPATCH_LOG_LEVEL": "WARNING",
    }
    settings = stack.settings
    stack.worker(**env)
    devservices.wait_worker_ready(settings.broker_url)  # type: ignore[union-attr]
    sender = make_celery(settings.replace(task_visibility_timeout=3))  # type: ignore[union-attr]
    subjects = [f"Shift {n}" for n in range(15)]
    texts = [f"Code {n:06d}" for n in range(15)]
    try:
        for subject, text in zip(subjects, texts, strict=False):
            sender.send_task("email.send", args=["driver@example.com", subject, "Starts at 8."])
            sender.send_task("sms.send", args=["+79161234567", text])
    finally:
        sender.close()
    # Kill while both of the worker's processes are inside a send: every task it has taken is then
    # one it has recorded as taken and not acked. (Killed in the instant between Redis handing it a
    # task and its recording that, kombu's Redis transport loses the task: messages that must not
    # be lost — webhooks, milestone messages — are kept in a MongoDB outbox and swept, see README.)
    wait_until(
        lambda: len(smtp.subjects) + len(gateway.texts) >= 4 and smtp.pending + gateway.pending == 2,
        30,
        "the first deliveries, and two more in flight",
    )

    kill_group(stack.processes[-1].process)  # kill -9: tasks in flight die with the worker, unacked
    before = len(smtp.subjects) + len(gateway.texts)
    stack.worker(**env)
    # A liveness bound, not a speed target: on a loaded machine the restored deliveries can take a while.
    wait_until(
        lambda: set(smtp.subjects) >= set(subjects) and set(gateway.texts) >= set(texts),
        90,
        "every message after the restart",
        lambda: f"missing {sorted(set(subjects) - set(smtp.subjects) | set(texts) - set(gateway.texts))}",
    )
    time.sleep(1)  # late duplicates, if any, are counted too
    delivered = len(smtp.subjects) + len(gateway.texts)
    print(
        f"\nworker killed: queued={len(subjects) + len(texts)} delivered before kill={before} "
        f"distinct delivered={len(set(smtp.subjects)) + len(set(gateway.texts))} "
        f"duplicates={delivered - len(subjects) - len(texts)}"
    )
