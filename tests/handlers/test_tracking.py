"""Tracking links (SPEC section 11): share, follow without an account, expire, revoke; the public view
never shows anything private, over REST or the socket."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from dispatch.core import jsonutil
from dispatch.core.timeutil import utcnow
from models.common import parse_id
from tests.support.api_keys import make_key, with_key
from tests.support.factories import login, make_org, make_user
from tests.support.fleet_fixtures import make_vehicle_type, order_body
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, point, ws_url

SECRET = "ZZSECRETZZ"  # marks every private value seeded below


async def private_team(app: Any, api: Api) -> dict[str, Any]:
    """An organization, a manager, a driver with a truck, and a client, each full of marked private data."""
    org = await make_org(app, name=f"{SECRET} Towing", phone="+74950000000")
    manager = await make_user(app, "MANAGER", organizations=[org["_id"]], last_name=f"{SECRET}Boss")
    manager_token = await login(app, manager)
    driver = await make_user(
        app,
        "DRIVER",
        organizations=[org["_id"]],
        first_name="Ivan",
        last_name=f"{SECRET}Petrov",
        email=f"{SECRET.lower()}.driver@example.com",
    )
    truck = await api.post(
        "/api/v1/vehicles",
        {
            "plate": "A777AA77",
            "model": "GAZelle Next",
            "capacity_kg": 3500,
            "organization": str(org["_id"]),
            "driver_id": str(driver["_id"]),
            "status": "available",
        },
        token=manager_token,
    )
    assert truck.status == 201, truck.json
    client = await make_user(
        app, "BASE", first_name=f"{SECRET}Anna", last_name=f"{SECRET}Client", email=f"{SECRET.lower()}@example.com"
    )
    client_token = await login(app, client)
    body = order_body(await make_vehicle_type(app), organization=str(org["_id"]))
    created = await api.post("/api/v1/orders", body, token=client_token)
    assert created.status == 201, created.json
    return {
        "org": org,
        "manager_token": manager_token,
        "driver": driver,
        "driver_token": await login(app, driver),
        "truck": truck.json,
        "client": client,
        "client_token": client_token,
        "order": created.json,
    }


def assert_public(payload: Any, team: dict[str, Any]) -> None:
    """Nothing private in a public answer or frame: no marked value, no user or organization id."""
    text = jsonutil.dumps(payload).decode()
    for private in (
        SECRET,
        SECRET.lower(),
        "@",
        "+7",
        str(team["org"]["_id"]),
        str(team["driver"]["_id"]),
        str(team["client"]["_id"]),
        team["truck"]["id"],
    ):
        assert private not in text, (private, text)


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_a_link_is_followed_without_an_account_and_shows_only_the_public_view(
    app: Any, api: Api, base_url: str
) -> None:
    team = await private_team(app, api)
    order = team["order"]
    shared = await api.post(f"/api/v1/orders/{order['id']}/share", token=team["client_token"])
    assert shared.status == 201, shared.json
    token = shared.json["token"]
    assert len(token) >= 43 and shared.json["url"] == f"http://dispatch.test/t/{token}"
    assert shared.json["expires_at"] is None  # the order is active: it ends later
    stored = await app.settings["services"].db["share_links"].find_one({})
    assert token not in jsonutil.dumps({k: str(v) for k, v in stored.items()}).decode()  # only its hash

    before = await api.get(f"/api/v1/track/{token}", token="")
    assert before.status == 200
    assert before.json == {
        "order": {
            "id": order["id"],
            "status": "new",
            "pickup": order["pickup"],
            "dropoff": order["dropoff"],
            "eta": None,
        },
        "vehicle": None,
        "driver": None,
    }
    tracker = await WsClient.connect(ws_url(base_url, f"/ws/track/{token}"))
    await tracker.recv_type("ready")

    assigned = await api.post(
        f"/api/v1/orders/{order['id']}/assign", {"vehicle_id": team["truck"]["id"]}, token=team["manager_token"]
    )
    assert assigned.status == 200, assigned.json
    frames = [await tracker.recv_type("order")]
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["driver_token"])
    await driver.recv_type("ready")
    await driver.send({"type": "status", "order_id": order["id"], "status": "accepted"})
    frames.append(await tracker.recv_type("order"))
    await driver.send({"type": "location", **point(1, lat=55.70, lon=37.50)})
    located = await tracker.recv_type("location")
    frames.append(located)
    assert set(located) == {"type", "offset", "location"}
    assert (located["location"]["lat"], located["location"]["lon"]) == (55.70, 37.50)
    assert frames[1]["order"]["status"] == "accepted" and set(frames[1]["order"]) == set(before.json["order"])

    view = await api.get(f"/api/v1/track/{token}", token="")
    assert view.json["vehicle"]["plate"] == "A777AA77" and view.json["vehicle"]["model"] == "GAZelle Next"
    assert view.json["vehicle"]["location"]["lat"] == 55.70
    assert view.json["driver"] == {"first_name": "Ivan"}
    assert set(view.json["vehicle"]) == {"plate", "model", "location"}
    for payload in (before.json, view.json, *frames):
        assert_public(payload, team)

    # a reconnect with `since` replays what was missed, projected the same way
    again = await WsClient.connect(ws_url(base_url, f"/ws/track/{token}?since={frames[0]['offset']}"))
    replayed = [await again.recv_type("order"), await again.recv_type("location")]
    assert replayed[0]["order"]["status"] == "accepted" and replayed[1]["offset"] == located["offset"]
    for payload in replayed:
        assert_public(payload, team)
    await again.send({"type": "status", "order_id": order["id"], "status": "cancelled"})
    assert (await again.recv_type("error"))["code"] == "unknown_type"  # read-only


@pytest.mark.gen_test(timeout=60)
async def test_who_may_share_and_revoking_stops_every_link_and_closes_sockets(
    app: Any, api: Api, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dispatch.access")
    team = await private_team(app, api)
    order_id = team["order"]["id"]
    path = f"/api/v1/orders/{order_id}/share"
    stranger = await login(app, await make_user(app, "BASE"))
    assert (await api.post(path, token=stranger)).status == 404
    assert (await api.post(path, token=team["driver_token"])).status == 403
    by_manager = await api.post(path, token=team["manager_token"])
    org = str(team["org"]["_id"])
    key = (await make_key(api, team["manager_token"], org, ["orders:write"]))["key"]
    by_key = await api.post(path, headers=with_key(key), token="")
    assert by_manager.status == by_key.status == 201
    read_only = (await make_key(api, team["manager_token"], org, ["orders:read"]))["key"]
    assert (await api.post(path, headers=with_key(read_only), token="")).status == 403

    sockets = []
    for link in (by_manager.json, by_key.json):
        socket = await WsClient.connect(ws_url(base_url, f"/ws/track/{link['token']}"))
        await socket.recv_type("ready")
        sockets.append(socket)
    revoked = await api.delete(path, token=team["client_token"])
    assert revoked.status == 204
    for socket in sockets:
        assert await socket.closed() == 4403
    for link in (by_manager.json, by_key.json):
        gone = await api.get(f"/api/v1/track/{link['token']}", token="")
        assert gone.status == 404 and gone.error_code == "not_found"
        refused = await WsClient.connect(ws_url(base_url, f"/ws/track/{link['token']}"))
        assert await refused.closed() == 4403
    assert (await api.get("/api/v1/track/not-a-token", token="")).status == 404
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/ws/track/***" in logged and "/api/v1/track/***" in logged
    assert by_manager.json["token"] not in logged and by_key.json["token"] not in logged  # tokens never logged


@pytest.mark.gen_test(timeout=60)
async def test_a_link_expires_two_hours_after_the_order_ends(app: Any, api: Api, base_url: str) -> None:
    team = await private_team(app, api)
    order_id = team["order"]["id"]
    token = (await api.post(f"/api/v1/orders/{order_id}/share", token=team["client_token"])).json["token"]
    cancelled = await api.post(f"/api/v1/orders/{order_id}/status", {"status": "cancelled"}, token=team["client_token"])
    assert cancelled.status == 200
    still = await api.get(f"/api/v1/track/{token}", token="")
    assert still.status == 200 and still.json["order"]["status"] == "cancelled"
    later = await api.post(f"/api/v1/orders/{order_id}/share", token=team["client_token"])
    assert later.status == 201 and later.json["expires_at"] is not None

    orders = app.settings["services"].db["orders"]
    await orders.update_one(
        {"_id": parse_id(order_id)}, {"$set": {"ended_at": utcnow() - timedelta(hours=2, seconds=1)}}
    )
    assert (await api.get(f"/api/v1/track/{token}", token="")).status == 404
    refused = await WsClient.connect(ws_url(base_url, f"/ws/track/{token}"))
    assert await refused.closed() == 4403
    too_late = await api.post(f"/api/v1/orders/{order_id}/share", token=team["client_token"])
    assert too_late.status == 409 and too_late.error_code == "tracking_ended"


@pytest.mark.gen_test(timeout=60)
async def test_the_page_is_served_with_the_console_csp_and_a_friendly_404(app: Any, api: Api, base_url: str) -> None:
    team = await private_team(app, api)
    token = (await api.post(f"/api/v1/orders/{team['order']['id']}/share", token=team["client_token"])).json["token"]
    async with httpx.AsyncClient(trust_env=False) as raw:
        page = await raw.get(f"{base_url}/t/{token}")
        gone = await raw.get(f"{base_url}/t/unknown-token", headers={"Accept": "text/html,*/*;q=0.8"})
        as_json = await raw.get(f"{base_url}/t/unknown-token")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert '<script type="module" src="/static/track/track.js">' in page.text and "<script>" not in page.text
    assert gone.status_code == 404 and gone.headers["Content-Type"].startswith("text/html")
    assert "does not work" in gone.text
    assert as_json.status_code == 404 and as_json.json()["error"]["code"] == "not_found"  # a program gets JSON


@pytest.mark.gen_test(timeout=60)
async def test_the_client_sees_the_truck_and_driver_to_meet_and_sets_a_language(app: Any, api: Api) -> None:
    team = await private_team(app, api)
    order_id, client = team["order"]["id"], team["client_token"]
    painted = await api.patch(
        f"/api/v1/vehicles/{team['truck']['id']}", {"color": "Yellow"}, token=team["manager_token"]
    )
    assert painted.status == 200 and painted.json["color"] == "Yellow"
    waiting = await api.get(f"/api/v1/orders/{order_id}", token=client)
    assert waiting.json["truck"] is None and waiting.json["driver"] is None
    assign = {"vehicle_id": team["truck"]["id"]}
    assert (await api.post(f"/api/v1/orders/{order_id}/assign", assign, token=team["manager_token"])).status == 200
    mine = await api.get(f"/api/v1/orders/{order_id}", token=client)
    assert mine.json["truck"] == {"plate": "A777AA77", "model": "GAZelle Next", "color": "Yellow"}
    assert mine.json["driver"] == {"first_name": "Ivan", "rating": None}
    assert (await api.get(f"/api/v1/vehicles/{team['truck']['id']}", token=client)).status in (403, 404)
    managers = await api.get(f"/api/v1/orders/{order_id}", token=team["manager_token"])
    assert "truck" not in managers.json  # staff read vehicles and users themselves

    me = await api.get("/api/v1/users/me", token=client)
    assert me.json["language"] is None
    changed = await api.patch("/api/v1/users/me", {"language": "ru"}, token=client)
    assert changed.status == 200 and changed.json["language"] == "ru"
    refused = await api.patch("/api/v1/users/me", {"language": "de"}, token=client)
    assert refused.status == 422 and "language" in refused.json["error"]["details"]


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_the_public_endpoints_are_rate_limited_per_address(app: Any, api: Api, base_url: str) -> None:
    services = app.settings["services"]
    allowed, seconds = services.settings.rate_limit_table["track_ip"]
    window = int(time.time()) // seconds
    for used_up in (window, window + 1):  # this address's quota, also if the window turns meanwhile
        await services.redis.set(f"rl:track_ip:127.0.0.1:{used_up}", allowed)
    refused = await api.get("/api/v1/track/any-token", token="")
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    socket = await WsClient.connect(ws_url(base_url, "/ws/track/any-token"))
    assert await socket.closed() == 1013  # try again later
