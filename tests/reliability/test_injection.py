"""MongoDB operator injection: every JSON field and query parameter of the main endpoints.

Operator objects (`{"$gt": ""}`, `{"$where": ...}`, `{"$ne": null}`) where a value belongs, and keys
with `$` or `.` where an object is sent, must be refused with a 4xx: never a log-in, never a 5xx,
never a widened list, and nothing stored with such keys.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.factories import PASSWORD
from tests.support.fleet_fixtures import World, insert_order, make_vehicle_type, make_world, order_body, place
from tests.support.helpers import Api

API = "/api/v1"
# Values that would change a query's meaning if they reached MongoDB as they are.
OPERATORS: list[Any] = [
    {"$gt": ""},
    {"$ne": None},
    {"$where": "sleep(1000) || true"},
    {"$regex": ".*"},
    {"$exists": True},
    {"$in": ["BASE", "ADMIN"]},
    [{"$gt": ""}],
    {"$expr": {"$eq": [1, 1]}},
]
# Keys that MongoDB would read as operators or paths if an object were stored or queried as it is.
HOSTILE_KEYS: list[dict[str, Any]] = [
    {"$where": "sleep(1000)"},
    {"$set": {"category": "ADMIN"}},
    {"a.b": 1},
    {"category.$": "ADMIN"},
    {"$gt": ""},
]
# The same operators as they arrive in a query string: text only, which must stay text.
CONCURRENT = 8  # requests in flight at once where a test sends hundreds
QUERY_VALUES = ['{"$ne": null}', '{"$gt": ""}', "$where", "sleep(1000)", "[$ne]", ".*", "^", "a.b", "$"]


@pytest.fixture
def world(io_loop: Any, app: Any, api: Api) -> Iterator[World]:
    """Two organizations with people, trucks, an order each, a waybill and a ticket."""

    async def build() -> World:
        world = await make_world(app)
        await world.add_vehicle("truck", "a", driver="driver")
        await world.add_vehicle("truck_b", "b", driver="driver_b")
        world.vehicles["type"] = await make_vehicle_type(app)
        world.vehicles["order"] = await insert_order(world, "new", org="a")
        world.vehicles["order_b"] = await insert_order(world, "new", org="b", client="other_client")
        world.vehicles["done"] = await insert_order(world, "completed", org="a", vehicle="truck")
        return world

    return io_loop.run_sync(build)


def bodies(world: World) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(who, method, path, a valid body) for every main endpoint that takes JSON."""
    order, done = world.id("order"), world.id("done")
    return [
        (
            "",
            "POST",
            "/auth/register",
            {
                "username": "newcomer",
                "email": "newcomer@example.com",
                "password": "long-enough-pw",
                "category": "BASE",
                "first_name": "N",
            },
        ),
        ("", "POST", "/auth/login", {"login": world.users["client"]["username"], "password": PASSWORD}),
        ("", "POST", "/auth/refresh", {"refresh_token": "x" * 40}),
        ("", "POST", "/auth/password/forgot", {"email": world.users["client"]["email"]}),
        ("", "POST", "/auth/password/reset", {"token": "abc", "new_password": "long-enough-pw"}),
        ("", "POST", "/auth/sms/request", {"phone": "+79161234567"}),
        ("", "POST", "/auth/sms/verify", {"phone": "+79161234567", "code": "123456"}),
        ("client", "POST", "/auth/password/change", {"old_password": PASSWORD, "new_password": "other-long-pw"}),
        ("client", "PATCH", "/users/me", {"first_name": "Ann", "email": "ann@example.com"}),
        ("client", "POST", "/users/me/invite", {"code": "ABCDEFGH"}),
        (
            "admin",
            "PATCH",
            f"/users/{world.id('client')}",
            {"category": "BASE", "is_active": True, "organizations": [world.org("a")]},
        ),
        ("manager_a", "POST", "/organizations", {"name": "Charlie Tow", "description": "d"}),
        ("manager_a", "PATCH", f"/organizations/{world.org('a')}", {"name": "Alpha Towing", "description": "d"}),
        ("admin", "POST", "/vehicle-types", {"name": "Bus", "base_price": 10.0, "price_per_km": 1.0}),
        (
            "manager_a",
            "POST",
            "/vehicles",
            {"plate": "A1", "model": "M", "capacity_kg": 10, "organization": world.org("a"), "driver_id": None},
        ),
        ("manager_a", "PATCH", f"/vehicles/{world.id('truck')}", {"model": "M2", "status": "available"}),
        ("client", "POST", "/orders", order_body(world.vehicles["type"], organization=world.org("a"))),
        ("manager_a", "POST", f"/orders/{order}/assign", {"vehicle_id": world.id("truck")}),
        ("manager_a", "POST", f"/orders/{order}/status", {"status": "cancelled", "reason": "r"}),
        ("manager_a", "POST", f"/orders/{done}/payments", {"amount": 10.5, "method": "card"}),
        ("client", "POST", f"/orders/{done}/rating", {"score": 5, "comment": "ok"}),
        ("driver", "POST", "/waybills", {"vehicle_id": world.id("truck"), "odometer_start": 1.0, "route_notes": "n"}),
        ("client", "POST", "/support/tickets", {"subject": "s", "description": "d", "order_id": order}),
    ]


