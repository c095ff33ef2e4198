"""Abuse: other organizations' objects (IDOR), forged tokens, brute force, hostile bodies, slowloris."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from bson import ObjectId

from dispatch.core import jsonutil
from dispatch.core.security import encode_token
from tests.support.factories import PASSWORD, login, make_user
from tests.support.fleet_fixtures import CENTER, World, gps_point, make_vehicle_type, make_world, oid, order_body
from tests.support.helpers import Api
from tests.support.processes import serving
from tests.support.realtime_client import WsClient, fleet, point, ws_url
from tests.support.sms import new_phone, request_code, wrong

API = "/api/v1"
# Day-long windows (a fixed window cannot reset mid-test); generous where a test is not about the limit.
LIMITS = (
    "login_account=3/86400,login_ip=1000/86400,sms_request_phone=5/86400,sms_request_ip=1000/86400,"
    "sms_verify_ip=1000/86400"
)


@pytest.fixture
def settings(services: Any) -> Any:
    return services.settings(rate_limits=LIMITS)


# --- IDOR across organizations ------------------------------------------------------------------
@pytest.fixture
def world(io_loop: Any, app: Any, api: Api) -> Iterator[World]:
    """Organization b's objects of every kind, made through the API by b's own people."""

    async def build() -> World:
        world = await make_world(app)
        await world.add_vehicle("truck", "a", driver="driver", at=CENTER)
        await world.add_vehicle("truck_b", "b", driver="driver_b", at=CENTER)
        vtype = await make_vehicle_type(app)
        b = {
            "client": world.tokens["other_client"],
            "manager": world.tokens["manager_b"],
            "driver": world.tokens["driver_b"],
        }
        order = (
            await api.post(f"{API}/orders", order_body(vtype, organization=world.org("b")), token=b["client"])
        ).json
        assert (
            await api.post(
                f"{API}/orders/{order['id']}/assign", {"vehicle_id": world.id("truck_b")}, token=b["manager"]
            )
        ).status == 200
        for status in ("accepted", "en_route", "arrived", "in_progress", "completed"):
            assert (
                await api.post(f"{API}/orders/{order['id']}/status", {"status": status}, token=b["driver"])
            ).status == 200
        payment = await api.post(
            f"{API}/orders/{order['id']}/payments", {"amount": 100, "method": "cash"}, token=b["driver"]
        )
        waybill = await api.post(f"{API}/waybills", {"vehicle_id": world.id("truck_b")}, token=b["driver"])
        ticket = await api.post(
            f"{API}/support/tickets", {"subject": "s", "description": "d", "order_id": order["id"]}, token=b["client"]
        )
        notes = (await api.get(f"{API}/notifications", token=b["client"])).json["items"]
        assert payment.status == waybill.status == ticket.status == 201 and notes
        now = datetime.now(UTC)
        await (
            app.settings["services"]
            .db["gps_points"]
            .insert_many(
                [gps_point(world.vehicles["truck_b"], n, CENTER, now - timedelta(minutes=n)) for n in range(1, 4)]
            )
        )
        world.b = {
            "order": order["id"],
            "waybill": waybill.json["id"],
            "ticket": ticket.json["id"],  # type: ignore
            "notification": notes[0]["id"],
            "vehicle": world.id("truck_b"),
            "org": world.org("b"),
            "manager": world.id("manager_b"),
            "driver": world.id("driver_b"),
            "client": world.id("other_client"),
        }
        return world

    return io_loop.run_sync(build)


def b_requests(b: dict[str, str], world: World) -> list[tuple[str, str, Any]]:
    """Every operation on one of organization b's objects, by id."""
    order = f"/orders/{b['order']}"
    return [
        ("GET", f"/users/{b['manager']}", None),
        ("GET", f"/users/{b['driver']}", None),
        ("GET", f"/users/{b['client']}", None),
        ("PATCH", f"/users/{b['driver']}", {"organizations": [world.org("a")]}),
        ("GET", f"/organizations/{b['org']}", None),
        ("PATCH", f"/organizations/{b['org']}", {"name": "Mine now"}),
        ("POST", f"/organizations/{b['org']}/members/{world.id('client')}", None),
        ("DELETE", f"/organizations/{b['org']}/members/{b['driver']}", None),
        ("GET", f"/vehicles/{b['vehicle']}", None),
        ("PATCH", f"/vehicles/{b['vehicle']}", {"model": "Stolen"}),
        ("DELETE", f"/vehicles/{b['vehicle']}", None),
        ("GET", f"/vehicles/{b['vehicle']}/track", None),
        ("GET", order, None),
        ("GET", f"{order}/events", None),
        ("GET", f"{order}/track", None),
        ("GET", f"{order}/payments", None),
        ("POST", f"{order}/payments", {"amount": 1, "method": "cash"}),
        ("POST", f"{order}/status", {"status": "cancelled"}),
        ("POST", f"{order}/status", {"status": "declined"}),
        ("POST", f"{order}/assign", {"vehicle_id": world.id("truck")}),
        ("POST", f"{order}/rating", {"score": 1}),
        ("GET", f"/waybills/{b['waybill']}", None),
        ("PATCH", f"/waybills/{b['waybill']}", {"route_notes": "x"}),
        ("POST", f"/notifications/{b['notification']}/read", None),
        ("GET", f"/support/tickets/{b['ticket']}", None),
        ("PATCH", f"/support/tickets/{b['ticket']}", {"status": "closed"}),
        ("GET", f"/support/tickets/{b['ticket']}/messages", None),
        ("POST", f"/support/tickets/{b['ticket']}/messages", {"body": "hello"}),
    ]


