"""API keys (SPEC section 9): made and revoked by an organization's managers, shown once, stored as a
hash, acting for their organization only and within their scopes, refused where a person is meant,
rate-limited per key."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from dispatch.settings import Settings
from tests.support.api_keys import make_key, with_key
from tests.support.factories import PASSWORD
from tests.support.fleet_fixtures import API, CENTER, insert_order, make_world, offset
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, ws_url


@pytest.fixture
def settings(services: Any, request: pytest.FixtureRequest) -> Settings:
    """The test's settings; a test may change some with indirect parametrization."""
    return services.settings(**getattr(request, "param", {}))


def strings_in(value: Any) -> list[str]:
    """Every string anywhere in a stored document (keys and values)."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *strings_in(v)]]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [str(value)]


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_a_key_is_shown_once_and_stored_only_as_its_hash(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    manager = world.tokens["manager_a"]
    created = await make_key(api, manager, world.org("a"), ["orders:read", "fleet:read"], name="Motor club")
    key = created["key"]
    assert key.startswith("dsp_") and len(key) >= 4 + 32
    assert created["prefix"] == key[:8] and created["name"] == "Motor club"
    assert sorted(created["scopes"]) == ["fleet:read", "orders:read"]
    assert created["organization"] == world.org("a") and created["last_used_at"] is None

    [stored] = list(sync_db["api_keys"].find({}))
    assert not [s for s in strings_in(stored) if key in s], "the key's text is stored nowhere"
    assert hashlib.sha256(key.encode()).hexdigest() in strings_in(stored)

    listed = await api.get(f"{API}/organizations/{world.org('a')}/api-keys", token=manager)
    assert listed.status == 200 and listed.json["total"] == 1
    [shown] = listed.json["items"]
    assert "key" not in shown and key not in listed.body.decode()
    assert shown["prefix"] == key[:8] and shown["id"] == created["id"] and shown["last_used_at"] is None

    used = await api.get(f"{API}/orders", headers=with_key(key))
    assert used.status == 200, used.json
    again = await api.get(f"{API}/organizations/{world.org('a')}/api-keys", token=manager)
    assert again.json["items"][0]["last_used_at"] is not None


@pytest.mark.gen_test(timeout=60)
async def test_only_the_organizations_managers_and_admins_run_its_keys(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("driver", "DRIVER", "a")
    path = f"{API}/organizations/{world.org('a')}/api-keys"
    body = {"name": "Insurer", "scopes": ["orders:read"]}
    for who in ("driver", "client"):
        assert (await api.get(path, token=world.tokens[who])).status == 403, who
        assert (await api.post(path, body, token=world.tokens[who])).status == 403, who
    key = await make_key(api, world.tokens["manager_a"], world.org("a"))
    outsider = world.tokens["manager_b"]
    assert (await api.get(path, token=outsider)).status == 404
    assert (await api.post(path, body, token=outsider)).status == 404
    assert (await api.delete(f"{path}/{key['id']}", token=outsider)).status == 404
    assert (await api.post(path, body, token=world.tokens["admin"])).status == 201
    for bad in ({"name": "x", "scopes": []}, {"name": "x", "scopes": ["orders:delete"]}, {"scopes": ["webhooks"]}):
        refused = await api.post(path, bad, token=world.tokens["manager_a"])
        assert refused.status == 422, bad


@pytest.mark.gen_test(timeout=60)
async def test_a_key_acts_for_its_organization_within_its_scopes(app: Any, api: Api) -> None:
    world = await make_world(app)
    own_truck = await world.add_vehicle("truck_a", "a", "driver_a", at=offset(2, 0))
    other_truck = await world.add_vehicle("truck_b", "b", "driver_b", at=offset(1, 0))
    own_order, other_order = await insert_order(world, org="a"), await insert_order(world, org="b")
    reader = (await make_key(api, world.tokens["manager_a"], world.org("a"), ["orders:read"]))["key"]
    fleet = (await make_key(api, world.tokens["manager_a"], world.org("a"), ["fleet:read"]))["key"]

    listed = await api.get(f"{API}/orders", headers=with_key(reader))
    assert [o["id"] for o in listed.json["items"]] == [str(own_order["_id"])]
    assert (await api.get(f"{API}/orders/{own_order['_id']}/events", headers=with_key(reader))).status == 200
    assert (await api.get(f"{API}/orders/{other_order['_id']}", headers=with_key(reader))).status == 404
    vehicles = await api.get(f"{API}/vehicles", headers=with_key(fleet))
    assert [v["id"] for v in vehicles.json["items"]] == [str(own_truck["_id"])]
    assert (await api.get(f"{API}/vehicles/{other_truck['_id']}", headers=with_key(fleet))).status == 404
    assert (await api.get(f"{API}/vehicles/{other_truck['_id']}/track", headers=with_key(fleet))).status == 404
    assert (await api.get(f"{API}/vehicle-types", headers=with_key(fleet))).status == 200
    near = await api.get(
        f"{API}/vehicles/nearby?lat={CENTER['lat']}&lon={CENTER['lon']}&radius_km=50", headers=with_key(fleet)
    )
    assert [v["id"] for v in near.json["items"]] == [str(own_truck["_id"])], "only its organization's trucks"

    for key, method, path, scope in (
        (reader, "GET", "/vehicles", "fleet:read"),
        (reader, "POST", "/orders", "orders:write"),
        (fleet, "GET", f"/orders/{own_order['_id']}", "orders:read"),
    ):
        refused = await api.request(method, API + path, {} if method == "POST" else None, headers=with_key(key))
        assert refused.status == 403 and refused.error_code == "insufficient_scope", path
        assert refused.json["error"]["details"] == {"required_scope": scope}


@pytest.mark.gen_test(timeout=60)
async def test_keys_are_refused_where_a_person_is_meant(app: Any, api: Api) -> None:
    world = await make_world(app)
    order = await insert_order(world, org="a")
    key = (await make_key(api, world.tokens["manager_a"], world.org("a")))["key"]
    for method, path, body in (
        ("GET", "/users/me", None),
        ("GET", "/auth/sessions", None),
        ("POST", "/auth/login", {"login": world.users["manager_a"]["username"], "password": PASSWORD}),
        ("POST", f"/orders/{order['_id']}/assign", {"auto": True}),
        ("GET", f"/organizations/{world.org('a')}/api-keys", None),
    ):
        refused = await api.request(method, API + path, body, headers=with_key(key))
        assert refused.status == 403 and refused.error_code == "not_for_api_keys", path
    assert (await api.get("/healthz", headers=with_key(key))).status == 200, "public service endpoints ignore a key"
    both = await api.get(f"{API}/orders", headers=with_key(key), token=world.tokens["manager_a"])
    assert both.status == 400 and both.error_code == "ambiguous_credentials"


@pytest.mark.gen_test(timeout=60)
async def test_sockets_close_a_key_with_4403(app: Any, api: Api, base_url: str) -> None:
    world = await make_world(app)
    key = (await make_key(api, world.tokens["manager_a"], world.org("a")))["key"]
    for path in ("/ws/driver", "/ws/console"):
        request = tornado.httpclient.HTTPRequest(ws_url(base_url, path), headers=with_key(key), request_timeout=10)
        socket = WsClient(await tornado.websocket.websocket_connect(request))
        assert await socket.closed() == 4403, path
    as_token = await WsClient.connect(ws_url(base_url, "/ws/console?token=" + key), header=False)
    assert await as_token.closed() == 4403


@pytest.mark.gen_test(timeout=60)
async def test_unknown_and_revoked_keys_are_refused_at_once(app: Any, api: Api) -> None:
    world = await make_world(app)
    manager = world.tokens["manager_a"]
    created = await make_key(api, manager, world.org("a"))
    for wrong in ("dsp_" + "A" * 43, "not-a-key", created["key"][:-1]):
        refused = await api.get(f"{API}/orders", headers=with_key(wrong))
        assert refused.status == 401 and refused.error_code == "invalid_api_key", wrong
        assert refused.headers["WWW-Authenticate"].startswith("ApiKey")
    assert (await api.get(f"{API}/orders", headers=with_key(created["key"]))).status == 200
    path = f"{API}/organizations/{world.org('a')}/api-keys/{created['id']}"
    revoked = await api.delete(path, token=manager)
    assert revoked.status == 204 and revoked.body == b""
    refused = await api.get(f"{API}/orders", headers=with_key(created["key"]))
    assert refused.status == 401 and refused.error_code == "invalid_api_key"
    assert (await api.delete(path, token=manager)).status == 404
    listed = await api.get(f"{API}/organizations/{world.org('a')}/api-keys", token=manager)
    assert listed.json["total"] == 0


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("settings", [{"api_key_rate_limit": 3}], indirect=True)
async def test_each_key_is_rate_limited_on_its_own(app: Any, api: Api) -> None:
    world = await make_world(app)
    busy = (await make_key(api, world.tokens["manager_a"], world.org("a")))["key"]
    calm = (await make_key(api, world.tokens["manager_a"], world.org("a")))["key"]
    if time.time() % 60 > 55:  # the limit counts per clock minute: start the burst well inside one
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    statuses = [(await api.get(f"{API}/orders", headers=with_key(busy))).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await api.get(f"{API}/orders", headers=with_key(busy))
    assert limited.error_code == "rate_limited" and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await api.get(f"{API}/orders", headers=with_key(calm))).status == 200
