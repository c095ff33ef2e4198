"""Notifications: order events notify the people concerned; each reads and marks only their own."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.events import Event
from models.vehicles import Vehicles, VehicleTypes
from tests.support.factories import login, make_org, make_user
from tests.support.helpers import Api

URL = "/api/v1/notifications"


def order_event(kind: str, order: dict[str, Any], actor: Any, **extra: Any) -> Event:
    """An order event shaped as the order code publishes it."""
    body = {
        "id": str(order["id"]),
        "client_id": str(order["client_id"]),
        "driver_id": str(order["driver_id"]) if order.get("driver_id") else None,
        "organization": str(order["organization"]),
        "status": order["status"],
        "pickup": {"lat": 55.75, "lon": 37.62, "address": "Tverskaya 1"},
    }
    return Event(
        "order",
        (f"order:{order['id']}", f"fleet:{order['organization']}"),
        {"event": kind, "order": body, "actor_id": str(actor["_id"]) if actor else None, **extra},
    )


def collect(app: Any) -> list[Event]:
    seen: list[Event] = []

    async def listener(event: Event) -> None:
        seen.append(event)

    app.settings["services"].events.listen(listener)
    return seen


async def people(app: Any) -> dict[str, Any]:
    org, elsewhere = await make_org(app), await make_org(app)
    found = {
        "org": org,
        "client": await make_user(app, "BASE"),
        "driver": await make_user(app, "DRIVER", organizations=[org["_id"]]),
        "manager": await make_user(app, "MANAGER", organizations=[org["_id"]]),
        "manager2": await make_user(app, "MANAGER", organizations=[org["_id"]]),
        "stranger": await make_user(app, "MANAGER", organizations=[elsewhere["_id"]]),
    }
    found["tokens"] = {
        name: await login(app, found[name]) for name in ("client", "driver", "manager", "manager2", "stranger")
    }
    return found


async def inbox(api: Api, token: str, query: str = "") -> dict[str, Any]:
    answer = await api.get(URL + query, token=token)
    assert answer.status == 200, answer.json
    return answer.json


@pytest.mark.gen_test(timeout=60)
async def test_order_events_notify_the_people_concerned_and_not_the_actor(app: Any, api: Api) -> None:
    p = await people(app)
    bus, seen = app.settings["services"].events, collect(app)
    order = {
        "id": ObjectId(),
        "client_id": p["client"]["_id"],
        "driver_id": None,
        "organization": p["org"]["_id"],
        "status": "new",
    }
    await bus.publish(order_event("created", order, p["client"]))
    for name in ("manager", "manager2"):
        box = await inbox(api, p["tokens"][name])
        assert box["total"] == 1 and box["unread"] == 1
        note = box["items"][0]
        assert note["type"] == "order" and note["event"] == "created" and note["order_id"] == str(order["id"])
        assert note["read"] is False and note["read_at"] is None and note["created_at"].endswith("Z")
        assert "Tverskaya 1" in note["body"]
    for name in ("client", "driver", "stranger"):  # the client created it; the others have nothing to do with it
        assert (await inbox(api, p["tokens"][name]))["total"] == 0

    await bus.publish(
        order_event(
            "assigned",
            {**order, "driver_id": p["driver"]["_id"], "status": "assigned"},
            p["manager"],
            **{"from": "new", "to": "assigned"},
        )
    )
    assert [n["event"] for n in (await inbox(api, p["tokens"]["client"]))["items"]] == ["assigned"]
    driver_box = await inbox(api, p["tokens"]["driver"])
    assert driver_box["items"][0]["title"] == "New assignment"
    assert (await inbox(api, p["tokens"]["manager"]))["total"] == 1  # the actor is not told about their own act

    await bus.publish(
        order_event(
            "status_changed",
            {**order, "driver_id": p["driver"]["_id"], "status": "en_route"},
            p["driver"],
            **{"from": "accepted", "to": "en_route"},
        )
    )
    client_box = await inbox(api, p["tokens"]["client"])
    assert [n["event"] for n in client_box["items"]] == ["status_changed", "assigned"]  # newest first
    assert client_box["items"][0]["data"] == {"status": "en_route", "from": "accepted", "to": "en_route"}
    assert client_box["items"][0]["title"] == "The truck is on its way"
    assert (await inbox(api, p["tokens"]["driver"]))["total"] == 1
    assert (await inbox(api, p["tokens"]["manager2"]))["total"] == 1

    pushed = [e for e in seen if e.type == "notification"]
    assert len(pushed) == 5
    assert {e.channels[0] for e in pushed} == {
        f"user:{p[n]['_id']}" for n in ("manager", "manager2", "client", "driver")
    }
    assert all(e.data["notification"]["id"] for e in pushed)
    assert [e.type for e in seen].count("order") == 3  # notifying never publishes order events


@pytest.mark.gen_test(timeout=60)
async def test_a_declined_order_tells_the_client_and_its_managers(app: Any, api: Api) -> None:
    p = await people(app)
    order = {
        "id": ObjectId(),
        "client_id": p["client"]["_id"],
        "driver_id": None,
        "organization": p["org"]["_id"],
        "status": "new",
    }
    await app.settings["services"].events.publish(
        order_event("status_changed", order, p["driver"], **{"from": "assigned", "to": "declined"})
    )
    assert (await inbox(api, p["tokens"]["client"]))["items"][0]["title"] == "Your order is waiting for a truck again"
    assert (await inbox(api, p["tokens"]["manager"]))["items"][0]["title"] == "A driver declined an order"
    assert (await inbox(api, p["tokens"]["driver"]))["total"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_other_events_create_no_notifications(app: Any, api: Api, sync_db: Any) -> None:
    p = await people(app)
    bus = app.settings["services"].events
    await bus.publish(
        Event("waybill", (f"fleet:{p['org']['_id']}",), {"waybill": {}, "from": "open", "to": "on_route"})
    )
    await bus.publish(Event("order", (), {"event": "created"}))  # malformed: no order body
    await bus.publish(Event("order", (), {"event": "weird", "order": {"client_id": str(p["client"]["_id"])}}))
    assert sync_db["notifications"].count_documents({}) == 0


@pytest.mark.gen_test(timeout=60)
async def test_reading_and_marking_are_scoped_to_the_owner(app: Any, api: Api) -> None:
    p = await people(app)
    bus = app.settings["services"].events
    for status in ("accepted", "en_route", "arrived"):
        order = {
            "id": ObjectId(),
            "client_id": p["client"]["_id"],
            "driver_id": p["driver"]["_id"],
            "organization": p["org"]["_id"],
            "status": status,
        }
        await bus.publish(order_event("status_changed", order, None, to=status))
    client, driver = p["tokens"]["client"], p["tokens"]["driver"]
    box = await inbox(api, client)
    assert box["total"] == 3 and box["unread"] == 3
    newest = box["items"][0]

    # nobody reads or marks another's notification: it does not exist for them
    assert (await api.post(f"{URL}/{newest['id']}/read", token=driver)).status == 404
    assert (await api.post(f"{URL}/{ObjectId()}/read", token=client)).status == 404
    assert (await api.post(f"{URL}/bad-id/read", token=client)).error_code == "invalid_id"
    assert newest["id"] not in {n["id"] for n in (await inbox(api, driver))["items"]}

    read = await api.post(f"{URL}/{newest['id']}/read", token=client)
    assert read.status == 200 and read.json["read"] is True and read.json["read_at"].endswith("Z")
    again = await api.post(f"{URL}/{newest['id']}/read", token=client)
    assert again.status == 200 and again.json["read_at"] == read.json["read_at"]
    unread = await inbox(api, client, "?unread=true")
    assert unread["total"] == 2 and unread["unread"] == 2 and newest["id"] not in {n["id"] for n in unread["items"]}
    assert (await inbox(api, client, "?unread=false"))["total"] == 3
    assert (await api.get(URL + "?unread=maybe", token=client)).status == 422
    paged = await inbox(api, client, "?limit=1&offset=1")
    assert paged["total"] == 3 and len(paged["items"]) == 1 and paged["items"][0]["id"] == box["items"][1]["id"]

    assert (await api.post(f"{URL}/read-all", token=client)).json == {"marked": 2}
    assert (await api.post(f"{URL}/read-all", token=client)).json == {"marked": 0}
    assert (await inbox(api, client))["unread"] == 0
    assert (await inbox(api, driver))["unread"] == 3  # the driver's own are untouched
    assert (await api.get(URL)).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_the_order_api_notifies_client_driver_and_managers(app: Any, api: Api) -> None:
    p = await people(app)
    db = app.settings["services"].db
    truck = await Vehicles(db).insert(
        {
            "plate": f"N{ObjectId()}"[-8:],
            "model": "Isuzu Elf",
            "capacity_kg": 3500,
            "organization": p["org"]["_id"],
            "driver_id": p["driver"]["_id"],
            "status": "available",
        }
    )
    car = await VehicleTypes(db).insert({"name": "Sedan", "base_price": 2000.0, "price_per_km": 50.0})
    created = await api.post(
        "/api/v1/orders",
        {
            "organization": str(p["org"]["_id"]),
            "pickup": {"lat": 55.75, "lon": 37.62, "address": "Red Square"},
            "dropoff": {"lat": 55.80, "lon": 37.70, "address": "Service station"},
            "vehicle": {"type_id": str(car["_id"]), "make": "Lada", "model": "Vesta", "plate": "A123BC77"},
        },
        token=p["tokens"]["client"],
    )
    assert created.status == 201, created.json
    order = created.json["id"]
    for name in ("manager", "manager2"):
        note = (await inbox(api, p["tokens"][name]))["items"][0]
        assert (note["event"], note["order_id"], note["title"]) == ("created", order, "New order")
        assert "Red Square" in note["body"]
    assert (await inbox(api, p["tokens"]["client"]))["total"] == 0  # the client placed it themselves

    assigned = await api.post(
        f"/api/v1/orders/{order}/assign", {"vehicle_id": str(truck["_id"])}, token=p["tokens"]["manager"]
    )
    assert assigned.status == 200, assigned.json
    assert (await inbox(api, p["tokens"]["driver"]))["items"][0]["title"] == "New assignment"
    assert (await inbox(api, p["tokens"]["client"]))["items"][0]["title"] == "A truck is assigned"
    assert (await inbox(api, p["tokens"]["manager"]))["total"] == 1

    accepted = await api.post(f"/api/v1/orders/{order}/status", {"status": "accepted"}, token=p["tokens"]["driver"])
    assert accepted.status == 200, accepted.json
    client_box = await inbox(api, p["tokens"]["client"])
    assert [n["title"] for n in client_box["items"]] == ["The driver accepted the order", "A truck is assigned"]
    assert client_box["unread"] == 2
    assert (await inbox(api, p["tokens"]["driver"]))["total"] == 1

    refused = await api.post(f"/api/v1/orders/{order}/status", {"status": "declined"}, token=p["tokens"]["driver"])
    assert refused.status == 409  # an accepted order cannot be declined: nothing new for anyone
    assert (await inbox(api, p["tokens"]["client"]))["total"] == 2

    cancelled = await api.post(f"/api/v1/orders/{order}/status", {"status": "cancelled"}, token=p["tokens"]["client"])
    assert cancelled.status == 200, cancelled.json
    assert (await inbox(api, p["tokens"]["driver"]))["items"][0]["title"] == "Order status: cancelled"
    assert (await inbox(api, p["tokens"]["client"]))["total"] == 2  # the client cancelled it themselves
    assert (await inbox(api, p["tokens"]["stranger"]))["total"] == 0