def snapshot(db: Any, b: dict[str, str]) -> dict[str, Any]:
    """Organization b's stored objects, and counts of what hangs off them."""
    by_id = {
        "users": ["manager", "driver", "client"],
        "organizations": ["org"],
        "vehicles": ["vehicle"],
        "orders": ["order"],
        "waybills": ["waybill"],
        "support_tickets": ["ticket"],
        "notifications": ["notification"],
    }
    state: dict[str, Any] = {
        f"{name}:{key}": db[name].find_one({"_id": ObjectId(b[key])}) for name, keys in by_id.items() for key in keys
    }
    for name, field in (("payments", "order_id"), ("ratings", "order_id"), ("support_messages", "ticket_id")):
        target = b["ticket"] if name == "support_messages" else b["order"]
        state[f"{name} count"] = db[name].count_documents({field: ObjectId(target)})
    return state


@pytest.mark.parametrize("attacker", ["manager_a", "driver", "client"])
@pytest.mark.gen_test(timeout=60)
async def test_other_organizations_objects_answer_like_missing_ones(
    api: Api, world: World, sync_db: Any, attacker: str
) -> None:
    b = world.b  # type: ignore[attr-defined]
    before = snapshot(sync_db, b)
    token = world.tokens[attacker]
    for method, path, body in b_requests(b, world):
        if attacker == "client" and path == f"/organizations/{b['org']}" and method == "GET":
            card = await api.get(API + path, token=token)  # clients read organizations' public cards only
            assert card.status == 200 and not card.json.get("members")
            continue
        real = await api.request(method, API + path, body, token=token)
        missing_path = path
        for value in b.values():
            missing_path = missing_path.replace(value, oid())
        missing = await api.request(method, API + missing_path, body, token=token)
        assert 400 <= real.status < 500, (attacker, method, path, real.status, real.body[:300])
        assert (real.status, real.error_code) == (missing.status, missing.error_code), (attacker, method, path)
        leaked = [value for value in b.values() if value.encode() in real.body and value not in path]
        assert not leaked, (attacker, method, path, leaked)
    assert snapshot(sync_db, b) == before


LISTS = [
    "/users",
    "/organizations",
    "/vehicles",
    "/orders",
    "/waybills",
    "/notifications",
    "/support/tickets",
    f"/vehicles/nearby?lat={CENTER['lat']}&lon={CENTER['lon']}&radius_km=5",
]


