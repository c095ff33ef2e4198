"""Milestone messages to the customer (SPEC section 11), sent by the session's real worker: SMS to a
phone, else email; once per milestone per order; in the customer's language; with the tracking link."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core import jsonutil
from dispatch.core.events import Event
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.core.vocabulary import WebhookEvent
from models.common import parse_id
from models.milestones import new_message
from tests.support.factories import login, make_user
from tests.support.fleet_fixtures import CENTER, make_vehicle_type, order_body
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url


def sms_with(outbox: Path, message_id: str) -> list[dict[str, Any]]:
    """The SMS the worker wrote under this message id."""
    folder = outbox / "sms"
    found = [jsonutil.loads(path.read_bytes()) for path in folder.glob("*.json")] if folder.exists() else []
    return [message for message in found if message.get("id") == message_id]


def emails_with(outbox: Path, order_id: str) -> list[Any]:
    """The email the worker wrote about this order (its Message-ID names it)."""
    folder = outbox / "email"
    found = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in folder.glob("*.eml")]
    return [message for message in found if order_id in str(message["Message-ID"])]


async def until(condition: Any, what: str, timeout: float = 30) -> None:
    for _ in range(int(timeout * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def move(api: Api, order_id: str, token: str, *statuses: str) -> dict[str, Any]:
    for status in statuses:
        answer = await api.post(f"/api/v1/orders/{order_id}/status", {"status": status}, token=token)
        assert answer.status == 200, answer.json
    return answer.json


async def arriving(app: Any, order: dict[str, Any], target: str = "pickup") -> None:
    """The `order.arriving` event as the GPS watch raises it, published on the bus directly."""
    await app.settings["services"].events.publish(
        Event(
            "arriving",
            (f"order:{order['id']}",),
            {"order": order, "target": target, "at": isoformat(utcnow())},
            topic=WebhookEvent.ORDER_ARRIVING,
            organization=order["organization"],
        )
    )


@pytest.mark.gen_test(timeout=90)
async def test_a_client_with_a_phone_gets_one_sms_per_milestone_in_russian(
    app: Any, api: Api, services: Any, base_url: str
) -> None:
    team = await fleet(app, api)
    crew = team["drivers"][0]
    phone = f"+7916{random.randrange(10**7):07d}"
    client = await make_user(app, "BASE", phone=phone)
    await app.settings["services"].identity.users.update(client["_id"], {"phone_verified": True, "language": "ru"})
    token = await login(app, client)
    body = order_body(await make_vehicle_type(app), organization=str(team["org"]["_id"]))
    order = (await api.post("/api/v1/orders", body, token=token)).json
    oid = order["id"]
    assign = {"vehicle_id": crew["vehicle"]["id"]}
    assert (await api.post(f"/api/v1/orders/{oid}/assign", assign, token=team["manager_token"])).status == 200
    # declined and assigned again: still one `assigned` message
    await move(api, oid, crew["token"], "declined")
    assert (await api.post(f"/api/v1/orders/{oid}/assign", assign, token=team["manager_token"])).status == 200
    await move(api, oid, crew["token"], "accepted", "en_route")
    # The truck comes within the arrival radius of the pickup (the GPS watch raises `order.arriving`)
    truck = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await truck.recv_type("ready")
    near = {"lat": CENTER["lat"] + 0.0005, "lon": CENTER["lon"]}  # about 55 m away
    for seq in (1, 2):  # a point in the radius, then another: still one `arriving`
        await truck.send({"type": "location", **point(seq, **near)})
        await truck.recv_type("ack", seq=seq)
    await until(lambda: sms_with(services.outbox_dir, f"{oid}:arriving"), "the arriving SMS")
    in_progress = await move(api, oid, crew["token"], "arrived", "in_progress")
    await arriving(app, in_progress, target="dropoff")  # at the drop-off: not a milestone of the customer's
    await move(api, oid, crew["token"], "completed")

    outbox = services.outbox_dir
    for milestone in ("assigned", "arriving", "completed"):
        await until(lambda m=milestone: sms_with(outbox, f"{oid}:{m}"), f"the {milestone} SMS")
    await asyncio.sleep(0.5)  # a repeat, if any, would have arrived by now
    sent = {m: sms_with(outbox, f"{oid}:{m}") for m in ("assigned", "arriving", "completed")}
    assert all(len(messages) == 1 and messages[0]["to"] == phone for messages in sent.values()), sent
    assigned = sent["assigned"][0]["text"]
    assert "Эвакуатор выехал" in assigned and crew["vehicle"]["plate"] in assigned
    link = assigned.rsplit(" ", 1)[1]
    assert link.startswith("http://dispatch.test/t/")
    view = await api.get("/api/v1/track/" + link.rsplit("/", 1)[1], token="")
    assert view.status == 200 and view.json["order"]["id"] == oid  # the link works (2 h after the end)
    assert "подъезжает" in sent["arriving"][0]["text"]
    assert f"{order['price_estimate']:.2f}" in sent["completed"][0]["text"]
    stored = app.settings["services"].db["customer_messages"]
    assert await stored.count_documents({"order_id": parse_id(oid), "status": "sent"}) == 3


@pytest.mark.gen_test(timeout=90)
async def test_a_customer_without_a_phone_gets_email_in_english(app: Any, api: Api, services: Any) -> None:
    team = await fleet(app, api)
    crew = team["drivers"][0]
    body = order_body(await make_vehicle_type(app), organization=str(team["org"]["_id"]))
    body["customer"] = {"name": "Jane Roadside", "email": "jane.roadside@example.com"}
    created = await api.post("/api/v1/orders", body, token=team["manager_token"])
    assert created.status == 201, created.json
    oid = created.json["id"]
    assign = {"vehicle_id": crew["vehicle"]["id"]}
    assert (await api.post(f"/api/v1/orders/{oid}/assign", assign, token=team["manager_token"])).status == 200
    await until(lambda: emails_with(services.outbox_dir, oid), "the assigned email")
    (message,) = emails_with(services.outbox_dir, oid)
    assert message["To"] == "jane.roadside@example.com"
    assert message["Subject"] == "Your tow truck is on its way"
    text = message.get_content()
    assert crew["vehicle"]["plate"] in text and "http://dispatch.test/t/" in text


@pytest.mark.gen_test(timeout=60)
async def test_the_sweep_sends_a_message_whose_task_was_lost(app: Any, services: Any) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    lost = new_message(ObjectId(), "completed", "sms", "+79160000001", "", "Lost and found", "en", long_ago)
    desk = app.settings["services"].milestones
    await desk.messages.collection.insert_one(lost)  # recorded; its task never sent
    assert await desk.sweep() == 1
    await until(lambda: sms_with(services.outbox_dir, lost["_id"]), "the swept message")
    assert sms_with(services.outbox_dir, lost["_id"])[0]["text"] == "Lost and found"
