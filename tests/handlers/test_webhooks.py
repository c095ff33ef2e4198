"""Webhooks through the API: who manages them, URL safety, and signed deliveries arriving at a real
receiver on loopback (the session's Celery worker sends them; see tests/conftest.py for its policy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.settings import Settings
from tests.conftest import Running
from tests.support.api_keys import make_key, with_key
from tests.support.fleet_fixtures import API, World, make_vehicle_type, make_world, order_body
from tests.support.helpers import Api
from tests.support.receiver import Receiver, receiving, verify

CREATED_FIELDS = {
    "id",
    "organization",
    "url",
    "events",
    "description",
    "active",
    "consecutive_failures",
    "secret",
    "created_at",
    "updated_at",
}
DELIVERY_FIELDS = {
    "id",
    "event_id",
    "event_type",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "next_attempt_at",
    "delivered_at",
    "created_at",
}


@pytest.fixture
def settings(services: Running, request: pytest.FixtureRequest, redis_settings: dict[str, Any]) -> Settings:
    """The test's settings: the server sweeps every 0.2 s; a test may add more (indirect parametrize)."""
    return services.settings(webhook_sweep_interval=0.2, **redis_settings, **getattr(request, "param", {}))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


async def create(api: Api, world: World, who: str, url: str, events: list[str] | None = None, org: str = "a") -> Any:
    body = {"organization": world.org(org), "url": url, "events": ["*"] if events is None else events}
    return await api.post(f"{API}/webhooks", body, token=world.tokens[who])