@pytest.mark.parametrize("attacker", ["manager_a", "driver"])
@pytest.mark.gen_test(timeout=60)
async def test_lists_never_show_another_organizations_objects(api: Api, world: World, attacker: str) -> None:
    b = world.b  # type: ignore[attr-defined]
    secrets = {value for key, value in b.items() if key != "org"}
    token = world.tokens[attacker]
    seen = 0
    for path in LISTS:
        for query in (
            "",
            f"organization={b['org']}",
            f"driver_id={b['driver']}",
            f"driver={b['driver']}",
            f"client={b['client']}",
            f"order_id={b['order']}",
            f"vehicle_id={b['vehicle']}",
        ):
            joined = API + path + ("&" if "?" in path else "?") + query + "&limit=200"
            answer = await api.get(joined, token=token)
            if answer.status == 403:  # a list this role may not read at all
                continue
            assert answer.status in (200, 404, 422), (joined, answer.status)
            text = answer.body.decode()
            leaked = [value for value in secrets if value in text]
            assert not leaked, (attacker, joined, leaked)
            seen += answer.status == 200
    assert seen >= 10


@pytest.mark.gen_test(timeout=60)
async def test_a_client_never_sees_another_clients_objects(api: Api, world: World) -> None:
    b = world.b  # type: ignore[attr-defined]
    for path in ("/orders", "/notifications", "/support/tickets", f"/orders?client={b['client']}"):
        answer = await api.get(API + path, token=world.tokens["client"])
        assert answer.status == 200 and answer.json["total"] == 0, path


