"""Orders over websockets: assignments pushed to the driver, driver status frames, the order socket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.factories import login, make_user
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, ordered, point, ws_url


@pytest.mark.gen_test(timeout=60)
async def test_assignment_reaches_the_driver_who_then_moves_the_order(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api)
    crew = team["drivers"][0]
    order, client_token = await ordered(app, api, team)
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    tracker = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), client_token)
    await tracker.recv_type("subscribed", channel=f"order:{order['id']}")

    assigned = await api.post(
        f"/api/v1/orders/{order['id']}/assign", {"vehicle_id": crew["vehicle"]["id"]}, token=team["manager_token"]
    )
    assert assigned.status == 200, assigned.json
    push = await driver.recv_type("assignment")
    assert push["order"]["id"] == order["id"] and push["order"]["status"] == "assigned"
    assert (await tracker.recv_type("order", event="assigned"))["order"]["vehicle_id"] == crew["vehicle"]["id"]

    await driver.send({"type": "status", "order_id": order["id"], "status": "accepted"})
    answer = await driver.recv_type("order")
    assert answer["order"]["status"] == "accepted"
    assert (await tracker.recv_type("order", event="status_changed"))["to"] == "accepted"
    # the truck's position reaches the client's order socket while it works on the order
    await driver.send({"type": "location", **point(1, lat=55.70, lon=37.50)})
    await driver.recv_type("ack", seq=1)
    seen = await tracker.recv_type("location")
    assert (seen["lat"], seen["vehicle_id"]) == (55.70, crew["vehicle"]["id"])

    await driver.send({"type": "status", "order_id": order["id"], "status": "completed"})
    refused = await driver.recv_type("error")
    assert refused["code"] == "invalid_transition" and refused["order_id"] == order["id"]
    await driver.send({"type": "status", "order_id": "nope", "status": "en_route"})
    assert (await driver.recv_type("error"))["code"] == "invalid_id"
    await driver.send({"type": "status", "order_id": order["id"]})
    assert (await driver.recv_type("error"))["code"] == "bad_frame"


@pytest.mark.gen_test(timeout=60)
async def test_order_socket_is_for_the_people_of_the_order(app: Any, api: Api, base_url: str) -> None:
    team, other = await fleet(app, api), await fleet(app, api)
    order, client_token = await ordered(app, api, team)
    path = f"/ws/orders/{order['id']}"
    for token in (team["manager_token"], client_token):
        allowed = await WsClient.connect(ws_url(base_url, path), token)
        await allowed.recv_type("subscribed")
    stranger = await login(app, await make_user(app, "BASE"))
    for token in (stranger, other["manager_token"], team["drivers"][0]["token"]):
        refused = await WsClient.connect(ws_url(base_url, path), token)
        assert await refused.closed() == 4403
    unknown = await WsClient.connect(ws_url(base_url, "/ws/orders/000000000000000000000000"), client_token)
    assert await unknown.closed() == 4403
