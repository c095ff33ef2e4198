"""Waybills: the driver's trip sheet, its one-way statuses, the lock once returned, and who sees what."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.events import Event
from models.vehicles import Vehicles
from tests.support.factories import login, make_org, make_user
from tests.support.helpers import Api

URL = "/api/v1/waybills"
TODAY = datetime.now(UTC).date()
DAY = (TODAY - timedelta(days=3)).isoformat()  # a recent working day
NEXT_DAY = (TODAY - timedelta(days=2)).isoformat()


async def make_vehicle(app: Any, org: dict[str, Any], driver: dict[str, Any] | None) -> dict[str, Any]:
    return await Vehicles(app.settings["services"].db).insert(
        {
            "plate": f"A{uuid.uuid4().hex[:6].upper()}",
            "model": "GAZelle Next",
            "capacity_kg": 3500,
            "organization": org["_id"],
            "driver_id": driver["_id"] if driver else None,
            "status": "available",
        }
    )


async def fleet(app: Any) -> dict[str, Any]:
    """An organization with a driver, their truck, and a manager; tokens for each."""
    org = await make_org(app)
    driver = await make_user(app, "DRIVER", organizations=[org["_id"]])
    manager = await make_user(app, "MANAGER", organizations=[org["_id"]])
    vehicle = await make_vehicle(app, org, driver)
    return {
        "org": org,
        "driver": driver,
        "manager": manager,
        "vehicle": vehicle,
        "driver_token": await login(app, driver),
        "manager_token": await login(app, manager),
    }


async def open_waybill(api: Api, f: dict[str, Any], **fields: Any) -> dict[str, Any]:
    answer = await api.post(URL, {"vehicle_id": str(f["vehicle"]["_id"]), **fields}, token=f["driver_token"])
    assert answer.status == 201, answer.json
    return answer.json


def collect_events(app: Any, kind: str) -> list[Event]:
    seen: list[Event] = []

    async def listener(event: Event) -> None:
        if event.type == kind:
            seen.append(event)

    app.settings["services"].events.listen(listener)
    return seen


@pytest.mark.gen_test(timeout=60)
async def test_driver_fills_a_waybill_through_its_day_and_it_locks_on_return(app: Any, api: Api) -> None:
    f = await fleet(app)
    events = collect_events(app, "waybill")
    sheet = await open_waybill(api, f, date=DAY, odometer_start=120500, fuel_start=60.5)
    assert sheet["status"] == "open" and sheet["driver_id"] == str(f["driver"]["_id"])
    assert sheet["vehicle_id"] == str(f["vehicle"]["_id"]) and sheet["organization"] == str(f["org"]["_id"])
    assert sheet["date"] == DAY and sheet["departed_at"] is None and sheet["order_ids"] == []
    one = f"{URL}/{sheet['id']}"

    noted = await api.patch(one, {"route_notes": "Depot → MKAD km 41"}, token=f["driver_token"])
    assert noted.status == 200 and noted.json["route_notes"] == "Depot → MKAD km 41"
    departed = await api.patch(one, {"status": "on_route"}, token=f["driver_token"])
    assert departed.status == 200 and departed.json["status"] == "on_route"
    assert departed.json["departed_at"].endswith("Z") and departed.json["returned_at"] is None
    back = await api.patch(
        one, {"status": "returned", "odometer_end": 120731.5, "fuel_end": 31}, token=f["driver_token"]
    )
    assert back.status == 200, back.json
    assert back.json["status"] == "returned" and back.json["returned_at"] >= back.json["departed_at"]
    assert back.json["odometer_end"] == 120731.5

    assert [(e.channels, e.data["from"], e.data["to"]) for e in events] == [
        ((f"fleet:{f['org']['_id']}",), "open", "on_route"),
        ((f"fleet:{f['org']['_id']}",), "on_route", "returned"),
    ]
    assert events[-1].data["waybill"]["id"] == sheet["id"] and events[-1].data["waybill"]["status"] == "returned"

    admin_token = await login(app, await make_user(app, "ADMIN"))
    edits = [
        {"route_notes": "rewritten"},
        {"odometer_end": 999999},
        {"fuel_end": 0},
        {"status": "open"},
        {"status": "on_route"},
        {"status": "returned"},
        {"date": NEXT_DAY},
        {},
    ]
    for token in (f["driver_token"], admin_token):
        for edit in edits:
            refused = await api.patch(one, edit, token=token)
            assert refused.status == 409 and refused.error_code == "waybill_locked", (edit, refused.json)
    stored = (await api.get(one, token=f["driver_token"])).json
    assert stored == back.json


@pytest.mark.gen_test(timeout=60)
async def test_status_moves_only_one_step_forward(app: Any, api: Api) -> None:
    f = await fleet(app)
    one = f"{URL}/{(await open_waybill(api, f))['id']}"
    skip = await api.patch(one, {"status": "returned"}, token=f["driver_token"])
    assert skip.status == 409 and skip.error_code == "invalid_transition"
    assert skip.json["error"]["details"] == {"from": "open", "to": "returned", "allowed": ["on_route"]}
    unknown = await api.patch(one, {"status": "parked"}, token=f["driver_token"])
    assert unknown.status == 422 and "status" in unknown.json["error"]["details"]
    today = TODAY.isoformat()
    assert (
        await api.patch(one, {"status": "on_route", "departed_at": f"{today}T06:30:00+03:00"}, token=f["driver_token"])
    ).json["departed_at"] == f"{today}T03:30:00.000Z"
    back = await api.patch(one, {"status": "open"}, token=f["driver_token"])
    assert back.status == 409 and back.error_code == "invalid_transition"
    assert (await api.get(one, token=f["driver_token"])).json["status"] == "on_route"


@pytest.mark.gen_test(timeout=60)
async def test_readings_must_not_run_backwards(app: Any, api: Api) -> None:
    f = await fleet(app)
    bad = await api.post(
        URL,
        {"vehicle_id": str(f["vehicle"]["_id"]), "odometer_start": 100, "odometer_end": 90},
        token=f["driver_token"],
    )
    assert bad.status == 422 and "odometer_end" in bad.json["error"]["details"]
    one = f"{URL}/{(await open_waybill(api, f, odometer_start=100))['id']}"
    # checked against the stored start, not only within one request
    below = await api.patch(one, {"odometer_end": 99.9}, token=f["driver_token"])
    assert below.status == 422 and below.json["error"]["details"] == {
        "odometer_end": ["Must not be less than odometer_start."]
    }
    raised = await api.patch(one, {"odometer_start": 150}, token=f["driver_token"])
    assert raised.status == 200
    assert (await api.patch(one, {"odometer_end": 120}, token=f["driver_token"])).status == 422
    assert (await api.patch(one, {"odometer_end": 150}, token=f["driver_token"])).json["odometer_end"] == 150
    negative = await api.patch(one, {"fuel_start": -1}, token=f["driver_token"])
    assert negative.status == 422 and "fuel_start" in negative.json["error"]["details"]
    times = await api.patch(
        one, {"departed_at": f"{TODAY}T10:00:00Z", "returned_at": f"{TODAY}T09:00:00Z"}, token=f["driver_token"]
    )
    assert times.status == 422 and "returned_at" in times.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_driver_opens_waybills_only_for_their_own_vehicle(app: Any, api: Api) -> None:
    f = await fleet(app)
    other = await make_vehicle(app, f["org"], await make_user(app, "DRIVER", organizations=[f["org"]["_id"]]))
    spare = await make_vehicle(app, f["org"], None)
    for vehicle_id in (other["_id"], spare["_id"], ObjectId()):
        refused = await api.post(URL, {"vehicle_id": str(vehicle_id)}, token=f["driver_token"])
        assert refused.status == 422 and refused.json["error"]["details"] == {
            "vehicle_id": ["Not a vehicle assigned to you."]
        }
    for category in ("BASE", "MANAGER", "ADMIN"):
        token = await login(app, await make_user(app, category, organizations=[f["org"]["_id"]]))
        answer = await api.post(URL, {"vehicle_id": str(f["vehicle"]["_id"])}, token=token)
        assert answer.status == 403, category
    assert (await api.post(URL, {"vehicle_id": "nope"}, token=f["driver_token"])).status == 422
    assert (await api.get(URL, token=f["driver_token"])).json["total"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_driver_reads_and_edits_only_their_own_waybills(app: Any, api: Api) -> None:
    f = await fleet(app)
    sheet = await open_waybill(api, f)
    colleague = await make_user(app, "DRIVER", organizations=[f["org"]["_id"]])
    await make_vehicle(app, f["org"], colleague)
    token = await login(app, colleague)
    assert (await api.get(f"{URL}/{sheet['id']}", token=token)).status == 404
    touched = await api.patch(f"{URL}/{sheet['id']}", {"route_notes": "mine now"}, token=token)
    assert touched.status == 404
    listed = await api.get(URL, token=token)
    assert listed.json == {"items": [], "total": 0, "limit": 50, "offset": 0}
    # a filter never widens the scope
    assert (await api.get(f"{URL}?driver_id={f['driver']['_id']}", token=token)).json["total"] == 0
    mine = await api.get(URL, token=f["driver_token"])
    assert [s["id"] for s in mine.json["items"]] == [sheet["id"]]
    assert (await api.get(f"{URL}/{sheet['id']}", token=f["driver_token"])).json["route_notes"] == ""


@pytest.mark.gen_test(timeout=60)
async def test_managers_read_their_organizations_waybills_and_never_edit(app: Any, api: Api) -> None:
    a, b = await fleet(app), await fleet(app)
    sheet_a = await open_waybill(api, a, date=DAY)
    sheet_b = await open_waybill(api, b)
    listed = await api.get(URL, token=a["manager_token"])
    assert [s["id"] for s in listed.json["items"]] == [sheet_a["id"]] and listed.json["total"] == 1
    assert (await api.get(f"{URL}/{sheet_a['id']}", token=a["manager_token"])).json == sheet_a
    assert (await api.get(f"{URL}/{sheet_b['id']}", token=a["manager_token"])).status == 404
    for edit in ({"route_notes": "manager was here"}, {"status": "on_route"}):
        refused = await api.patch(f"{URL}/{sheet_a['id']}", edit, token=a["manager_token"])
        assert refused.status == 403 and refused.error_code == "forbidden"
    assert (await api.get(f"{URL}/{sheet_a['id']}", token=a["driver_token"])).json == sheet_a
    filtered = await api.get(f"{URL}?status=open&date_from={DAY}&date_to={NEXT_DAY}", token=a["manager_token"])
    assert filtered.json["total"] == 1
    assert (await api.get(f"{URL}?status=on_route", token=a["manager_token"])).json["total"] == 0
    assert (await api.get(f"{URL}?date_from=yesterday", token=a["manager_token"])).status == 422
    client = await login(app, await make_user(app, "BASE"))
    assert (await api.get(URL, token=client)).status == 403
    assert (await api.get(f"{URL}/{sheet_a['id']}", token=client)).status == 403
    assert (await api.get(URL)).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_admin_reads_all_and_edits_only_before_return(app: Any, api: Api) -> None:
    a, b = await fleet(app), await fleet(app)
    sheet_a, sheet_b = await open_waybill(api, a), await open_waybill(api, b)
    admin = await login(app, await make_user(app, "ADMIN"))
    assert {s["id"] for s in (await api.get(URL, token=admin)).json["items"]} == {sheet_a["id"], sheet_b["id"]}
    fixed = await api.patch(f"{URL}/{sheet_b['id']}", {"odometer_start": 5000, "status": "on_route"}, token=admin)
    assert fixed.status == 200 and fixed.json["odometer_start"] == 5000 and fixed.json["status"] == "on_route"
    assert (await api.patch(f"{URL}/{sheet_b['id']}", {"status": "returned"}, token=admin)).status == 200
    locked = await api.patch(f"{URL}/{sheet_b['id']}", {"odometer_start": 4000}, token=admin)
    assert locked.status == 409 and locked.error_code == "waybill_locked"
    assert (await api.get(f"{URL}/{ObjectId()}", token=admin)).status == 404
    assert (await api.get(f"{URL}/not-an-id", token=admin)).error_code == "invalid_id"


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_moves_and_edits_never_slip_past_the_lock(app: Any, api: Api) -> None:
    f = await fleet(app)
    events = collect_events(app, "waybill")
    one = f"{URL}/{(await open_waybill(api, f))['id']}"
    racing = await asyncio.gather(*(api.patch(one, {"status": "on_route"}, token=f["driver_token"]) for _ in range(4)))
    assert sorted(r.status for r in racing) == [200, 409, 409, 409]
    assert {r.error_code for r in racing if r.status == 409} == {"invalid_transition"}
    notes = [api.patch(one, {"route_notes": f"note {i}"}, token=f["driver_token"]) for i in range(6)]
    answers = await asyncio.gather(api.patch(one, {"status": "returned"}, token=f["driver_token"]), *notes)
    assert answers[0].status == 200
    accepted = {r.json["route_notes"] for r in answers[1:] if r.status == 200}
    assert all(r.status == 200 or r.error_code == "waybill_locked" for r in answers[1:])
    final = (await api.get(one, token=f["driver_token"])).json
    assert final["status"] == "returned" and final["route_notes"] in accepted | {""}
    assert [e.data["to"] for e in events] == ["on_route", "returned"]


@pytest.mark.gen_test(timeout=60)
async def test_linked_orders_must_be_the_drivers_own(app: Any, api: Api) -> None:
    f = await fleet(app)
    orders = app.settings["services"].db["orders"]
    mine = (
        await orders.insert_one(
            {"driver_id": f["driver"]["_id"], "status": "completed", "organization": f["org"]["_id"]}
        )
    ).inserted_id
    theirs = (
        await orders.insert_one({"driver_id": ObjectId(), "status": "completed", "organization": f["org"]["_id"]})
    ).inserted_id
    sheet = await open_waybill(api, f, order_ids=[str(mine)])
    assert sheet["order_ids"] == [str(mine)]
    refused = await api.patch(f"{URL}/{sheet['id']}", {"order_ids": [str(mine), str(theirs)]}, token=f["driver_token"])
    assert refused.status == 422 and "order_ids" in refused.json["error"]["details"]
    assert (
        await api.post(
            URL, {"vehicle_id": str(f["vehicle"]["_id"]), "order_ids": [str(ObjectId())]}, token=f["driver_token"]
        )
    ).status == 422


@pytest.mark.gen_test(timeout=60)
async def test_waybill_dates_and_times_stay_in_a_sensible_range(app: Any, api: Api) -> None:
    f = await fleet(app)
    body = {"vehicle_id": str(f["vehicle"]["_id"])}
    for date in (
        "0001-01-01",
        "9999-12-31",
        (TODAY - timedelta(days=400)).isoformat(),
        (TODAY + timedelta(days=40)).isoformat(),
    ):
        refused = await api.post(URL, {**body, "date": date}, token=f["driver_token"])
        assert refused.status == 422 and list(refused.json["error"]["details"]) == ["date"], date
    far = await api.post(URL, {**body, "departed_at": "9999-12-31T23:59:59Z"}, token=f["driver_token"])
    assert far.status == 422 and list(far.json["error"]["details"]) == ["departed_at"]
    early = await api.post(URL, {**body, "date": DAY, "returned_at": "0001-01-01T00:00:00Z"}, token=f["driver_token"])
    assert early.status == 422 and list(early.json["error"]["details"]) == ["returned_at"]

    one = f"{URL}/{(await open_waybill(api, f, date=DAY))['id']}"
    # held against the stored day: a night shift may start the evening before, not two days before
    evening_before = f"{TODAY - timedelta(days=4)}T21:00:00Z"
    assert (await api.patch(one, {"departed_at": evening_before}, token=f["driver_token"])).status == 200
    too_early = await api.patch(one, {"departed_at": f"{TODAY - timedelta(days=5)}T21:00:00Z"}, token=f["driver_token"])
    assert too_early.status == 422 and list(too_early.json["error"]["details"]) == ["departed_at"]
    # moving the day later than the stored departure allows is refused too
    moved = await api.patch(one, {"date": TODAY.isoformat()}, token=f["driver_token"])
    assert moved.status == 422 and list(moved.json["error"]["details"]) == ["departed_at"]
    tomorrow_plus = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    future = await api.patch(one, {"returned_at": tomorrow_plus}, token=f["driver_token"])
    assert future.status == 422 and list(future.json["error"]["details"]) == ["returned_at"]
    stored = (await api.get(one, token=f["driver_token"])).json
    assert stored["date"] == DAY and stored["departed_at"] == evening_before.replace("Z", ".000Z")