# --- forged and dead tokens -----------------------------------------------------------------------
def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def hs384(claims: dict[str, Any], secret: str) -> str:
    """A token signed with the right secret but another algorithm than the one the server accepts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)  # the test secret is short for HS384
        return jwt.encode(claims, secret, algorithm="HS384")


@pytest.mark.gen_test(timeout=60)
async def test_tampered_and_dead_tokens_are_401(api: Api, app: Any, settings: Any) -> None:
    user = await make_user(app, "MANAGER")
    admin = await make_user(app, "ADMIN")
    token = await login(app, user)
    assert (await api.get(f"{API}/users/me", token=token)).status == 200
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    as_admin = _b64({**claims, "sub": str(admin["_id"])})
    secret = settings.jwt_secret
    forged = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, no dot": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}",
        "payload swapped to an admin": f"{header}.{as_admin}.{signature}",
        "wrong key": jwt.encode(claims, "not-the-secret-" + "y" * 32, algorithm="HS256"),
        "HS384 with the right key": hs384(claims, secret),
        "expired": encode_token(secret, "access", str(user["_id"]), -60, sid=claims["sid"]),
        "no session id": encode_token(secret, "access", str(user["_id"]), 600),
        "someone else's session": encode_token(secret, "access", str(admin["_id"]), 600, sid=claims["sid"]),
        "activation token": encode_token(secret, "activate", str(user["_id"]), 600, email=user["email_lower"]),
        "reset token": encode_token(secret, "reset", str(user["_id"]), 600, sid=claims["sid"]),
        "truncated": token[:-5],
        "garbage": "not.a.token",
        "empty": "",
    }
    for name, bad in forged.items():
        # a header value cannot end in a space on the wire: the empty token is sent as a bare "Bearer"
        answer = await api.get(f"{API}/users/me", headers={"Authorization": f"Bearer {bad}".strip()}, token="")
        assert answer.status == 401, name
        assert answer.error_code in ("invalid_token", "token_expired", "session_ended", "unauthenticated"), name
    for header_value in (f"Basic {token}", f"Token {token}", token, f"Bearer  {token} x"):
        answer = await api.get(f"{API}/users/me", headers={"Authorization": header_value}, token="")
        assert answer.status == 401, header_value
    assert (await api.post(f"{API}/auth/logout", token=token)).status == 204
    answer = await api.get(f"{API}/users/me", token=token)
    assert answer.status == 401 and answer.error_code == "session_ended"


# --- brute force ------------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_parallel_password_guessing_is_stopped_at_the_limit(api: Api, app: Any) -> None:
    user = await make_user(app, phone="+79161234599")
    guesses = [
        api.post(f"{API}/auth/login", {"login": user["username"], "password": f"guess-{n}-guess"}) for n in range(20)
    ]
    statuses = sorted(answer.status for answer in await asyncio.gather(*guesses))
    assert statuses == [401] * 3 + [429] * 17  # login_account=3: counted atomically, never more
    # the right password, under any name of the account, is refused until the window ends
    for name in (user["username"], user["username"].upper(), user["email"], user["email"].upper(), user["phone"]):
        right = await api.post(f"{API}/auth/login", {"login": name, "password": PASSWORD})
        assert right.status == 429 and int(right.headers["Retry-After"]) > 0, name


@pytest.mark.gen_test(timeout=90)
async def test_parallel_sms_code_guessing_burns_the_code(api: Api, services: Any) -> None:
    _, e164 = new_phone()
    code = await request_code(api, services, e164, e164, set())
    guesses = [
        api.post(f"{API}/auth/sms/verify", {"phone": e164, "code": f"{n:06d}"}) for n in range(30) if f"{n:06d}" != code
    ]
    answers = await asyncio.gather(*guesses)
    assert all(answer.status == 400 and answer.error_code == "invalid_code" for answer in answers)
    assert all(answer.json["error"]["details"].get("attempts_left", 0) >= 0 for answer in answers)
    late = await api.post(f"{API}/auth/sms/verify", {"phone": e164, "code": code})
    assert late.status == 400 and late.error_code == "invalid_code", "the right code is burnt after 5 wrong ones"
    assert wrong(code) != code


# --- hostile bodies ---------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_hostile_json_is_a_4xx(api: Api, app: Any) -> None:
    token = await login(app, await make_user(app, "ADMIN"))
    deep = "[" * 100_000 + "]" * 100_000
    cases = {
        "deep nesting": deep,
        "deep objects": '{"a":' * 5000 + "1" + "}" * 5000,
        "NaN": '{"name": "T", "base_price": NaN, "price_per_km": 1}',
        "Infinity": '{"name": "T", "base_price": Infinity, "price_per_km": 1}',
        "1e999": '{"name": "T", "base_price": 1e999, "price_per_km": 1}',
        "huge integer": '{"name": "T", "base_price": ' + "9" * 5000 + ', "price_per_km": 1}',
        "duplicate keys": '{"name": "T", "name": {"$gt": ""}, "base_price": 1, "price_per_km": 1}',
        "lone surrogate": '{"name": "\\ud800", "base_price": 1, "price_per_km": 1}',
        "invalid UTF-8": b'{"name": "\xff\xfe", "base_price": 1, "price_per_km": 1}',
        "a million keys": "{" + ",".join(f'"k{n}": 0' for n in range(100_000)) + "}",
        "BOM": "\ufeff" + '{"name": "T", "base_price": 1, "price_per_km": 1}',
        "not an object": '["name", "T"]',
        "empty": "",
    }
    for name, body in cases.items():
        answer = await api.post(
            f"{API}/vehicle-types", body=body, token=token, headers={"Content-Type": "application/json"}
        )
        assert answer.status in (400, 413, 422), (name, answer.status, answer.body[:200])
    assert (await api.get(f"{API}/vehicle-types", token=token)).json["total"] == 0


def raw_request(base_url: str, head: bytes, chunks: list[bytes]) -> tuple[int, bytes]:
    """Send a request by hand (chunked bodies too); the status and body of the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: that is the point
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.gen_test(timeout=60)
async def test_oversize_chunked_bodies_without_a_length_are_413(http_server: Any, base_url: str, app: Any) -> None:
    token = await login(app, await make_user(app, "ADMIN"))
    head = (
        f"POST {API}/vehicle-types HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 40 + [b"0\r\n\r\n"]  # 2.5 MiB, over the 1 MiB limit
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, raw_request, base_url, head, chunks)
    assert status == 413 and jsonutil.loads(body)["error"]["code"] == "body_too_large"
    small = [b"2\r\n{}\r\n", b"0\r\n\r\n"]
    status, body = await loop.run_in_executor(None, raw_request, base_url, head, small)
    assert status == 422, body  # a small chunked body is read and validated as usual


