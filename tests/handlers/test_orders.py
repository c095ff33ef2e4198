"""Orders over HTTP: creation and estimate, idempotency, scope, the state machine per role,
assignment under real concurrency, freeing trucks, timeline, tracking and published events."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.events import Event
from dispatch.core.geo import distance_km
from dispatch.core.timeutil import isoformat, utcnow
from tests.support.api_keys import make_key, with_key
from tests.support.fleet_fixtures import (
    API,
    CENTER,
    insert_order,
    make_vehicle_type,
    make_world,
    offset,
    oid,
    order_body,
    put_position,
)
from tests.support.helpers import Api, Response
from tests.support.state_machine import ACTIONS, STATUSES, expected


def ids(answer: Response) -> list[str]:
    return [item["id"] for item in answer.json["items"]]


async def vehicle_doc(app: Any, vehicle: dict[str, Any]) -> dict[str, Any]:
    return await app.settings["services"].db["vehicles"].find_one({"_id": vehicle["_id"]})


def capture_events(app: Any) -> list[Event]:
    """Every event the app publishes from now on."""
    seen: list[Event] = []

    async def listen(event: Event) -> None:
        seen.append(event)

    app.settings["services"].events.listen(listen)
    return seen


# --- creation ------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_client_orders_a_tow_and_gets_the_estimate(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app, base_price=1500, price_per_km=100)
    await world.add_vehicle("near_b", "b", "driver_b", at=offset(2, 0))
    await world.add_vehicle("nearer_a_offline", "a", "driver_a", status="offline", at=offset(1, 0))
    events = capture_events(app)
    body = order_body(sedan, notes="Keys under the mat")
    answer = await api.post(f"{API}/orders", body, token=world.tokens["client"])
    assert answer.status == 201, answer.json
    order = answer.json
    km = distance_km(CENTER, offset(10, 0))
    assert order["distance_km"] == pytest.approx(km, abs=0.01) and order["distance_km"] == pytest.approx(10, abs=0.01)
    assert order["price_estimate"] == round(1500 + 100 * km, 2)
    assert order["status"] == "new" and order["client_id"] == world.id("client")
    assert order["vehicle_id"] is None and order["driver_id"] is None
    assert order["vehicle"]["type_name"] == sedan["name"] and order["notes"] == "Keys under the mat"
    assert order["organization"] == world.org("b"), "routed to the fleet of the nearest available truck"

    timeline = (await api.get(f"{API}/orders/{order['id']}/events", token=world.tokens["client"])).json
    assert timeline["total"] == 1
    assert {k: timeline["items"][0][k] for k in ("type", "from", "to", "actor_id")} == {
        "type": "created",
        "from": None,
        "to": "new",
        "actor_id": world.id("client"),
    }
    [event] = [e for e in events if e.type == "order"]
    assert event.channels == (f"order:{order['id']}", f"fleet:{world.org('b')}")
    assert event.data["event"] == "created" and event.data["order"] == order
    assert event.data["actor_id"] == world.id("client") and event.data["to"] == "new"


@pytest.mark.gen_test(timeout=60)
async def test_organization_and_client_rules_on_creation(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    await world.add_user("driver", "DRIVER", "a")
    lonely = await api.post(f"{API}/orders", order_body(sedan, pickup=offset(0, 0)), token=world.tokens["client"])
    assert lonely.status == 201 and lonely.json["organization"] is None, "no truck nearby: the ADMINs' pool"
    chosen = await api.post(
        f"{API}/orders", order_body(sedan, organization=world.org("a")), token=world.tokens["client"]
    )
    assert chosen.json["organization"] == world.org("a")
    for body, field in (
        (order_body(sedan, organization=oid()), "organization"),
        (order_body(sedan, client_id=world.id("other_client")), "client_id"),
    ):
        refused = await api.post(f"{API}/orders", body, token=world.tokens["client"])
        assert refused.status == 422 and field in refused.json["error"]["details"]

    manager = world.tokens["manager_a"]
    on_behalf = order_body(sedan, organization=world.org("a"), client_id=world.id("client"))
    created = await api.post(f"{API}/orders", on_behalf, token=manager)
    assert created.status == 201 and created.json["client_id"] == world.id("client")
    assert created.json["created_by"] == world.id("manager_a")
    for body, field in (
        (order_body(sedan, client_id=world.id("client")), "organization"),
        ({**on_behalf, "organization": world.org("b")}, "organization"),
        (order_body(sedan, organization=world.org("a")), "client_id"),
        ({**on_behalf, "client_id": world.id("driver")}, "client_id"),
        ({**on_behalf, "vehicle": {**on_behalf["vehicle"], "type_id": oid()}}, "vehicle.type_id"),
    ):
        refused = await api.post(f"{API}/orders", body, token=manager)
        assert refused.status == 422 and field in refused.json["error"]["details"], body
    admin = await api.post(
        f"{API}/orders", order_body(sedan, client_id=world.id("client")), token=world.tokens["admin"]
    )
    assert admin.status == 201 and admin.json["organization"] is None
    driver = await api.post(f"{API}/orders", order_body(sedan), token=world.tokens["driver"])
    assert driver.status == 403


@pytest.mark.gen_test(timeout=60)
async def test_orders_are_priced_from_their_organizations_list_or_the_shared_one(app: Any, api: Api) -> None:
    world = await make_world(app)
    shared = await make_vehicle_type(app, base_price=1000, price_per_km=50)
    list_a = await make_vehicle_type(app, base_price=3000, price_per_km=10, organization=world.orgs["a"]["_id"])
    list_b = await make_vehicle_type(app, base_price=100, price_per_km=1, organization=world.orgs["b"]["_id"])
    km = distance_km(CENTER, offset(10, 0))
    own = await api.post(f"{API}/orders", order_body(list_a, organization=world.org("a")), token=world.tokens["client"])
    assert own.status == 201 and own.json["price_estimate"] == round(3000 + 10 * km, 2)
    common = await api.post(
        f"{API}/orders", order_body(shared, organization=world.org("a")), token=world.tokens["client"]
    )
    assert common.status == 201 and common.json["price_estimate"] == round(1000 + 50 * km, 2)
    by_type = await api.post(f"{API}/orders", order_body(list_b), token=world.tokens["client"])
    assert by_type.status == 201 and by_type.json["organization"] == world.org("b"), "a list's type orders from it"
    for name, body in (
        ("client", order_body(list_b, organization=world.org("a"))),
        ("manager_a", order_body(list_b, organization=world.org("a"), client_id=world.id("client"))),
        ("admin", order_body(list_b, organization=world.org("a"), client_id=world.id("client"))),
    ):
        refused = await api.post(f"{API}/orders", body, token=world.tokens[name])
        assert refused.status == 422 and "vehicle.type_id" in refused.json["error"]["details"], name
    priced = await api.post(
        f"{API}/orders",
        order_body(list_a, organization=world.org("a"), client_id=world.id("client")),
        token=world.tokens["manager_a"],
    )
    assert priced.status == 201 and priced.json["price_estimate"] == round(3000 + 10 * km, 2)


@pytest.mark.gen_test(timeout=60)
async def test_managers_order_only_for_their_customers_and_refuse_every_other_id_alike(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    await world.add_user("driver", "DRIVER", "a")
    await world.add_user("member", "BASE", "a")
    body = order_body(sedan, organization=world.org("a"))
    refusals = []
    for client_id in (
        oid(),
        world.id("driver"),
        world.id("manager_b"),
        world.id("admin"),
        world.id("other_client"),
        world.id("client"),
    ):
        answer = await api.post(f"{API}/orders", {**body, "client_id": client_id}, token=world.tokens["manager_a"])
        refusals.append((answer.status, answer.body))
    assert len(set(refusals)) == 1 and refusals[0][0] == 422, "no refused id tells what it is"
    assert (
        await api.post(f"{API}/orders", {**body, "client_id": world.id("member")}, token=world.tokens["manager_a"])
    ).status == 201, "a client of the organization"
    assert (
        await api.post(f"{API}/orders", order_body(sedan, organization=world.org("b")), token=world.tokens["client"])
    ).status == 201
    elsewhere = await api.post(
        f"{API}/orders", {**body, "client_id": world.id("client")}, token=world.tokens["manager_a"]
    )
    assert (elsewhere.status, elsewhere.body) == refusals[0], "an order with another organization links to it only"
    assert (
        await api.post(f"{API}/orders", order_body(sedan, organization=world.org("a")), token=world.tokens["client"])
    ).status == 201
    assert (
        await api.post(f"{API}/orders", {**body, "client_id": world.id("client")}, token=world.tokens["manager_a"])
    ).status == 201, "now a customer of the organization"
    admin = await api.post(
        f"{API}/orders", {**body, "client_id": world.id("other_client")}, token=world.tokens["admin"]
    )
    assert admin.status == 201, "ADMINs order for any client"


@pytest.mark.gen_test(timeout=60)
async def test_order_input_is_validated(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    body = order_body(sedan)
    body["pickup"] = {"lat": 95, "lon": "x"}
    body["vehicle"] = {"type_id": "nope"}
    answer = await api.post(f"{API}/orders", body, token=world.tokens["client"])
    assert answer.status == 422
    details = answer.json["error"]["details"]
    assert {"pickup.lat", "pickup.lon", "pickup.address", "vehicle.type_id", "vehicle.make"} <= set(details)
    assert (await api.get(f"{API}/orders/not-an-id", token=world.tokens["client"])).status == 400
    assert (await api.get(f"{API}/orders/{oid()}", token=world.tokens["client"])).status == 404


# --- idempotency ------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_idempotent_create_returns_the_first_answer(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    body = order_body(sedan)
    key = {"Idempotency-Key": "order-2030-05-01-0001"}
    first = await api.post(f"{API}/orders", body, headers=key, token=world.tokens["client"])
    again = await api.post(f"{API}/orders", body, headers=key, token=world.tokens["client"])
    assert first.status == again.status == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert sync_db["orders"].count_documents({}) == 1

    changed = await api.post(f"{API}/orders", {**body, "notes": "other"}, headers=key, token=world.tokens["client"])
    assert changed.status == 409 and changed.error_code == "idempotency_key_reused"
    other_user = await api.post(f"{API}/orders", body, headers=key, token=world.tokens["other_client"])
    assert other_user.status == 201 and other_user.json["id"] != first.json["id"], "keys are per user"
    fresh = await api.post(f"{API}/orders", body, headers={"Idempotency-Key": "another"}, token=world.tokens["client"])
    assert fresh.json["id"] != first.json["id"]
    assert sync_db["orders"].count_documents({}) == 3
    bad_key = await api.post(
        f"{API}/orders", body, headers={"Idempotency-Key": "has spaces"}, token=world.tokens["client"]
    )
    assert bad_key.status == 422 and "Idempotency-Key" in bad_key.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_identical_requests_create_one_order(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    key = {"Idempotency-Key": "tap-tap-tap"}
    answers = await asyncio.gather(
        *(api.post(f"{API}/orders", order_body(sedan), headers=key, token=world.tokens["client"]) for _ in range(5))
    )
    assert {a.status for a in answers} == {201}
    assert len({a.json["id"] for a in answers}) == 1
    assert sync_db["orders"].count_documents({}) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_failed_request_does_not_spend_its_key(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    key = {"Idempotency-Key": "retry-me"}
    bad = order_body(sedan)
    bad["pickup"]["lat"] = 100
    assert (await api.post(f"{API}/orders", bad, headers=key, token=world.tokens["client"])).status == 422
    good = await api.post(f"{API}/orders", order_body(sedan), headers=key, token=world.tokens["client"])
    assert good.status == 201
    assert sync_db["idempotency"].count_documents({}) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_key_older_than_a_day_is_forgotten(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    key = {"Idempotency-Key": "yesterday"}
    first = await api.post(f"{API}/orders", order_body(sedan), headers=key, token=world.tokens["client"])
    sync_db["idempotency"].update_many({}, {"$set": {"created_at": utcnow() - timedelta(hours=25)}})
    later = await api.post(
        f"{API}/orders", order_body(sedan, notes="new day"), headers=key, token=world.tokens["client"]
    )
    assert later.status == 201 and later.json["id"] != first.json["id"]
    assert "created_at" in sync_db["idempotency"].index_information()["expire_after_24h"]["key"][0]


# --- scope and lists ----------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_lists_and_reads_are_scoped_by_role_and_organization(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck_a", "a", "driver_a")
    await world.add_vehicle("truck_b", "b", "driver_b")
    a_new = await insert_order(world, "new", "a")
    a_driving = await insert_order(world, "en_route", "a", vehicle="truck_a")
    b_mine = await insert_order(world, "assigned", "b", vehicle="truck_b")
    b_other = await insert_order(world, "new", "b", client="other_client")
    pool = await insert_order(world, "new", None, client="other_client")
    every = {str(o["_id"]) for o in (a_new, a_driving, b_mine, b_other, pool)}

    seen = {
        name: set(ids(await api.get(f"{API}/orders", token=world.tokens[name])))
        for name in ("client", "other_client", "driver_a", "driver_b", "manager_a", "manager_b", "admin")
    }
    assert seen["client"] == {str(a_new["_id"]), str(a_driving["_id"]), str(b_mine["_id"])}
    assert seen["other_client"] == {str(b_other["_id"]), str(pool["_id"])}
    assert seen["driver_a"] == {str(a_driving["_id"])} and seen["driver_b"] == {str(b_mine["_id"])}
    assert seen["manager_a"] == {str(a_new["_id"]), str(a_driving["_id"])}
    assert seen["manager_b"] == {str(b_mine["_id"]), str(b_other["_id"])}
    assert seen["admin"] == every

    manager_a = world.tokens["manager_a"]
    for order in (b_mine, b_other, pool):
        base = f"{API}/orders/{order['_id']}"
        for method, path, body in (
            ("GET", base, None),
            ("GET", f"{base}/events", None),
            ("GET", f"{base}/track", None),
            ("POST", f"{base}/status", {"status": "cancelled"}),
            ("POST", f"{base}/assign", {"auto": True}),
        ):
            answer = await api.request(method, path, body, token=manager_a)
            assert answer.status == 404, (method, path)
    assert (await api.get(f"{API}/orders/{a_new['_id']}", token=world.tokens["other_client"])).status == 404
    assert (await api.get(f"{API}/orders/{a_new['_id']}", token=world.tokens["driver_a"])).status == 404
    assert (await api.get(f"{API}/orders/{a_driving['_id']}", token=world.tokens["driver_a"])).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_list_filters_and_pages(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    old = await insert_order(world, "new", "a")
    sync_db["orders"].update_one({"_id": old["_id"]}, {"$set": {"created_at": utcnow() - timedelta(days=3)}})
    driving = await insert_order(world, "accepted", "a", vehicle="truck")
    newest = await insert_order(world, "new", "a")
    admin = world.tokens["admin"]
    listed = await api.get(f"{API}/orders", token=admin)
    assert ids(listed) == [str(newest["_id"]), str(driving["_id"]), str(old["_id"])], "newest first"
    assert ids(await api.get(f"{API}/orders?status=new", token=admin)) == [str(newest["_id"]), str(old["_id"])]
    assert ids(await api.get(f"{API}/orders?driver={world.id('driver')}", token=admin)) == [str(driving["_id"])]
    since = isoformat(utcnow() - timedelta(days=1))
    assert str(old["_id"]) not in ids(await api.get(f"{API}/orders?from={since}", token=admin))
    assert ids(await api.get(f"{API}/orders?to={since}", token=admin)) == [str(old["_id"])]
    page = await api.get(f"{API}/orders?limit=1&offset=1", token=admin)
    assert ids(page) == [str(driving["_id"])] and page.json["total"] == 3 and page.json["limit"] == 1
    for bad in ("status=flying", "driver=xyz", "from=last-week"):
        assert (await api.get(f"{API}/orders?{bad}", token=admin)).status == 422, bad
    manager_b_filter = await api.get(f"{API}/orders?organization={world.org('a')}", token=world.tokens["manager_b"])
    assert manager_b_filter.json["items"] == [], "a filter never widens the scope"


# --- the state machine, per role, over HTTP -----------------------------------------------------------
def http_expected(role: str, status: str, action: str) -> int | str:
    """What the API answers: `expected` of the state machine, with the role gate of /assign and scope."""
    if action == "assigned" and role in ("BASE", "DRIVER"):
        return 403
    if role == "DRIVER" and status == "new":
        return 404  # a new order is assigned to no driver: outside every driver's scope
    return expected(role, status, action)


ROLE_USERS = {"BASE": "client", "DRIVER": "driver", "MANAGER": "manager_a", "ADMIN": "admin"}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("role", list(ROLE_USERS))
@pytest.mark.gen_test(timeout=60)
async def test_every_move_per_role(app: Any, api: Api, role: str, status: str) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("truck", "a", "driver")
    token = world.tokens[ROLE_USERS[role]]
    for action in ACTIONS:
        want = http_expected(role, status, action)
        order = await insert_order(world, status, "a", vehicle=None if status == "new" else "truck")
        spare = await world.add_vehicle(f"spare_{action}", "a", f"spare_driver_{action}")
        if action == "assigned":
            answer = await api.post(
                f"{API}/orders/{order['_id']}/assign", {"vehicle_id": str(spare["_id"])}, token=token
            )
        else:
            answer = await api.post(
                f"{API}/orders/{order['_id']}/status", {"status": action, "reason": "test"}, token=token
            )
        if isinstance(want, int):
            assert answer.status == want, (role, status, action, answer.json)
            stored = await app.settings["services"].db["orders"].find_one({"_id": order["_id"]})
            assert stored["status"] == status and stored["timeline"] == [], "a refused move changes nothing"
            continue
        assert answer.status == 200, (role, status, action, answer.json)
        assert answer.json["status"] == want
        timeline = (await api.get(f"{API}/orders/{order['_id']}/events", token=world.tokens["admin"])).json["items"]
        assert [(e["type"], e["from"], e["to"], e["actor_id"]) for e in timeline] == [
            (action, status, want, world.id(ROLE_USERS[role]))
        ]
        if action == "assigned":
            assert answer.json["vehicle_id"] == str(spare["_id"])
            assert (await vehicle_doc(app, spare))["current_order"] == order["_id"]
        elif action in ("completed", "cancelled", "declined") and status != "new":
            freed = await vehicle_doc(app, truck)
            assert freed["status"] == "available" and freed["current_order"] is None, (status, action)


# --- assignment ---------------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_two_managers_assigning_at_once_exactly_one_wins(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("manager_a2", "MANAGER", "a")
    one = await world.add_vehicle("one", "a", "driver_one")
    two = await world.add_vehicle("two", "a", "driver_two")
    order = await insert_order(world, "new", "a")
    path = f"{API}/orders/{order['_id']}/assign"
    answers = await asyncio.gather(
        api.post(path, {"vehicle_id": str(one["_id"])}, token=world.tokens["manager_a"]),
        api.post(path, {"vehicle_id": str(two["_id"])}, token=world.tokens["manager_a2"]),
    )
    assert sorted(a.status for a in answers) == [200, 409]
    [winner] = [a for a in answers if a.status == 200]
    [loser] = [a for a in answers if a.status == 409]
    assert loser.error_code == "invalid_transition"
    won, lost = (one, two) if winner.json["vehicle_id"] == str(one["_id"]) else (two, one)
    assert winner.json["driver_id"] == str(won["driver_id"])
    assert (await vehicle_doc(app, won))["status"] == "busy"
    released = await vehicle_doc(app, lost)
    assert released["status"] == "available" and released["current_order"] is None, "the loser's truck is released"
    timeline = (await api.get(f"{API}/orders/{order['_id']}/events", token=world.tokens["admin"])).json
    assert [e["type"] for e in timeline["items"]] == ["assigned"]


@pytest.mark.gen_test(timeout=60)
async def test_two_managers_racing_for_the_same_truck(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("manager_a2", "MANAGER", "a")
    truck = await world.add_vehicle("one", "a", "driver_one")
    first, second = await insert_order(world, "new", "a"), await insert_order(world, "new", "a")
    answers = await asyncio.gather(
        api.post(
            f"{API}/orders/{first['_id']}/assign", {"vehicle_id": str(truck["_id"])}, token=world.tokens["manager_a"]
        ),
        api.post(
            f"{API}/orders/{second['_id']}/assign", {"vehicle_id": str(truck["_id"])}, token=world.tokens["manager_a2"]
        ),
    )
    assert sorted(a.status for a in answers) == [200, 409]
    assert {a.error_code for a in answers if a.status == 409} == {"vehicle_not_available"}


@pytest.mark.gen_test(timeout=60)
async def test_auto_assignment_takes_the_nearest_available_truck_of_the_organization(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("far", "a", "d1", at=offset(5, 0))
    await world.add_vehicle("near", "a", "d2", at=offset(1, 0))
    await world.add_vehicle("nearest_busy", "a", "d3", status="busy", at=offset(0.1, 0))
    await world.add_vehicle("nearest_other_org", "b", "d4", at=offset(0.2, 0))
    await world.add_vehicle("no_position", "a", "d5")
    events = capture_events(app)
    answers = []
    for _ in range(4):
        order = await insert_order(world, "new", "a")
        answers.append(
            await api.post(f"{API}/orders/{order['_id']}/assign", {"auto": True}, token=world.tokens["manager_a"])
        )
    assert [a.status for a in answers] == [200, 200, 200, 409]
    assert [a.json["vehicle_id"] for a in answers[:3]] == [world.id("near"), world.id("far"), world.id("no_position")]
    assert answers[3].error_code == "no_vehicle_available"
    assignment = next(e for e in events if e.type == "assignment")
    assert assignment.channels == (f"user:{world.id('d2')}",)
    assert assignment.data["order"]["vehicle_id"] == world.id("near")
    assigned = next(e for e in events if e.type == "order")
    assert assigned.data["event"] == "assigned" and assigned.data["from"] == "new" and assigned.data["to"] == "assigned"
    assert set(assigned.data["order"]) >= {"id", "client_id", "driver_id", "organization", "status"}


@pytest.mark.gen_test(timeout=60)
async def test_orders_auto_assigned_at_once_never_share_a_truck(app: Any, api: Api) -> None:
    world = await make_world(app)
    for n in range(3):
        await world.add_vehicle(f"t{n}", "a", f"d{n}", at=offset(n + 1, 0))
    orders = [await insert_order(world, "new", "a") for _ in range(5)]
    answers = await asyncio.gather(
        *(api.post(f"{API}/orders/{o['_id']}/assign", {"auto": True}, token=world.tokens["manager_a"]) for o in orders)
    )
    won = [a.json["vehicle_id"] for a in answers if a.status == 200]
    assert len(won) == 3 and len(set(won)) == 3
    assert sorted(a.error_code for a in answers if a.status != 200) == ["no_vehicle_available"] * 2
    trucks = await app.settings["services"].db["vehicles"].find({}).to_list()
    assert sorted(str(t["current_order"]) for t in trucks) == sorted(a.json["id"] for a in answers if a.status == 200)


@pytest.mark.gen_test(timeout=60)
async def test_manual_assignment_checks_the_truck(app: Any, api: Api) -> None:
    world = await make_world(app)
    other_org = await world.add_vehicle("b1", "b", "db")
    offline = await world.add_vehicle("off", "a", "d_off", status="offline")
    driverless = await world.add_vehicle("nobody", "a", None, status="offline")
    await world.add_vehicle("busy", "a", "d_busy", status="busy")
    order = await insert_order(world, "new", "a")
    path = f"{API}/orders/{order['_id']}/assign"
    as_admin = await api.post(path, {"vehicle_id": str(other_org["_id"])}, token=world.tokens["admin"])
    assert as_admin.status == 422 and "vehicle_id" in as_admin.json["error"]["details"]
    out_of_scope = await api.post(path, {"vehicle_id": str(other_org["_id"])}, token=world.tokens["manager_a"])
    assert out_of_scope.status == 422
    for truck in (offline, driverless, world.vehicles["busy"]):
        answer = await api.post(path, {"vehicle_id": str(truck["_id"])}, token=world.tokens["manager_a"])
        assert answer.status == 409 and answer.error_code == "vehicle_not_available"
    for body in ({}, {"auto": False}, {"auto": True, "vehicle_id": str(offline["_id"])}, {"vehicle_id": "x"}):
        assert (await api.post(path, body, token=world.tokens["manager_a"])).status == 422, body
    no_truck = await api.post(path, {"auto": True}, token=world.tokens["manager_a"])
    assert no_truck.status == 409 and no_truck.error_code == "no_vehicle_available"
    assert (await api.get(f"{API}/orders/{order['_id']}", token=world.tokens["admin"])).json["status"] == "new"


@pytest.mark.gen_test(timeout=60)
async def test_an_order_of_the_admins_pool_joins_the_fleet_of_its_truck(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("b1", "b", "db", at=offset(3, 0))
    order = await insert_order(world, "new", None)
    answer = await api.post(f"{API}/orders/{order['_id']}/assign", {"auto": True}, token=world.tokens["admin"])
    assert answer.status == 200 and answer.json["organization"] == world.org("b")
    assert (await api.get(f"{API}/orders/{order['_id']}", token=world.tokens["manager_b"])).status == 200


# --- a trip from start to end ---------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_a_whole_trip_frees_the_truck_and_keeps_the_timeline(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    truck = await world.add_vehicle("truck", "a", "driver", at=offset(3, 0))
    events = capture_events(app)
    order = (
        await api.post(f"{API}/orders", order_body(sedan, organization=world.org("a")), token=world.tokens["client"])
    ).json
    base = f"{API}/orders/{order['id']}"
    assert (await api.post(f"{base}/assign", {"auto": True}, token=world.tokens["manager_a"])).status == 200
    track = (await api.get(f"{base}/track", token=world.tokens["client"])).json
    assert track["vehicle_id"] == world.id("truck") and track["status"] == "assigned"
    assert track["location"]["lat"] == pytest.approx(offset(3, 0)["lat"])
    assert track["distance_to_pickup_km"] == pytest.approx(3, abs=0.01)

    driver = world.tokens["driver"]
    for step in ("accepted", "en_route"):
        assert (await api.post(f"{base}/status", {"status": step}, token=driver)).status == 200
    await put_position(app, truck, offset(0.5, 0))
    closer = (await api.get(f"{base}/track", token=world.tokens["client"])).json
    assert closer["distance_to_pickup_km"] == pytest.approx(0.5, abs=0.01)
    for step in ("arrived", "in_progress", "completed"):
        answer = await api.post(f"{base}/status", {"status": step}, token=driver)
        assert answer.status == 200 and answer.json["status"] == step
    freed = await vehicle_doc(app, truck)
    assert freed["status"] == "available" and freed["current_order"] is None
    done = (await api.get(f"{base}/track", token=world.tokens["client"])).json
    assert done["location"] is None and done["distance_to_pickup_km"] is None, "no tracking after the trip"

    timeline = (await api.get(f"{base}/events", token=world.tokens["client"])).json
    assert [(e["type"], e["from"], e["to"]) for e in timeline["items"]] == [
        ("created", None, "new"),
        ("assigned", "new", "assigned"),
        ("accepted", "assigned", "accepted"),
        ("en_route", "accepted", "en_route"),
        ("arrived", "en_route", "arrived"),
        ("in_progress", "arrived", "in_progress"),
        ("completed", "in_progress", "completed"),
    ]
    assert timeline["items"][1]["actor_id"] == world.id("manager_a")
    assert timeline["items"][1]["vehicle_id"] == world.id("truck")
    assert all(e["actor_id"] == world.id("driver") for e in timeline["items"][2:])
    page = (await api.get(f"{base}/events?limit=2&offset=5", token=world.tokens["client"])).json
    assert [e["type"] for e in page["items"]] == ["in_progress", "completed"] and page["total"] == 7

    order_events = [e.data for e in events if e.type == "order"]
    assert [e["event"] for e in order_events] == ["created", "assigned"] + ["status_changed"] * 5
    assert [e["to"] for e in order_events[2:]] == ["accepted", "en_route", "arrived", "in_progress", "completed"]
    assert order_events[-1]["order"]["status"] == "completed" and order_events[-1]["actor_id"] == world.id("driver")
    assert all(f"fleet:{world.org('a')}" in e.channels for e in events if e.type == "order")


@pytest.mark.gen_test(timeout=60)
async def test_decline_returns_the_order_to_new_and_frees_the_truck(app: Any, api: Api) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "new", "a")
    base = f"{API}/orders/{order['_id']}"
    assigned = await api.post(f"{base}/assign", {"vehicle_id": str(truck["_id"])}, token=world.tokens["manager_a"])
    assert assigned.status == 200
    declined = await api.post(
        f"{base}/status", {"status": "declined", "reason": "Flat tyre"}, token=world.tokens["driver"]
    )
    assert declined.status == 200 and declined.json["status"] == "new"
    assert declined.json["vehicle_id"] is None and declined.json["driver_id"] is None
    assert (await vehicle_doc(app, truck))["status"] == "available"
    assert (await api.get(base, token=world.tokens["driver"])).status == 404, "no longer the driver's order"
    last = (await api.get(f"{base}/events", token=world.tokens["manager_a"])).json["items"][-1]
    assert (last["type"], last["from"], last["to"], last["reason"]) == ("declined", "assigned", "new", "Flat tyre")
    again = await api.post(f"{base}/assign", {"auto": True}, token=world.tokens["manager_a"])
    assert again.status == 200 and again.json["vehicle_id"] == str(truck["_id"])


@pytest.mark.gen_test(timeout=60)
async def test_client_cancels_before_arrival_and_the_truck_is_freed(app: Any, api: Api) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "en_route", "a", vehicle="truck")
    answer = await api.post(
        f"{API}/orders/{order['_id']}/status",
        {"status": "cancelled", "reason": "Fixed it myself"},
        token=world.tokens["client"],
    )
    assert answer.status == 200 and answer.json["status"] == "cancelled"
    freed = await vehicle_doc(app, truck)
    assert freed["status"] == "available" and freed["current_order"] is None
    arrived = await insert_order(world, "arrived", "a", vehicle="truck")
    late = await api.post(
        f"{API}/orders/{arrived['_id']}/status", {"status": "cancelled"}, token=world.tokens["client"]
    )
    assert late.status == 409 and late.error_code == "invalid_transition"
    assert late.json["error"]["details"]["allowed"] == ["in_progress"]


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_status_changes_apply_once(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "assigned", "a", vehicle="truck")
    path = f"{API}/orders/{order['_id']}/status"
    answers = await asyncio.gather(
        api.post(path, {"status": "accepted"}, token=world.tokens["driver"]),
        api.post(path, {"status": "accepted"}, token=world.tokens["manager_a"]),
        api.post(path, {"status": "accepted"}, token=world.tokens["admin"]),
    )
    assert sorted(a.status for a in answers) == [200, 409, 409]
    assert {a.error_code for a in answers if a.status == 409} == {"invalid_transition"}
    timeline = (await api.get(f"{API}/orders/{order['_id']}/events", token=world.tokens["admin"])).json
    assert timeline["total"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_status_body_is_validated(app: Any, api: Api) -> None:
    world = await make_world(app)
    order = await insert_order(world, "new", "a")
    path = f"{API}/orders/{order['_id']}/status"
    for body in ({}, {"status": "assigned"}, {"status": "new"}, {"status": "accepted", "reason": "x" * 501}):
        answer = await api.post(path, body, token=world.tokens["admin"])
        assert answer.status == 422, body
    assert (
        await api.post(f"{API}/orders/{ObjectId()}/status", {"status": "cancelled"}, token=world.tokens["admin"])
    ).status == 404


# --- orders from integrations (SPEC section 9) -------------------------------------------
CUSTOMER = {"name": "Ivan Petrov", "phone": "+7 916 123-45-67", "email": "ivan@example.com", "language": "ru"}


@pytest.mark.gen_test(timeout=60)
async def test_a_key_orders_for_its_organization_with_its_own_reference(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    priced = await make_vehicle_type(app, base_price=2000, price_per_km=50, organization=world.orgs["a"]["_id"])
    created_key = await make_key(api, world.tokens["manager_a"], world.org("a"), ["orders:read", "orders:write"])
    key = with_key(created_key["key"])
    body = order_body(priced, external_ref="MC-123", customer=CUSTOMER)
    answer = await api.post(f"{API}/orders", body, headers=key)
    assert answer.status == 201, answer.json
    order = answer.json
    assert order["source"] == "api" and order["external_ref"] == "MC-123"
    assert order["organization"] == world.org("a") and order["client_id"] is None
    assert order["created_by"] == created_key["id"]
    assert order["customer"] == {**CUSTOMER, "phone": "+79161234567"}
    assert order["price_estimate"] == round(2000 + 50 * order["distance_km"], 2)
    [created] = (await api.get(f"{API}/orders/{order['id']}/events", headers=key)).json["items"]
    assert created["actor_id"] == created_key["id"] and created["actor_type"] == "api_key"

    again = await api.post(f"{API}/orders", body, headers=key)
    assert again.status == 409 and again.error_code == "duplicate_external_ref"
    other_key = await make_key(api, world.tokens["manager_b"], world.org("b"), ["orders:write"])
    elsewhere = await api.post(
        f"{API}/orders", order_body(priced, external_ref="MC-123"), headers=with_key(other_key["key"])
    )
    assert elsewhere.status == 422 and "vehicle.type_id" in elsewhere.json["error"]["details"], "not b's price list"
    shared = await make_vehicle_type(app)
    elsewhere = await api.post(
        f"{API}/orders", order_body(shared, external_ref="MC-123"), headers=with_key(other_key["key"])
    )
    assert elsewhere.status == 201 and elsewhere.json["organization"] == world.org("b"), "refs are per organization"

    found = await api.get(f"{API}/orders?external_ref=MC-123", headers=key)
    assert [o["id"] for o in found.json["items"]] == [order["id"]]
    by_manager = await api.get(f"{API}/orders?external_ref=MC-123", token=world.tokens["manager_a"])
    assert [o["id"] for o in by_manager.json["items"]] == [order["id"]]
    assert sync_db["orders"].count_documents({"external_ref": "MC-123"}) == 2


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_orders_with_one_reference_create_exactly_one(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    key = with_key((await make_key(api, world.tokens["manager_a"], world.org("a"), ["orders:write"]))["key"])
    body = order_body(sedan, external_ref="INS-42")
    answers = await asyncio.gather(*(api.post(f"{API}/orders", body, headers=key) for _ in range(10)))
    assert sorted(a.status for a in answers) == [201] + [409] * 9
    assert {a.error_code for a in answers if a.status == 409} == {"duplicate_external_ref"}
    assert sync_db["orders"].count_documents({"external_ref": "INS-42"}) == 1


@pytest.mark.gen_test(timeout=60)
async def test_integration_fields_are_validated_and_kept_from_clients(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    key = with_key((await make_key(api, world.tokens["manager_a"], world.org("a"), ["orders:write"]))["key"])
    for fields, field in (
        ({"customer": {**CUSTOMER, "phone": "+7 000"}}, "customer.phone"),
        ({"customer": {**CUSTOMER, "language": "de"}}, "customer.language"),
        ({"customer": {"phone": "+79161234567"}}, "customer.name"),
        ({"external_ref": "x" * 101}, "external_ref"),
        ({"client_id": world.id("client")}, "client_id"),
        ({"organization": world.org("b")}, "organization"),
    ):
        refused = await api.post(f"{API}/orders", order_body(sedan, **fields), headers=key)
        assert refused.status == 422 and field in refused.json["error"]["details"], fields
    for fields in ({"external_ref": "MINE-1"}, {"customer": CUSTOMER}):
        refused = await api.post(f"{API}/orders", order_body(sedan, **fields), token=world.tokens["client"])
        assert refused.status == 422 and set(refused.json["error"]["details"]) == set(fields), fields
    own = await api.post(
        f"{API}/orders", order_body(sedan, external_ref=None, customer=None), token=world.tokens["client"]
    )
    assert own.json["source"] == "app" and own.json["external_ref"] is None and own.json["customer"] is None

    phone_order = order_body(sedan, organization=world.org("a"), customer={"name": "Walk-in"}, external_ref="TEL-7")
    by_manager = await api.post(f"{API}/orders", phone_order, token=world.tokens["manager_a"])
    assert by_manager.status == 201, by_manager.json
    assert by_manager.json["client_id"] is None and by_manager.json["source"] == "app"
    assert by_manager.json["customer"] == {"name": "Walk-in", "phone": None, "email": None, "language": None}


@pytest.mark.gen_test(timeout=60)
async def test_a_key_cancels_its_organizations_orders_and_makes_no_other_move(app: Any, api: Api) -> None:
    world = await make_world(app)
    sedan = await make_vehicle_type(app)
    await world.add_vehicle("truck", "a", "driver")
    created_key = await make_key(api, world.tokens["manager_a"], world.org("a"), ["orders:write", "orders:read"])
    key = with_key(created_key["key"])
    order = (await api.post(f"{API}/orders", order_body(sedan), headers=key)).json
    status = f"{API}/orders/{order['id']}/status"
    moved = await api.post(status, {"status": "accepted"}, headers=key)
    assert moved.status == 403 and moved.error_code == "transition_forbidden"
    assigned = await api.post(f"{API}/orders/{order['id']}/assign", {"auto": True}, headers=key)
    assert assigned.status == 403 and assigned.error_code == "not_for_api_keys"
    cancelled = await api.post(status, {"status": "cancelled", "reason": "Customer found a ride"}, headers=key)
    assert cancelled.status == 200 and cancelled.json["status"] == "cancelled"
    last = (await api.get(f"{API}/orders/{order['id']}/events", headers=key)).json["items"][-1]
    assert last["type"] == "cancelled" and last["actor_id"] == created_key["id"] and last["actor_type"] == "api_key"
    other = await insert_order(world, "new", "b")
    foreign = await api.post(f"{API}/orders/{other['_id']}/status", {"status": "cancelled"}, headers=key)
    assert foreign.status == 404
