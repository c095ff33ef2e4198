"""Live ETAs and arrival from the truck's GPS stream (SPEC section 10), against an OSRM-compatible stub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.core.geo import distance_km
from dispatch.domain.routing import Router
from dispatch.settings import Settings
from tests.support.fleet_fixtures import CENTER, insert_order, make_world, offset
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, ordered, point, ws_url
from tests.support.routing_stub import RoutingStub, routing_stub

API = "/api/v1"


@pytest.fixture
def stub() -> Iterator[RoutingStub]:
    with routing_stub() as running:
        yield running


@pytest.fixture
def settings(services: Any, stub: RoutingStub) -> Settings:
    return services.settings().replace(routing_url=stub.url)


async def _on_the_job(app: Any, api: Api, base_url: str, start: dict[str, float]) -> dict[str, Any]:
    """An order assigned to a truck standing at `start`, its driver's socket and the client's order socket."""
    team = await fleet(app, api)
    crew = team["drivers"][0]
    order, client_token = await ordered(app, api, team)
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    await driver.send({"type": "location", **point(1, **start)})
    await driver.recv_type("ack", seq=1)
    assigned = await api.post(
        f"{API}/orders/{order['id']}/assign", {"vehicle_id": crew["vehicle"]["id"]}, token=team["manager_token"]
    )
    assert assigned.status == 200, assigned.json
    tracker = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), client_token)
    await tracker.recv_type("subscribed")
    return {"order": order, "driver": driver, "tracker": tracker, "client_token": client_token, "team": team}


async def _status(job: dict[str, Any], status: str) -> None:
    await job["driver"].send({"type": "status", "order_id": job["order"]["id"], "status": status})
    while (await job["driver"].recv_type("order"))["order"]["status"] != status:
        pass  # the assignment's own update came first


@pytest.mark.gen_test(timeout=60)
async def test_eta_follows_the_truck_and_arrival_is_raised_once(
    app: Any, api: Api, base_url: str, stub: RoutingStub
) -> None:
    job = await _on_the_job(app, api, base_url, offset(-6, 0))
    order, driver, tracker = job["order"], job["driver"], job["tracker"]
    # the price estimate used the routing server's drive (the stub drives 1.5 × the straight line)
    assert order["distance_km"] == pytest.approx(distance_km(CENTER, offset(10, 0)) * 1.5, abs=0.01)
    assert order["eta"] is None

    await _status(job, "accepted")  # an ETA at once, from the truck's live position
    first = await tracker.recv_type("eta")
    assert first["order_id"] == order["id"] and first["target"] == "pickup" and first["source"] == "routing"
    assert first["distance_km"] == pytest.approx(9.0, abs=0.05) and first["seconds"] == pytest.approx(1080, abs=10)

    await driver.send({"type": "location", **point(2, **offset(-3, 0))})
    closer = await tracker.recv_type("eta")
    assert closer["distance_km"] == pytest.approx(4.5, abs=0.05) and closer["seconds"] < first["seconds"]
    # 55 m on, within the interval: no new ETA; the next one comes from the point after it
    await driver.send({"type": "location", **point(3, **offset(-2.95, 0))})
    await driver.send({"type": "location", **point(4, **offset(-1, 0))})
    nearer = await tracker.recv_type("eta")
    assert nearer["distance_km"] == pytest.approx(1.5, abs=0.05) and nearer["seconds"] < closer["seconds"]

    await _status(job, "en_route")
    await tracker.recv_type("eta")
    near = point(5, **offset(-0.1, 0))  # 100 m from the pickup: within the 150 m arrival radius
    await driver.send({"type": "location", **near})
    arriving = await tracker.recv_type("arriving")
    assert arriving["target"] == "pickup" and arriving["at"] == near["ts"]
    assert arriving["order"]["id"] == order["id"] and arriving["order"]["status"] == "en_route"
    # a resent point and a nearer one raise nothing more; a point 1 km on refreshes the ETA after them
    await driver.send({"type": "location", **near})
    await driver.send({"type": "location", **point(6, **offset(-0.05, 0))})
    await driver.send({"type": "location", **point(7, **offset(1, 0))})
    await tracker.recv_type("eta", distance_km=pytest.approx(1.5, abs=0.05))
    assert [f["type"] for f in tracker.seen].count("arriving") == 1

    timeline = await api.get(f"{API}/orders/{order['id']}/events", token=job["client_token"])
    arrivals = [e for e in timeline.json["items"] if e["type"] == "arriving"]
    assert len(arrivals) == 1 and arrivals[0]["target"] == "pickup"
    shown = await api.get(f"{API}/orders/{order['id']}", token=job["client_token"])
    assert shown.json["eta"]["source"] == "routing" and shown.json["eta"]["target"] == "pickup"
    told = await api.get(f"{API}/notifications", token=job["client_token"])
    assert [n["event"] for n in told.json["items"]].count("arriving") == 1

    await _status(job, "arrived")
    assert (await api.get(f"{API}/orders/{order['id']}", token=job["client_token"])).json["eta"] is None


@pytest.mark.gen_test(timeout=60)
async def test_routing_down_gives_estimates_never_errors(app: Any, api: Api, base_url: str, stub: RoutingStub) -> None:
    stub.mode = "down"
    job = await _on_the_job(app, api, base_url, offset(-6, 0))
    factor = app.settings["services"].settings.route_factor
    assert job["order"]["distance_km"] == pytest.approx(distance_km(CENTER, offset(10, 0)) * factor, abs=0.01)
    await _status(job, "accepted")
    eta = await job["tracker"].recv_type("eta")
    assert eta["source"] == "estimate" and eta["distance_km"] == pytest.approx(6 * factor, abs=0.05)
    assert eta["seconds"] == pytest.approx(6 * factor / 40 * 3600, abs=10)  # at DISPATCH_AVERAGE_SPEED_KMH


@pytest.mark.gen_test(timeout=30)
async def test_a_slow_routing_server_is_given_up_after_two_seconds(settings: Settings, stub: RoutingStub) -> None:
    router = Router(settings)
    stub.mode = "slow"
    started = time.monotonic()
    route = await router.route(CENTER, offset(5, 0))
    assert route.source == "estimate" and time.monotonic() - started < 2.8
    stub.mode = "ok"
    routed = await router.route(CENTER, offset(5, 0))
    assert routed.source == "routing" and routed.distance_km == pytest.approx(7.5, abs=0.05)
    asked = len(stub.asked)
    await router.route({"lat": CENTER["lat"] + 0.0001, "lon": CENTER["lon"]}, offset(5, 0))  # same ~100 m cell
    assert len(stub.asked) == asked, "answered from the cache"
    await router.close()
    assert Router(settings.replace(routing_url="")).estimate(CENTER, offset(5, 0)).source == "estimate"


@pytest.mark.gen_test(timeout=60)
async def test_auto_assignment_takes_the_shortest_drive(app: Any, api: Api, stub: RoutingStub) -> None:
    world = await make_world(app)
    behind_river, across = offset(1, 0), offset(2, 0)
    await world.add_vehicle("behind_river", "a", "d1", at=behind_river)
    await world.add_vehicle("across", "a", "d2", at=across)
    stub.detours[(round(behind_river["lat"], 3), round(behind_river["lon"], 3))] = 5.0  # a 7.5 km drive
    order = await insert_order(world, "new", "a")
    answer = await api.post(f"{API}/orders/{order['_id']}/assign", {"auto": True}, token=world.tokens["manager_a"])
    assert answer.status == 200 and answer.json["vehicle_id"] == world.id("across")