@pytest.mark.gen_test(timeout=60)
async def test_bodies_over_the_server_limit_are_refused_everywhere(api: Api, app: Any, settings: Any) -> None:
    token = await login(app, await make_user(app))
    big = b"\xff" * (settings.max_body_bytes + 1024)
    for method, path, kind in (
        ("PUT", "/users/me/avatar", "image/jpeg"),
        ("POST", "/orders", "application/json"),
        ("PATCH", "/users/me", "application/json"),
    ):
        answer = await api.request(method, API + path, body=big, token=token, headers={"Content-Type": kind})
        assert answer.status == 413, path


# --- slowloris --------------------------------------------------------------------------------------
def test_slow_clients_neither_block_others_nor_stay_forever(services: Any, tmp_path: Path) -> None:
    """Hundreds of sockets dribbling headers byte by byte on a real server: others are served; then they are cut."""
    settings = services.settings(idle_timeout=3, rate_limits=LIMITS)
    with serving(settings, tmp_path / "server.log") as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        slow = [socket.create_connection((host, int(port)), timeout=5) for _ in range(300)]
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        served = 0
        for n in range(12):  # ~3 s of dribbling, one byte per socket per step, with real requests between
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(request[n : n + 1])
            healthy = requests.get(base_url + "/healthz", timeout=5)
            wrong_login = requests.post(
                base_url + API + "/auth/login", timeout=5, json={"login": f"nobody{n}", "password": "x" * 8}
            )
            served += healthy.status_code == 200 and wrong_login.status_code == 401
            time.sleep(0.25)
        assert served == 12
        deadline = time.monotonic() + 20
        open_ones = list(slow)
        while open_ones and time.monotonic() < deadline:
            still = []
            for sock in open_ones:
                sock.settimeout(0.05)
                try:
                    if sock.recv(1) == b"":
                        continue  # the server closed it
                except (ConnectionResetError, BrokenPipeError):
                    continue
                except OSError:
                    pass  # nothing yet
                still.append(sock)
            open_ones = still
        for sock in slow:
            sock.close()
        assert not open_ones, f"{len(open_ones)} slow sockets still open after the idle timeout"
        assert requests.get(base_url + "/healthz", timeout=5).status_code == 200


# --- inputs at the edge of what the stores take -------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_a_polar_gps_point_is_stored_and_acked_but_not_searched(
    app: Any, api: Api, base_url: str, sync_db: Any
) -> None:
    """Redis GEO refuses latitudes beyond ±85.05°: such a point must not fail the batch it is in."""
    team = await fleet(app, api)
    driver = team["drivers"][0]
    socket = await WsClient.connect(ws_url(base_url, "/ws/driver"), driver["token"])
    await socket.recv_type("ready")
    await socket.send({"type": "locations", "points": [point(1, lat=55.75), point(2, lat=88.5, lon=10.0)]})
    await socket.recv_type("ack", seq=2)
    vehicle = (await api.get(f"{API}/vehicles/{driver['vehicle']['id']}", token=team["manager_token"])).json
    assert vehicle["location"]["lat"] == 88.5
    nearby = await api.get(f"{API}/vehicles/nearby?lat=55.75&lon=37.61&radius_km=50", token=team["manager_token"])
    assert nearby.status == 200 and nearby.json["total"] == 0  # it left its last searchable spot
    for _ in range(100):
        if sync_db.gps_points.count_documents({"vehicle_id": ObjectId(driver["vehicle"]["id"])}) == 2:
            break
        await asyncio.sleep(0.1)
    assert sync_db.gps_points.count_documents({"vehicle_id": ObjectId(driver["vehicle"]["id"])}) == 2