def field_paths(body: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a body, nested ones included."""
    items = body.items() if isinstance(body, dict) else enumerate(body) if isinstance(body, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from field_paths(value, (*prefix, key))


def replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of the body with the value at `path` replaced."""
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def objects_in(body: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of the body itself and of every object inside it."""
    if isinstance(body, dict):
        yield prefix
    for path in field_paths(body, prefix):
        value = body
        for key in path:
            value = value[key]
        if isinstance(value, dict):
            yield path


def with_keys(body: dict[str, Any], path: tuple[Any, ...], keys: dict[str, Any]) -> dict[str, Any]:
    """A copy of the body with extra keys in the object at `path`."""
    out = copy.deepcopy(body)
    target = out
    for key in path:
        target = target[key]
    target.update(copy.deepcopy(keys))
    return out


def hostile_keys_in(document: Any, where: str = "") -> list[str]:
    """Where a stored document has a key starting with `$` or holding a `.`."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if str(key).startswith("$") or "." in str(key):
                found.append(f"{where}.{key}")
            found += hostile_keys_in(value, f"{where}.{key}")
    elif isinstance(document, list):
        for n, value in enumerate(document):
            found += hostile_keys_in(value, f"{where}[{n}]")
    return found


def assert_refused(answer: Any, what: str) -> None:
    assert 400 <= answer.status < 500, f"{what}: {answer.status} {answer.body[:300]!r}"
    assert b"access_token" not in answer.body, what


@pytest.mark.parametrize("field", ["login", "password"])
@pytest.mark.gen_test(timeout=60)
async def test_operator_objects_never_log_anyone_in(api: Api, world: World, field: str) -> None:
    admin = world.users["admin"]
    for value in [*OPERATORS, None, 1, True, ["admin"]]:
        body = {"login": admin["username"], "password": PASSWORD, field: value}
        answer = await api.post(f"{API}/auth/login", body)
        assert_refused(answer, f"login with {field}={value!r}")
        assert answer.status == 422 and field in answer.json["error"]["details"]
    both = await api.post(f"{API}/auth/login", {"login": {"$ne": None}, "password": {"$ne": None}})
    assert_refused(both, "login and password both operators")


@pytest.mark.gen_test(timeout=60)
async def test_operator_like_text_is_only_text_at_log_in(api: Api, world: World) -> None:
    for login in ['{"$ne": null}', "$where", "' || '1'=='1", "admin' --", ".*", "^.*$", "a.b"]:
        answer = await api.post(f"{API}/auth/login", {"login": login, "password": '{"$ne": null}'})
        assert answer.status == 401 and answer.error_code == "invalid_credentials", login
    # a regex in the login never matches: logins are compared as they are, in lower case
    pattern = world.users["admin"]["username"][:4] + ".*"
    assert (await api.post(f"{API}/auth/login", {"login": pattern, "password": PASSWORD})).status == 401


@pytest.mark.gen_test(timeout=120)
async def test_operators_in_every_json_field_are_refused(api: Api, world: World, sync_db: Any) -> None:
    tried = 0
    for who, method, path, body in bodies(world):
        token = world.tokens.get(who, "")
        for field in list(field_paths(body)):
            for value in OPERATORS:
                answer = await api.request(method, API + path, replaced(body, field, value), token=token)
                assert_refused(answer, f"{method} {path} with {'.'.join(map(str, field))}={value!r}")
                tried += 1
        for where in list(objects_in(body)):
            for keys in HOSTILE_KEYS:
                answer = await api.request(method, API + path, with_keys(body, where, keys), token=token)
                assert_refused(answer, f"{method} {path} with keys {list(keys)} in {where or 'the body'}")
                tried += 1
    assert tried > 500
    assert not stored_hostile_keys(sync_db)


@pytest.mark.gen_test(timeout=60)
async def test_profile_changes_never_reach_the_update_operators(api: Api, world: World, sync_db: Any) -> None:
    client = world.users["client"]
    for body in (
        {"$set": {"category": "ADMIN"}},
        {"first_name": "A", "$set": {"is_active": False}},
        {"first_name": {"$set": {"category": "ADMIN"}}},
        {"category": "ADMIN"},
        {"organizations.0": world.org("a")},
        {"$unset": {"password_hash": ""}},
    ):
        answer = await api.patch(f"{API}/users/me", body, token=world.tokens["client"])
        assert answer.status == 422, body
    stored = sync_db.users.find_one({"_id": client["_id"]})
    assert stored["category"] == "BASE" and stored["is_active"] and stored["password_hash"]
    assert stored["organizations"] == []


LISTS = [
    ("admin", "/users", ["category", "organization", "q"]),
    ("manager_a", "/users", ["category", "organization", "q"]),
    ("manager_a", "/orders", ["status", "driver", "organization", "client", "from", "to"]),
    ("client", "/orders", ["status", "driver", "organization", "client", "from", "to"]),
    ("manager_a", "/vehicles", ["status", "organization"]),
    ("driver", "/waybills", ["status", "driver_id", "vehicle_id", "date_from", "date_to"]),
    ("client", "/support/tickets", ["status", "assignee_id", "order_id"]),
    ("client", "/notifications", ["unread"]),
]


@pytest.mark.gen_test(timeout=120)
async def test_operators_in_query_parameters_never_widen_a_list(api: Api, world: World) -> None:
    tried = 0
    for who, path, names in LISTS:
        token = world.tokens[who]
        baseline = await api.get(f"{API}{path}?limit=200", token=token)
        assert baseline.status == 200
        visible = {item["id"] for item in baseline.json["items"]}
        queries = [
            query
            for name in [*names, "limit", "offset"]
            for value in QUERY_VALUES
            for query in (
                f"{name}={quote(value)}",
                f"{quote(name + '[$ne]')}={quote(value)}",
                f"{name}={quote(value)}&{name}={quote(value)}",
            )
        ]
        # Several at once over the keep-alive pool, as a busy integration sends them: the server's
        # database round trips overlap instead of queueing one behind another.
        for start in range(0, len(queries), CONCURRENT):
            chunk = queries[start : start + CONCURRENT]
            answers = await asyncio.gather(*(api.get(f"{API}{path}?{query}", token=token) for query in chunk))
            for query, answer in zip(chunk, answers, strict=True):
                assert answer.status in (200, 422), (path, query, answer.status, answer.body[:300])
                if answer.status == 200:
                    found = {item["id"] for item in answer.json["items"]}
                    assert found <= visible, (path, query)
                tried += 1
    assert tried > 500


@pytest.mark.gen_test(timeout=60)
async def test_search_text_is_escaped_and_cannot_stall_the_server(api: Api, world: World) -> None:
    token = world.tokens["admin"]
    everyone = (await api.get(f"{API}/users", token=token)).json["total"]
    assert everyone >= 5
    for q in (".*", "^", "[a-z]", "\\", "(", "a|b"):
        assert (await api.get(f"{API}/users?q={quote(q)}", token=token)).json["total"] == 0, q
    started = time.monotonic()
    answer = await api.get(f"{API}/users?q={quote('(a+)+$' + 'a' * 60)}", token=token)
    assert answer.status in (200, 422)
    assert time.monotonic() - started < 10, "a catastrophic pattern must not be run as a regex"


@pytest.mark.gen_test(timeout=60)
async def test_hostile_text_values_are_stored_as_text(api: Api, world: World, sync_db: Any) -> None:
    """`$` and `.` inside values are fine: they are data, kept as they were sent."""
    text = '{"$where": "sleep(1000)"} $set a.b'
    created = await api.post(
        f"{API}/support/tickets", {"subject": text, "description": text}, token=world.tokens["client"]
    )
    assert created.status == 201 and created.json["subject"] == text
    body = order_body(world.vehicles["type"], organization=world.org("a"), notes=text)
    body["pickup"] = place({"lat": 55.75, "lon": 37.61}, text)
    order = await api.post(f"{API}/orders", body, token=world.tokens["client"])
    assert order.status == 201 and order.json["notes"] == text and order.json["pickup"]["address"] == text
    assert not stored_hostile_keys(sync_db)


def stored_hostile_keys(db: Any) -> list[str]:
    """Every stored key, in every collection, that starts with `$` or holds a `.`."""
    found = []
    for name in db.list_collection_names():
        for document in db[name].find():
            found += hostile_keys_in(document, name)
    return found
