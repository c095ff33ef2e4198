"""Ratings: the client rates the driver of a completed order once; the driver's profile shows the average."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.fleet_fixtures import API, insert_order, make_world
from tests.support.helpers import Api


@pytest.mark.gen_test(timeout=60)
async def test_client_rates_a_completed_order_once(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "completed", "a", vehicle="truck")
    path = f"{API}/orders/{order['_id']}/rating"
    rated = await api.post(path, {"score": 4, "comment": "Fast and careful"}, token=world.tokens["client"])
    assert rated.status == 201
    assert {k: rated.json[k] for k in ("order_id", "driver_id", "client_id", "score", "comment")} == {
        "order_id": str(order["_id"]),
        "driver_id": world.id("driver"),
        "client_id": world.id("client"),
        "score": 4,
        "comment": "Fast and careful",
    }
    twice = await api.post(path, {"score": 5}, token=world.tokens["client"])
    assert twice.status == 409 and twice.error_code == "already_rated"

    profile = (await api.get(f"{API}/users/me", token=world.tokens["driver"])).json
    assert profile["rating"] == 4 and profile["rating_count"] == 1
    second = await insert_order(world, "completed", "a", vehicle="truck")
    again = await api.post(f"{API}/orders/{second['_id']}/rating", {"score": 5}, token=world.tokens["client"])
    assert again.status == 201
    profile = (await api.get(f"{API}/users/me", token=world.tokens["driver"])).json
    assert profile["rating"] == 4.5 and profile["rating_count"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_only_the_client_and_only_after_completion(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    for status in ("new", "assigned", "in_progress", "cancelled"):
        order = await insert_order(world, status, "a", vehicle=None if status == "new" else "truck")
        answer = await api.post(f"{API}/orders/{order['_id']}/rating", {"score": 5}, token=world.tokens["client"])
        assert answer.status == 409 and answer.error_code == "order_not_completed", status
    done = await insert_order(world, "completed", "a", vehicle="truck")
    path = f"{API}/orders/{done['_id']}/rating"
    assert (await api.post(path, {"score": 5}, token=world.tokens["other_client"])).status == 404
    for name in ("driver", "manager_a", "admin"):
        assert (await api.post(path, {"score": 5}, token=world.tokens[name])).status == 403, name
    for body in ({"score": 0}, {"score": 6}, {"score": 4.5}, {"score": "5"}, {}, {"score": 3, "comment": "x" * 2001}):
        assert (await api.post(path, body, token=world.tokens["client"])).status == 422, body


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_ratings_of_one_driver_all_count(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    scores = [5, 4, 3, 5, 1]
    clients = [f"c{n}" for n in range(len(scores))]
    orders = []
    for name in clients:
        await world.add_user(name, "BASE")
        orders.append(await insert_order(world, "completed", "a", client=name, vehicle="truck"))
    answers = await asyncio.gather(
        *(
            api.post(f"{API}/orders/{order['_id']}/rating", {"score": score}, token=world.tokens[name])
            for order, score, name in zip(orders, scores, clients, strict=False)
        )
    )
    assert [a.status for a in answers] == [201] * len(scores)
    profile = (await api.get(f"{API}/users/{world.id('driver')}", token=world.tokens["manager_a"])).json
    assert profile["rating_count"] == 5 and profile["rating"] == round(sum(scores) / 5, 2)