async def deliveries_when(api: Api, world: World, webhook_id: str, done: Any, timeout: float = 20) -> list[Any]:
    """The webhook's delivery log once `done(items)` holds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        log = await api.get(f"{API}/webhooks/{webhook_id}/deliveries", token=world.tokens["manager_a"])
        assert log.status == 200
        if done(log.json["items"]):
            return list(log.json["items"])
        assert time.monotonic() < deadline, log.json
        await asyncio.sleep(0.1)


@pytest.mark.gen_test
async def test_managers_run_their_organizations_webhooks(api: Api, app: Any, receiver: Receiver) -> None:
    world = await make_world(app)
    await world.add_user("driver", "DRIVER", "a")
    url = receiver.url("/hooks/a")
    created = await create(api, world, "manager_a", url, ["order.created", "order.status_changed"])
    assert created.status == 201, created.json
    hook = created.json
    assert set(hook) == CREATED_FIELDS
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) >= 6 + 43
    assert (hook["organization"], hook["url"], hook["active"]) == (world.org("a"), url, True)
    path = f"{API}/webhooks/{hook['id']}"

    # The secret is shown on create only.
    one = await api.get(path, token=world.tokens["manager_a"])
    assert one.status == 200 and "secret" not in one.json and one.json["events"] == hook["events"]
    listed = await api.get(f"{API}/webhooks", token=world.tokens["manager_a"])
    assert [item["id"] for item in listed.json["items"]] == [hook["id"]] and listed.json["total"] == 1
    assert "secret" not in listed.json["items"][0]
    assert (await api.get(f"{API}/webhooks", token=world.tokens["admin"])).json["total"] == 1

    # Another organization's manager does not see it; drivers and clients may not manage webhooks.
    assert (await api.get(f"{API}/webhooks", token=world.tokens["manager_b"])).json["total"] == 0
    for method, body in (("GET", None), ("PATCH", {"description": "mine"}), ("DELETE", None)):
        answer = await api.request(method, path, body, token=world.tokens["manager_b"])
        assert answer.status == 404, (method, answer.json)
    assert (await api.post(f"{path}/test", token=world.tokens["manager_b"])).status == 404
    for who in ("driver", "client"):
        assert (await api.get(f"{API}/webhooks", token=world.tokens[who])).status == 403
        assert (await create(api, world, who, url)).status == 403
    foreign = await create(api, world, "manager_a", url, org="b")
    assert foreign.status == 422 and "organization" in foreign.json["error"]["details"]

    edited = await api.patch(
        path, {"events": ["order.assigned"], "description": "ERP", "active": False}, token=world.tokens["manager_a"]
    )
    assert edited.status == 200
    assert (edited.json["events"], edited.json["description"], edited.json["active"]) == (
        ["order.assigned"],
        "ERP",
        False,
    )
    assert (await api.post(f"{path}/test", token=world.tokens["manager_a"])).error_code == "webhook_inactive"
    assert (await api.delete(path, token=world.tokens["manager_a"])).status == 204
    assert (await api.get(path, token=world.tokens["admin"])).status == 404


@pytest.mark.gen_test
async def test_a_key_with_the_webhooks_scope_runs_its_organizations_webhooks(
    api: Api, app: Any, receiver: Receiver
) -> None:
    world = await make_world(app)
    key = (await make_key(api, world.tokens["manager_a"], world.org("a"), ["webhooks"]))["key"]
    reader = (await make_key(api, world.tokens["manager_a"], world.org("a"), ["orders:read"]))["key"]
    theirs = await create(api, world, "manager_b", receiver.url("/hooks/b"), org="b")
    body = {"organization": world.org("a"), "url": receiver.url("/hooks/key"), "events": ["order.created"]}

    made = await api.post(f"{API}/webhooks", body, headers=with_key(key))
    assert made.status == 201 and made.json["secret"].startswith("whsec_"), made.json
    listed = await api.get(f"{API}/webhooks", headers=with_key(key))
    assert [item["id"] for item in listed.json["items"]] == [made.json["id"]]  # not organization b's
    assert (await api.get(f"{API}/webhooks/{theirs.json['id']}", headers=with_key(key))).status == 404
    foreign = await api.post(f"{API}/webhooks", {**body, "organization": world.org("b")}, headers=with_key(key))
    assert foreign.status == 422 and "organization" in foreign.json["error"]["details"]
    pinged = await api.post(f"{API}/webhooks/{made.json['id']}/test", headers=with_key(key))
    assert pinged.status == 202
    [ping] = await receiver.wait("/hooks/key", 1)
    assert ping.headers["X-Dispatch-Event"] == "ping" and verify(made.json["secret"], ping)

    refused = await api.get(f"{API}/webhooks", headers=with_key(reader))
    assert refused.status == 403 and refused.error_code == "insufficient_scope"
    assert (await api.delete(f"{API}/webhooks/{made.json['id']}", headers=with_key(key))).status == 204


@pytest.mark.gen_test
async def test_bad_urls_and_events_are_422(api: Api, app: Any) -> None:
    world = await make_world(app)
    for url in ("ftp://example.com/hook", "file:///etc/passwd", "example.com/hook", "http://", "http://a b/"):
        answer = await create(api, world, "manager_a", url)
        assert answer.status == 422 and "url" in answer.json["error"]["details"], url
    for events in ([], ["order.deleted"], ["*", "order.created"], "order.created"):
        answer = await create(api, world, "manager_a", "https://example.com/hook", events)  # type: ignore[arg-type]
        assert answer.status == 422 and "events" in str(answer.json["error"]["details"]), events


@pytest.mark.parametrize("settings", [{"webhook_allow_private": "false"}], indirect=True)
@pytest.mark.gen_test
async def test_private_addresses_are_refused_unless_allowed(api: Api, app: Any) -> None:
    world = await make_world(app)
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",  # a name that resolves to loopback
        "http://10.0.0.7/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ):
        answer = await create(api, world, "manager_a", url)
        assert answer.status == 422, url
        assert "public addresses only" in answer.json["error"]["details"]["url"][0], answer.json
    public = await create(api, world, "manager_a", "https://93.184.216.34/hook")
    assert public.status == 201, public.json
    moved = await api.patch(
        f"{API}/webhooks/{public.json['id']}", {"url": "http://10.1.1.1/"}, token=world.tokens["manager_a"]
    )
    assert moved.status == 422


@pytest.mark.gen_test
async def test_a_test_sends_a_signed_ping_and_redeliver_keeps_the_event_id(
    api: Api, app: Any, receiver: Receiver
) -> None:
    world = await make_world(app)
    hook = (await create(api, world, "manager_a", receiver.url("/ping"), ["order.created"])).json
    queued = await api.post(f"{API}/webhooks/{hook['id']}/test", token=world.tokens["manager_a"])
    assert queued.status == 202
    assert set(queued.json) == DELIVERY_FIELDS
    assert (queued.json["event_type"], queued.json["status"], queued.json["attempts"]) == ("ping", "pending", 0)

    (ping,) = await receiver.wait("/ping", 1)
    assert verify(hook["secret"], ping)
    assert not verify("whsec_" + "x" * 43, ping)
    assert ping.headers["Content-Type"] == "application/json"
    assert ping.headers["X-Dispatch-Event"] == "ping"
    assert ping.headers["X-Dispatch-Delivery"] == queued.json["id"]
    body = ping.json
    assert set(body) == {"id", "type", "created_at", "organization", "data"}
    assert (body["id"], body["type"], body["organization"]) == (queued.json["event_id"], "ping", world.org("a"))
    assert body["data"]["webhook_id"] == hook["id"]

    (done,) = await deliveries_when(api, world, hook["id"], lambda items: items[0]["status"] != "pending")
    assert set(done) == DELIVERY_FIELDS
    assert (done["status"], done["attempts"], done["last_status_code"], done["last_error"]) == (
        "delivered",
        1,
        200,
        None,
    )
    assert done["delivered_at"] and done["next_attempt_at"] is None

    again = await api.post(
        f"{API}/webhooks/{hook['id']}/deliveries/{done['id']}/redeliver", token=world.tokens["manager_a"]
    )
    assert again.status == 202 and again.json["event_id"] == done["event_id"] and again.json["id"] != done["id"]
    first, second = await receiver.wait("/ping", 2)
    assert second.body == first.body  # the same event, byte for byte: receivers dedupe by its id
    assert second.headers["X-Dispatch-Delivery"] == again.json["id"] != first.headers["X-Dispatch-Delivery"]
    assert verify(hook["secret"], second)
    log = await deliveries_when(api, world, hook["id"], lambda items: len(items) == 2)
    assert [item["id"] for item in log] == [again.json["id"], done["id"]]  # newest first
    missing = await api.post(
        f"{API}/webhooks/{hook['id']}/deliveries/{world.org('a')}/redeliver", token=world.tokens["manager_a"]
    )
    assert missing.status == 404


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_an_order_lifecycle_arrives_signed_once_each_in_order(api: Api, app: Any, receiver: Receiver) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", driver="driver")
    everything = (await create(api, world, "manager_a", receiver.url("/all"))).json
    created_only = (await create(api, world, "manager_a", receiver.url("/created"), ["order.created"])).json
    await create(api, world, "manager_b", receiver.url("/other"))  # another organization's: hears nothing

    vehicle_type = await make_vehicle_type(app)
    order = await api.post(
        f"{API}/orders", order_body(vehicle_type, organization=world.org("a")), token=world.tokens["client"]
    )
    assert order.status == 201, order.json
    order_id = order.json["id"]
    assigned = await api.post(
        f"{API}/orders/{order_id}/assign", {"vehicle_id": world.id("truck")}, token=world.tokens["manager_a"]
    )
    assert assigned.status == 200, assigned.json
    moves = ["accepted", "en_route", "arrived", "in_progress", "completed"]
    for status in moves:
        moved = await api.post(f"{API}/orders/{order_id}/status", {"status": status}, token=world.tokens["driver"])
        assert moved.status == 200, moved.json
    paid = await api.post(
        f"{API}/orders/{order_id}/payments", {"amount": 100, "method": "cash"}, token=world.tokens["driver"]
    )
    assert paid.status == 201, paid.json
    rated = await api.post(f"{API}/orders/{order_id}/rating", {"score": 5}, token=world.tokens["client"])
    assert rated.status == 201, rated.json
    sheet = await api.post(f"{API}/waybills", {"vehicle_id": world.id("truck")}, token=world.tokens["driver"])
    assert sheet.status == 201, sheet.json
    departed = await api.patch(
        f"{API}/waybills/{sheet.json['id']}", {"status": "on_route"}, token=world.tokens["driver"]
    )
    assert departed.status == 200, departed.json

    got = await receiver.wait("/all", 10)
    order_events = [r.json for r in got if r.json["type"].startswith("order.")]
    assert [e["type"] for e in order_events] == ["order.created", "order.assigned"] + ["order.status_changed"] * 5
    assert [e["data"]["to"] for e in order_events] == ["new", "assigned", *moves]
    assert [e["data"]["from"] for e in order_events] == [None, "new", "assigned", *moves[:-1]]
    assert all(e["data"]["order"]["id"] == order_id and e["organization"] == world.org("a") for e in order_events)
    assert order_events[-1]["data"]["order"]["status"] == "completed"
    assert order_events[2]["data"]["actor"] == {"type": "user", "id": world.id("driver")}
    assert order_events[0]["data"]["order"] == order.json  # the order as the API shows it
    others = {r.json["type"]: r.json["data"] for r in got if not r.json["type"].startswith("order.")}
    assert others["payment.created"]["payment"] == paid.json
    assert others["rating.created"]["rating"] == rated.json
    assert others["waybill.status_changed"] == {"waybill": departed.json, "from": "open", "to": "on_route"}
    assert len({r.json["id"] for r in got}) == len(got) == 10  # once each
    assert all(verify(everything["secret"], r) and r.headers["X-Dispatch-Event"] == r.json["type"] for r in got)

    (created,) = await receiver.wait("/created", 1)
    assert created.json["type"] == "order.created" and verify(created_only["secret"], created)
    assert created.json["id"] == order_events[0]["id"]  # one event, one id, whichever endpoint hears it
    await deliveries_when(api, world, everything["id"], lambda items: all(i["status"] == "delivered" for i in items))
    assert len(receiver.got("/all")) == 10 and len(receiver.got("/created")) == 1 and receiver.got("/other") == []
