"""Payments of orders: recorded by the fleet on completed orders, never above the price, read by clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.timeutil import utcnow
from tests.support.fleet_fixtures import API, insert_order, make_world
from tests.support.helpers import Api


@pytest.mark.gen_test(timeout=60)
async def test_the_fleet_records_payments_and_clients_read_them(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "completed", "a", vehicle="truck")
    path = f"{API}/orders/{order['_id']}/payments"
    refused = await api.post(path, {"amount": 0.01, "method": "card"}, token=world.tokens["client"])
    assert refused.status == 403, "a client does not say what they paid"
    paid = await api.post(path, {"amount": 2000.5, "method": "card"}, token=world.tokens["driver"])
    assert paid.status == 201
    assert {k: paid.json[k] for k in ("order_id", "amount", "method", "status", "created_by")} == {
        "order_id": str(order["_id"]),
        "amount": 2000.5,
        "method": "card",
        "status": "recorded",
        "created_by": world.id("driver"),
    }
    assert paid.json["created_at"].endswith("Z")
    invoice = await api.post(path, {"amount": 10, "method": "invoice"}, token=world.tokens["driver"])
    assert invoice.status == 403 and invoice.error_code == "method_forbidden", "drivers take cash or card"
    assert (await api.post(path, {"amount": 100, "method": "cash"}, token=world.tokens["manager_a"])).status == 201
    assert (await api.post(path, {"amount": 50, "method": "invoice"}, token=world.tokens["admin"])).status == 201
    listed = await api.get(path, token=world.tokens["client"])
    assert listed.status == 200 and listed.json["total"] == 3
    assert [p["amount"] for p in listed.json["items"]] == [2000.5, 100, 50], "oldest first"
    assert (await api.get(path, token=world.tokens["driver"])).json["total"] == 3
    page = await api.get(f"{path}?limit=1&offset=2", token=world.tokens["manager_a"])
    assert [p["method"] for p in page.json["items"]] == ["invoice"] and page.json["total"] == 3


@pytest.mark.gen_test(timeout=60)
async def test_payments_are_scoped_and_only_for_completed_orders(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    await world.add_vehicle("truck_b", "b", "driver_b")
    order = await insert_order(world, "completed", "a", vehicle="truck")
    path = f"{API}/orders/{order['_id']}/payments"
    body = {"amount": 10, "method": "cash"}
    for name in ("manager_b", "driver_b"):
        assert (await api.post(path, body, token=world.tokens[name])).status == 404, name
        assert (await api.get(path, token=world.tokens[name])).status == 404, name
    assert (await api.get(path, token=world.tokens["other_client"])).status == 404
    for status in ("new", "assigned", "in_progress", "cancelled"):
        early = await insert_order(world, status, "a", vehicle="truck" if status != "new" else None)
        for name in ("manager_a", "admin"):
            refused = await api.post(f"{API}/orders/{early['_id']}/payments", body, token=world.tokens[name])
            assert refused.status == 409 and refused.error_code == "order_not_completed", (status, name)
    assert (await api.get(path, token=world.tokens["client"])).json["total"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_payments_never_exceed_the_price(app: Any, api: Api) -> None:
    world = await make_world(app)
    order = await insert_order(world, "completed", "a")  # priced 2500.00
    path = f"{API}/orders/{order['_id']}/payments"
    pay = {"token": world.tokens["manager_a"]}
    assert (await api.post(path, {"amount": 2000, "method": "card"}, **pay)).status == 201
    over = await api.post(path, {"amount": 500.01, "method": "cash"}, **pay)
    assert over.status == 422 and "amount" in over.json["error"]["details"]
    assert (await api.post(path, {"amount": 500, "method": "cash"}, **pay)).status == 201
    assert (await api.post(path, {"amount": 0.01, "method": "cash"}, **pay)).status == 422
    assert sum(p["amount"] for p in (await api.get(path, **pay)).json["items"]) == 2500


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_payments_together_over_the_price_are_not_all_recorded(app: Any, api: Api) -> None:
    world = await make_world(app)
    pay = {"token": world.tokens["manager_a"]}
    pair = await insert_order(world, "completed", "a")
    path = f"{API}/orders/{pair['_id']}/payments"
    answers = await asyncio.gather(*(api.post(path, {"amount": 1500, "method": "card"}, **pay) for _ in range(2)))
    assert sorted(a.status for a in answers) == [201, 422]
    many = await insert_order(world, "completed", "a")
    path = f"{API}/orders/{many['_id']}/payments"
    answers = await asyncio.gather(*(api.post(path, {"amount": 400, "method": "cash"}, **pay) for _ in range(10)))
    assert sorted(a.status for a in answers) == [201] * 6 + [422] * 4
    listed = (await api.get(path, **pay)).json
    assert listed["total"] == 6 and sum(p["amount"] for p in listed["items"]) == 2400


@pytest.mark.gen_test(timeout=60)
async def test_payments_recorded_before_the_running_total_count(app: Any, api: Api) -> None:
    world = await make_world(app)
    order = await insert_order(world, "completed", "a")
    await (
        app.settings["services"]
        .db["payments"]
        .insert_many(
            [
                {
                    "order_id": order["_id"],
                    "amount": amount,
                    "method": "card",
                    "status": "recorded",
                    "created_by": ObjectId(),
                    "created_at": utcnow(),
                }
                for amount in (2000.0, 400.0)
            ]
        )
    )
    path = f"{API}/orders/{order['_id']}/payments"
    assert (await api.post(path, {"amount": 100.01, "method": "cash"}, token=world.tokens["admin"])).status == 422
    assert (await api.post(path, {"amount": 100, "method": "cash"}, token=world.tokens["admin"])).status == 201


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "method": "cash"},
        {"amount": -5, "method": "card"},
        {"amount": 10.005, "method": "card"},
        {"amount": "ten", "method": "card"},
        {"amount": 10, "method": "bitcoin"},
        {"method": "cash"},
        {"amount": 10},
        {"amount": 1e12, "method": "cash"},
    ],
)
@pytest.mark.gen_test(timeout=60)
async def test_payment_input_is_validated(app: Any, api: Api, body: dict[str, Any]) -> None:
    world = await make_world(app)
    order = await insert_order(world, "completed", "a")
    answer = await api.post(f"{API}/orders/{order['_id']}/payments", body, token=world.tokens["manager_a"])
    assert answer.status == 422
    assert set(answer.json["error"]["details"]) <= {"amount", "method"}


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_payment_is_recorded_once(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    order = await insert_order(world, "completed", "a")
    path = f"{API}/orders/{order['_id']}/payments"
    body = {"amount": 120, "method": "card"}
    key = {"Idempotency-Key": "pay-7f3a"}
    token = world.tokens["manager_a"]
    first = await api.post(path, body, headers=key, token=token)
    again = await api.post(path, body, headers=key, token=token)
    assert first.status == again.status == 201 and again.json == first.json
    racing = await asyncio.gather(
        *(api.post(path, body, headers={"Idempotency-Key": "pay-double-click"}, token=token) for _ in range(4))
    )
    assert {a.status for a in racing} == {201} and len({a.json["id"] for a in racing}) == 1
    assert sync_db["payments"].count_documents({}) == 2
    other = await api.post(path, {"amount": 130, "method": "card"}, headers=key, token=token)
    assert other.status == 409 and other.error_code == "idempotency_key_reused"
    other_order = await insert_order(world, "completed", "a")
    elsewhere = await api.post(f"{API}/orders/{other_order['_id']}/payments", body, headers=key, token=token)
    assert elsewhere.status == 409, "a key belongs to one request, path included"
    without_key = [await api.post(path, body, token=token) for _ in range(2)]
    assert without_key[0].json["id"] != without_key[1].json["id"], "without a key every request records"
    assert (await api.get(path, token=world.tokens["client"])).json["total"] == 4
