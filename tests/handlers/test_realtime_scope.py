"""Access is re-checked while a socket is open: when an order or an organization leaves a user's
scope, their order socket closes with 4403 and their console subscriptions end with an error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.factories import login, make_user
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, ordered, point, ws_url


@pytest.mark.gen_test(timeout=60)
async def test_a_driver_who_declines_loses_the_order_socket(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api, drivers=2)
    first, second = team["drivers"]
    order, client_token = await ordered(app, api, team)
    assigned = await api.post(
        f"/api/v1/orders/{order['id']}/assign", {"vehicle_id": first["vehicle"]["id"]}, token=team["manager_token"]
    )
    assert assigned.status == 200, assigned.json
    declining = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), first["token"])
    await declining.recv_type("subscribed")
    client = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), client_token)
    await client.recv_type("subscribed")

    declined = await api.post(f"/api/v1/orders/{order['id']}/status", {"status": "declined"}, token=first["token"])
    assert declined.status == 200, declined.json
    assert await declining.closed() == 4403
    # the next truck is the client's business, not the declining driver's
    again = await api.post(
        f"/api/v1/orders/{order['id']}/assign", {"vehicle_id": second["vehicle"]["id"]}, token=team["manager_token"]
    )
    assert again.status == 200, again.json
    assert (await client.recv_type("order", event="assigned"))["order"]["vehicle_id"] == second["vehicle"]["id"]
    assert client.close_code is None  # the client keeps following its order
    reopened = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), first["token"])
    assert await reopened.closed() == 4403


@pytest.mark.gen_test(timeout=60)
async def test_a_manager_removed_from_an_organization_stops_following_it(app: Any, api: Api, base_url: str) -> None:
    kept, lost = await fleet(app, api), await fleet(app, api)
    manager = await make_user(app, "MANAGER", organizations=[kept["org"]["_id"], lost["org"]["_id"]])
    token = await login(app, manager)
    admin_token = await login(app, await make_user(app, "ADMIN"))
    order, _ = await ordered(app, api, lost)
    lost_channels = [f"fleet:{lost['org']['_id']}", f"vehicle:{lost['drivers'][0]['vehicle']['id']}"]
    kept_channel = f"fleet:{kept['org']['_id']}"
    console = await WsClient.connect(ws_url(base_url, "/ws/console"), token)
    for channel in [*lost_channels, kept_channel]:
        await console.send({"type": "subscribe", "channel": channel})
        await console.recv_type("subscribed", channel=channel)
    order_socket = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), token)
    await order_socket.recv_type("subscribed")
    drivers = {}
    for team in (lost, kept):
        drivers[team["org"]["_id"]] = socket = await WsClient.connect(
            ws_url(base_url, "/ws/driver"), team["drivers"][0]["token"]
        )
        await socket.recv_type("ready")

    removed = await api.delete(
        f"/api/v1/organizations/{lost['org']['_id']}/members/{manager['_id']}", token=admin_token
    )
    assert removed.status == 200, removed.json
    ended = {(await console.recv_type("error", code="forbidden"))["channel"] for _ in lost_channels}
    assert ended == set(lost_channels)
    assert await order_socket.closed() == 4403
    ended_at = len(console.seen)
    # the lost fleet moves, then the kept one: only the kept one's frames reach the console
    await drivers[lost["org"]["_id"]].send({"type": "location", **point(1)})
    await drivers[lost["org"]["_id"]].recv_type("ack", seq=1)
    await drivers[kept["org"]["_id"]].send({"type": "location", **point(1)})
    await drivers[kept["org"]["_id"]].recv_type("ack", seq=1)
    await console.recv_type("location", channel=kept_channel)
    assert not [f for f in console.seen[ended_at:] if f.get("channel") in lost_channels]
    await console.send({"type": "subscribe", "channel": lost_channels[0]})
    assert (await console.recv_type("error"))["code"] == "forbidden"


@pytest.mark.gen_test(timeout=60)
async def test_an_admin_moving_a_manager_out_closes_their_order_socket(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api)
    order, _ = await ordered(app, api, team)
    admin_token = await login(app, await make_user(app, "ADMIN"))
    watching = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), team["manager_token"])
    await watching.recv_type("subscribed")
    moved = await api.patch(f"/api/v1/users/{team['manager']['_id']}", {"organizations": []}, token=admin_token)
    assert moved.status == 200, moved.json
    assert await watching.closed() == 4403


@pytest.mark.gen_test(timeout=60)
async def test_an_ended_session_closes_its_order_socket_with_4403(app: Any, api: Api, base_url: str) -> None:
    """The order leaves the scope of a signed-out session; its driver socket says 4401 (sign in again)."""
    team = await fleet(app, api)
    order, client_token = await ordered(app, api, team)
    watching = await WsClient.connect(ws_url(base_url, f"/ws/orders/{order['id']}"), client_token)
    await watching.recv_type("subscribed")
    crew = team["drivers"][0]
    driving = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driving.recv_type("ready")
    assert (await api.post("/api/v1/auth/logout", token=client_token)).status == 204
    assert await watching.closed() == 4403
    assert (await api.post("/api/v1/auth/logout", token=crew["token"])).status == 204
    assert await driving.closed() == 4401
