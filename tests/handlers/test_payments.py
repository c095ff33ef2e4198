"""Payments of orders: who records them, validation, idempotent retries, listing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fleet_fixtures import API, insert_order, make_world
from tests.helpers import Api


@pytest.mark.gen_test(timeout=60)
async def test_client_manager_and_admin_record_payments(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "completed", "a", vehicle="truck")
    path = f"{API}/orders/{order['_id']}/payments"
    paid = await api.post(path, {"amount": 2500.5, "method": "card"}, token=world.tokens["client"])
    assert paid.status == 201
    assert {k: paid.json[k] for k in ("order_id", "amount", "method", "status", "created_by")} == {
        "order_id": str(order["_id"]), "amount": 2500.5, "method": "card", "status": "recorded",
        "created_by": world.id("client")}
    assert paid.json["created_at"].endswith("Z")
    assert (await api.post(path, {"amount": 100, "method": "cash"}, token=world.tokens["manager_a"])).status == 201
    assert (await api.post(path, {"amount": 50, "method": "invoice"}, token=world.tokens["admin"])).status == 201
    listed = await api.get(path, token=world.tokens["client"])
    assert listed.status == 200 and listed.json["total"] == 3
    assert [p["amount"] for p in listed.json["items"]] == [2500.5, 100, 50], "oldest first"
    page = await api.get(f"{path}?limit=1&offset=2", token=world.tokens["manager_a"])
    assert [p["method"] for p in page.json["items"]] == ["invoice"] and page.json["total"] == 3


@pytest.mark.gen_test(timeout=60)
async def test_payments_are_scoped(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "in_progress", "a", vehicle="truck")
    path = f"{API}/orders/{order['_id']}/payments"
    body = {"amount": 10, "method": "cash"}
    for name in ("other_client", "manager_b"):
        assert (await api.post(path, body, token=world.tokens[name])).status == 404, name
        assert (await api.get(path, token=world.tokens[name])).status == 404, name
    assert (await api.post(path, body, token=world.tokens["driver"])).status == 403
    assert (await api.get(path, token=world.tokens["driver"])).status == 403
    cancelled = await insert_order(world, "cancelled", "a")
    refused = await api.post(f"{API}/orders/{cancelled['_id']}/payments", body, token=world.tokens["client"])
    assert refused.status == 409 and refused.error_code == "order_cancelled"


@pytest.mark.parametrize("body", [{"amount": 0, "method": "cash"}, {"amount": -5, "method": "card"},
                                  {"amount": 10.005, "method": "card"}, {"amount": "ten", "method": "card"},
                                  {"amount": 10, "method": "bitcoin"}, {"method": "cash"}, {"amount": 10},
                                  {"amount": 1e12, "method": "cash"}])
@pytest.mark.gen_test(timeout=60)
async def test_payment_input_is_validated(app: Any, api: Api, body: dict[str, Any]) -> None:
    world = await make_world(app)
    order = await insert_order(world, "new", "a")
    answer = await api.post(f"{API}/orders/{order['_id']}/payments", body, token=world.tokens["client"])
    assert answer.status == 422
    assert set(answer.json["error"]["details"]) <= {"amount", "method"}


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_payment_is_recorded_once(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    order = await insert_order(world, "new", "a")
    path = f"{API}/orders/{order['_id']}/payments"
    body = {"amount": 1200, "method": "card"}
    key = {"Idempotency-Key": "pay-7f3a"}
    first = await api.post(path, body, headers=key, token=world.tokens["client"])
    again = await api.post(path, body, headers=key, token=world.tokens["client"])
    assert first.status == again.status == 201 and again.json == first.json
    racing = await asyncio.gather(*(api.post(path, body, headers={"Idempotency-Key": "pay-double-click"},
                                             token=world.tokens["client"]) for _ in range(4)))
    assert {a.status for a in racing} == {201} and len({a.json["id"] for a in racing}) == 1
    assert sync_db["payments"].count_documents({}) == 2
    other = await api.post(path, {"amount": 1300, "method": "card"}, headers=key, token=world.tokens["client"])
    assert other.status == 409 and other.error_code == "idempotency_key_reused"
    other_order = await insert_order(world, "new", "a")
    elsewhere = await api.post(f"{API}/orders/{other_order['_id']}/payments", body, headers=key,
                               token=world.tokens["client"])
    assert elsewhere.status == 409, "a key belongs to one request, path included"
    without_key = [await api.post(path, body, token=world.tokens["client"]) for _ in range(2)]
    assert without_key[0].json["id"] != without_key[1].json["id"], "without a key every request records"
    assert (await api.get(path, token=world.tokens["client"])).json["total"] == 4
