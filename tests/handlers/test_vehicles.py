"""Fleet: vehicle types, vehicles per role and organization, live locations, nearby search, route replay."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatch.core import live
from dispatch.core.geo import haversine_km
from tests.support.fleet_fixtures import API, CENTER, gps_point, make_world, offset, oid, put_position
from tests.support.helpers import Api


def ids(answer: Any) -> list[str]:
    return [item["id"] for item in answer.json["items"]]


# --- vehicle types -------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_the_shared_catalogue_is_written_by_admins_only(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("loner", "MANAGER")  # a self-registered manager of no organization
    body = {"name": "SUV", "base_price": 2000, "price_per_km": 120.5}
    assert (await api.post(f"{API}/vehicle-types", body, token=world.tokens["client"])).status == 403
    for manager in ("manager_a", "loner"):
        refused = await api.post(f"{API}/vehicle-types", body, token=world.tokens[manager])
        assert refused.status == 422 and "organization" in refused.json["error"]["details"], manager
    shared = await api.post(f"{API}/vehicle-types", body, token=world.tokens["admin"])
    assert shared.status == 201 and shared.json["organization"] is None
    assert shared.json["name"] == "SUV" and shared.json["price_per_km"] == 120.5
    again = await api.post(f"{API}/vehicle-types", {**body, "name": "suv"}, token=world.tokens["admin"])
    assert again.status == 409 and again.error_code == "name_taken"
    path = f"{API}/vehicle-types/{shared.json['id']}"
    for manager in ("manager_a", "loner"):
        for change in ({"base_price": 0}, {"base_price": 1}, {"name": "Free"}):
            refused = await api.patch(path, change, token=world.tokens[manager])
            assert refused.status in (403, 422) and refused.error_code in ("shared_catalogue", "validation_error")
    assert (await api.patch(path, {"base_price": 1}, token=world.tokens["manager_a"])).error_code == "shared_catalogue"
    assert (await api.patch(path, {"base_price": 2500}, token=world.tokens["client"])).status == 403
    edited = await api.patch(path, {"base_price": 2500}, token=world.tokens["admin"])
    assert edited.status == 200 and edited.json["base_price"] == 2500 and edited.json["name"] == "SUV"
    assert (await api.get(path, token=world.tokens["client"])).json["base_price"] == 2500
    assert (await api.patch(path, {"base_price": 0}, token=world.tokens["admin"])).status == 422, "a tow costs"
    assert (await api.get(f"{API}/vehicle-types", token="")).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_managers_write_their_organizations_price_lists(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("driver_a", "DRIVER", "a")
    shared = (
        await api.post(
            f"{API}/vehicle-types",
            {"name": "Sedan", "base_price": 1500, "price_per_km": 90},
            token=world.tokens["admin"],
        )
    ).json
    body = {"name": "Sedan", "base_price": 1800, "price_per_km": 100}  # a name of another list is free
    own_a = await api.post(
        f"{API}/vehicle-types", {**body, "organization": world.org("a")}, token=world.tokens["manager_a"]
    )
    assert own_a.status == 201 and own_a.json["organization"] == world.org("a")
    refused = await api.post(
        f"{API}/vehicle-types", {**body, "organization": world.org("b")}, token=world.tokens["manager_a"]
    )
    assert refused.status == 422 and "organization" in refused.json["error"]["details"]
    own_b = (
        await api.post(
            f"{API}/vehicle-types",
            {**body, "name": "Van", "organization": world.org("b")},
            token=world.tokens["manager_b"],
        )
    ).json
    path_a = f"{API}/vehicle-types/{own_a.json['id']}"
    assert (await api.patch(path_a, {"base_price": 1900}, token=world.tokens["manager_a"])).json["base_price"] == 1900
    assert (await api.patch(path_a, {"base_price": 1}, token=world.tokens["manager_b"])).status == 404
    assert (await api.get(path_a, token=world.tokens["manager_b"])).status == 404
    listed = {
        name: ids(await api.get(f"{API}/vehicle-types", token=world.tokens[name]))
        for name in ("manager_a", "manager_b", "driver_a", "client", "admin")
    }
    assert sorted(listed["manager_a"]) == sorted(listed["driver_a"]) == sorted([shared["id"], own_a.json["id"]])
    assert sorted(listed["manager_b"]) == sorted([shared["id"], own_b["id"]])
    assert sorted(listed["client"]) == sorted(listed["admin"]) == sorted([shared["id"], own_a.json["id"], own_b["id"]])
    usable = await api.get(f"{API}/vehicle-types?organization={world.org('b')}", token=world.tokens["client"])
    assert sorted(ids(usable)) == sorted([shared["id"], own_b["id"]]) and usable.json["total"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_types_from_before_price_lists_are_shared(app: Any, api: Api) -> None:
    from dispatch.core.storage import ensure_indexes

    world = await make_world(app)
    db = app.settings["services"].db
    await db["vehicle_types"].insert_one(
        {
            "name": "Old bus",
            "name_lower": "old bus",
            "base_price": 10.0,
            "price_per_km": 1.0,
            "created_at": datetime.now(UTC),
            "updated_at": datetime.now(UTC),
        }
    )
    await ensure_indexes(db)
    listed = await api.get(f"{API}/vehicle-types", token=world.tokens["manager_a"])
    assert [item["organization"] for item in listed.json["items"] if item["name"] == "Old bus"] == [None]
    old = next(item for item in listed.json["items"] if item["name"] == "Old bus")
    assert (
        await api.patch(f"{API}/vehicle-types/{old['id']}", {"base_price": 0.5}, token=world.tokens["manager_a"])
    ).status == 403


@pytest.mark.gen_test(timeout=60)
async def test_vehicle_type_validation(app: Any, api: Api) -> None:
    world = await make_world(app)
    answer = await api.post(
        f"{API}/vehicle-types", {"name": "", "base_price": -1, "price_per_km": "x"}, token=world.tokens["admin"]
    )
    assert answer.status == 422
    assert set(answer.json["error"]["details"]) == {"name", "base_price", "price_per_km"}
    assert (await api.get(f"{API}/vehicle-types/{oid()}", token=world.tokens["client"])).status == 404
    assert (await api.get(f"{API}/vehicle-types/nope", token=world.tokens["client"])).status == 400


# --- vehicles: create, scope --------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_manager_creates_a_truck_with_a_driver_of_their_organization(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("driver_a", "DRIVER", "a")
    await world.add_user("driver_b", "DRIVER", "b")
    body = {
        "plate": "A 123 BC 77",
        "model": "MAN TGL",
        "capacity_kg": 4000,
        "organization": world.org("a"),
        "driver_id": world.id("driver_a"),
        "status": "available",
    }
    created = await api.post(f"{API}/vehicles", body, token=world.tokens["manager_a"])
    assert created.status == 201, created.json
    assert created.json["organization"] == world.org("a") and created.json["driver_id"] == world.id("driver_a")
    assert created.json["status"] == "available" and created.json["location"] is None
    assert created.json["current_order"] is None

    same_plate = await api.post(
        f"{API}/vehicles",
        {**body, "plate": "a123-bc77", "driver_id": None, "status": "offline"},
        token=world.tokens["manager_a"],
    )
    assert same_plate.status == 409 and same_plate.error_code == "plate_taken"
    second_truck = await api.post(f"{API}/vehicles", {**body, "plate": "B 1"}, token=world.tokens["manager_a"])
    assert second_truck.status == 409 and second_truck.error_code == "driver_taken"
    stranger = await api.post(
        f"{API}/vehicles", {**body, "plate": "C 1", "driver_id": world.id("driver_b")}, token=world.tokens["manager_a"]
    )
    assert stranger.status == 422 and "driver_id" in stranger.json["error"]["details"]
    not_a_driver = await api.post(
        f"{API}/vehicles", {**body, "plate": "C 2", "driver_id": world.id("manager_a")}, token=world.tokens["manager_a"]
    )
    assert not_a_driver.status == 422
    other_org = await api.post(
        f"{API}/vehicles",
        {**body, "plate": "C 3", "organization": world.org("b"), "driver_id": None, "status": "offline"},
        token=world.tokens["manager_a"],
    )
    assert other_org.status == 422 and "organization" in other_org.json["error"]["details"]
    no_driver = await api.post(
        f"{API}/vehicles", {**body, "plate": "C 4", "driver_id": None}, token=world.tokens["manager_a"]
    )
    assert no_driver.status == 422 and "status" in no_driver.json["error"]["details"]
    admin = await api.post(
        f"{API}/vehicles",
        {**body, "plate": "C 5", "organization": world.org("b"), "driver_id": world.id("driver_b")},
        token=world.tokens["admin"],
    )
    assert admin.status == 201
    unknown_org = await api.post(
        f"{API}/vehicles",
        {**body, "plate": "C 6", "organization": oid(), "driver_id": None, "status": "offline"},
        token=world.tokens["admin"],
    )
    assert unknown_org.status == 422


@pytest.mark.gen_test(timeout=60)
async def test_vehicle_input_is_validated(app: Any, api: Api) -> None:
    world = await make_world(app)
    answer = await api.post(
        f"{API}/vehicles",
        {"plate": "", "model": "M", "capacity_kg": 1.5, "organization": "x", "status": "busy"},
        token=world.tokens["manager_a"],
    )
    assert answer.status == 422
    assert {"plate", "capacity_kg", "organization", "status"} <= set(answer.json["error"]["details"])


@pytest.mark.gen_test(timeout=60)
async def test_vehicles_are_scoped_by_role_and_organization(app: Any, api: Api) -> None:
    world = await make_world(app)
    a1 = await world.add_vehicle("a1", "a", "driver_a1")
    await world.add_vehicle("a2", "a", None, status="offline")
    b1 = await world.add_vehicle("b1", "b", "driver_b1")
    mine = await api.get(f"{API}/vehicles", token=world.tokens["manager_a"])
    assert sorted(ids(mine)) == sorted([world.id("a1"), world.id("a2")]) and mine.json["total"] == 2
    for method, body in (("GET", None), ("PATCH", {"model": "x"}), ("DELETE", None)):
        answer = await api.request(method, f"{API}/vehicles/{b1['_id']}", body, token=world.tokens["manager_a"])
        assert answer.status == 404, method
    assert (await api.get(f"{API}/vehicles/{b1['_id']}/track", token=world.tokens["manager_a"])).status == 404
    everything = await api.get(f"{API}/vehicles?limit=2", token=world.tokens["admin"])
    assert everything.json["total"] == 3 and len(everything.json["items"]) == 2
    only_b = await api.get(f"{API}/vehicles?organization={world.org('b')}", token=world.tokens["admin"])
    assert ids(only_b) == [world.id("b1")]
    offline = await api.get(f"{API}/vehicles?status=offline", token=world.tokens["manager_a"])
    assert ids(offline) == [world.id("a2")]
    assert (await api.get(f"{API}/vehicles?status=flying", token=world.tokens["admin"])).status == 422

    driver = world.tokens["driver_a1"]
    assert ids(await api.get(f"{API}/vehicles", token=driver)) == [world.id("a1")]
    assert (await api.get(f"{API}/vehicles/{a1['_id']}", token=driver)).status == 200
    assert (await api.get(f"{API}/vehicles/{world.id('a2')}", token=driver)).status == 404
    assert (await api.patch(f"{API}/vehicles/{a1['_id']}", {"model": "x"}, token=driver)).status == 403
    assert (await api.post(f"{API}/vehicles", {}, token=driver)).status == 403
    assert (await api.get(f"{API}/vehicles", token=world.tokens["client"])).status == 403
    assert (await api.get(f"{API}/vehicles/{a1['_id']}", token=world.tokens["client"])).status == 403


@pytest.mark.gen_test(timeout=60)
async def test_each_vehicle_answer_carries_its_live_location(app: Any, api: Api) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("a1", "a", "driver_a1", at=offset(1, 1))
    await world.add_vehicle("a2", "a", "driver_a2")
    one = await api.get(f"{API}/vehicles/{truck['_id']}", token=world.tokens["manager_a"])
    location = one.json["location"]
    assert location["lat"] == pytest.approx(offset(1, 1)["lat"]) and location["speed"] == 10.0
    assert location["ts"] == "2030-01-01T00:00:00.000Z"
    listed = {
        item["id"]: item["location"]
        for item in (await api.get(f"{API}/vehicles", token=world.tokens["manager_a"])).json["items"]
    }
    assert listed[world.id("a2")] is None and listed[world.id("a1")]["lon"] == pytest.approx(offset(1, 1)["lon"])


# --- vehicles: edit and delete ---------------------------------------------------------
@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_edit_and_delete_and_the_live_position_goes_with_it(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("manager_ab", "MANAGER", "a")
    world.users["manager_ab"] = await app.settings["services"].identity.users.update(
        world.users["manager_ab"]["_id"], {"organizations": [world.orgs["a"]["_id"], world.orgs["b"]["_id"]]}
    )
    token = world.tokens["manager_ab"]
    truck = await world.add_vehicle("a1", "a", "driver_a1", at=CENTER)
    path = f"{API}/vehicles/{truck['_id']}"
    edited = await api.patch(path, {"model": "Volvo FL", "status": "offline"}, token=token)
    assert edited.status == 200 and edited.json["model"] == "Volvo FL" and edited.json["status"] == "offline"
    assert edited.json["location"] is not None

    keeps_driver = await api.patch(path, {"organization": world.org("b")}, token=token)
    assert keeps_driver.status == 422, "its driver is not a member of the new organization"
    moved = await api.patch(path, {"organization": world.org("b"), "driver_id": None}, token=token)
    assert moved.status == 200 and moved.json["organization"] == world.org("b")
    assert moved.json["location"] is None, "moving a vehicle forgets its live position"
    redis = app.settings["services"].redis
    assert await redis.zscore(live.GEO_ALL, str(truck["_id"])) is None
    assert await redis.zscore(live.geo_org(world.org("a")), str(truck["_id"])) is None

    await put_position(app, {**truck, "organization": world.orgs["b"]["_id"]}, CENTER)
    assert (await api.delete(path, token=world.tokens["manager_a"])).status == 404
    deleted = await api.delete(path, token=token)
    assert deleted.status == 204
    assert (await api.get(path, token=token)).status == 404
    assert await redis.zscore(live.geo_org(world.org("b")), str(truck["_id"])) is None
    assert await redis.hexists(live.POSITIONS, str(truck["_id"])) == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_busy_vehicle_keeps_its_organization_driver_and_status(app: Any, api: Api) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("a1", "a", "driver_a1")
    await (
        app.settings["services"]
        .db["vehicles"]
        .update_one({"_id": truck["_id"]}, {"$set": {"status": "busy", "current_order": truck["_id"]}})
    )
    path = f"{API}/vehicles/{truck['_id']}"
    for change in ({"status": "offline"}, {"driver_id": None}):
        answer = await api.patch(path, change, token=world.tokens["manager_a"])
        assert answer.status == 409 and answer.error_code == "vehicle_busy", change
    assert (await api.patch(path, {"model": "Renamed"}, token=world.tokens["manager_a"])).status == 200
    refused = await api.delete(path, token=world.tokens["manager_a"])
    assert refused.status == 409 and refused.error_code == "vehicle_busy"


# --- nearby ------------------------------------------------------------------------------
@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_nearby_lists_available_trucks_nearest_first_within_the_radius(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("far", "a", "d1", at=offset(8, 0))
    await world.add_vehicle("near", "b", "d2", at=offset(1, 0))
    await world.add_vehicle("mid", "a", "d3", at=offset(0, 4))
    await world.add_vehicle("busy", "a", "d4", status="busy", at=offset(0.5, 0))
    await world.add_vehicle("offline", "b", "d5", status="offline", at=offset(0.2, 0))
    await world.add_vehicle("outside", "a", "d6", at=offset(30, 0))
    await world.add_vehicle("unknown", "a", "d7")
    query = f"lat={CENTER['lat']}&lon={CENTER['lon']}"
    answer = await api.get(f"{API}/vehicles/nearby?{query}&radius_km=10", token=world.tokens["client"])
    assert answer.status == 200
    assert ids(answer) == [world.id("near"), world.id("mid"), world.id("far")]
    assert answer.json["total"] == 3 and answer.json["offset"] == 0
    distances = [item["distance_km"] for item in answer.json["items"]]
    assert distances == pytest.approx([1, 4, 8], abs=0.05)
    assert answer.json["items"][0]["location"]["lat"] == pytest.approx(offset(1, 0)["lat"])
    assert answer.json["items"][0]["type"] == "Isuzu NPR"

    small = await api.get(f"{API}/vehicles/nearby?{query}&radius_km=5", token=world.tokens["admin"])
    assert ids(small) == [world.id("near"), world.id("mid")]
    paged = await api.get(f"{API}/vehicles/nearby?{query}&radius_km=50&limit=2&offset=1", token=world.tokens["admin"])
    assert ids(paged) == [world.id("mid"), world.id("far")] and paged.json["total"] == 4
    manager = await api.get(f"{API}/vehicles/nearby?{query}&radius_km=10", token=world.tokens["manager_a"])
    assert ids(manager) == [world.id("mid"), world.id("far")], "a manager sees their own fleet only"
    assert manager.json["items"][0]["driver_id"] == world.id("d3")
    empty = await api.get(f"{API}/vehicles/nearby?lat=0&lon=0&radius_km=10", token=world.tokens["client"])
    assert empty.json == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.gen_test(timeout=60)
async def test_clients_see_nearby_trucks_without_people_organizations_or_plates(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver_a", at=offset(1, 0))
    query = f"lat={CENTER['lat']}&lon={CENTER['lon']}&radius_km=10"
    brief = (await api.get(f"{API}/vehicles/nearby?{query}", token=world.tokens["client"])).json["items"]
    assert [set(item) for item in brief] == [{"id", "type", "location", "distance_km"}]
    text = str(brief)
    for secret in (world.id("driver_a"), world.org("a"), world.vehicles["truck"]["plate"]):
        assert secret not in text
    for name in ("manager_a", "admin"):
        full = (await api.get(f"{API}/vehicles/nearby?{query}", token=world.tokens[name])).json["items"]
        assert full[0]["driver_id"] == world.id("driver_a") and full[0]["organization"] == world.org("a"), name
        assert full[0]["plate"] == world.vehicles["truck"]["plate"], name


@pytest.mark.gen_test(timeout=60)
async def test_manager_of_two_organizations_gets_one_merged_nearby_list(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("manager_ab", "MANAGER", "a")
    world.users["manager_ab"] = await app.settings["services"].identity.users.update(
        world.users["manager_ab"]["_id"], {"organizations": [world.orgs["a"]["_id"], world.orgs["b"]["_id"]]}
    )
    await world.add_vehicle("a_far", "a", "d1", at=offset(3, 0))
    await world.add_vehicle("b_near", "b", "d2", at=offset(1, 0))
    await world.add_vehicle("a_near", "a", "d3", at=offset(2, 0))
    answer = await api.get(
        f"{API}/vehicles/nearby?lat={CENTER['lat']}&lon={CENTER['lon']}&radius_km=10", token=world.tokens["manager_ab"]
    )
    assert ids(answer) == [world.id("b_near"), world.id("a_near"), world.id("a_far")]


@pytest.mark.parametrize(
    "query",
    [
        "lat=91&lon=0&radius_km=5",
        "lat=0&lon=181&radius_km=5",
        "lat=x&lon=0&radius_km=5",
        "lon=0&radius_km=5",
        "lat=0&lon=0",
        "lat=0&lon=0&radius_km=0",
        "lat=0&lon=0&radius_km=-3",
        "lat=nan&lon=0&radius_km=5",
        "lat=0&lon=0&radius_km=501",
        "lat=0&lon=0&radius_km=5&limit=0",
    ],
)
@pytest.mark.gen_test(timeout=60)
async def test_nearby_refuses_bad_coordinates_and_radius(app: Any, api: Api, query: str) -> None:
    world = await make_world(app)
    answer = await api.get(f"{API}/vehicles/nearby?{query}", token=world.tokens["client"])
    assert answer.status == 422
    assert answer.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_drivers_do_not_search_nearby(app: Any, api: Api) -> None:
    world = await make_world(app)
    await world.add_user("driver", "DRIVER", "a")
    answer = await api.get(f"{API}/vehicles/nearby?lat=0&lon=0&radius_km=5", token=world.tokens["driver"])
    assert answer.status == 403


# --- route replay -------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_track_replays_the_stored_route_and_its_length(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("a1", "a", "driver_a1")
    other = await world.add_vehicle("a2", "a", "driver_a2")
    start = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
    route = [offset(0, 0), offset(1, 0), offset(1, 1), offset(2, 1)]
    # Stored out of order, as batches from a phone's offline buffer may arrive.
    docs = [gps_point(truck, seq, at, start + timedelta(minutes=seq)) for seq, at in enumerate(route)]
    sync_db["gps_points"].insert_many(list(reversed(docs)))
    sync_db["gps_points"].insert_one(gps_point(other, 0, offset(50, 50), start))
    sync_db["gps_points"].insert_one(gps_point(truck, 9, offset(9, 9), start - timedelta(days=3)))

    path = f"{API}/vehicles/{truck['_id']}/track?from=2030-05-01T07:00:00Z&to=2030-05-01T09:00:00Z"
    answer = await api.get(path, token=world.tokens["manager_a"])
    assert answer.status == 200
    body = answer.json
    assert set(body) == {"vehicle_id", "points", "distance_km"} and body["vehicle_id"] == world.id("a1")
    assert [p["lat"] for p in body["points"]] == pytest.approx([p["lat"] for p in route])
    assert [p["lon"] for p in body["points"]] == pytest.approx([p["lon"] for p in route])
    assert body["points"][0] == {
        "lat": pytest.approx(route[0]["lat"]),
        "lon": pytest.approx(route[0]["lon"]),
        "ts": "2030-05-01T08:00:00.000Z",
        "speed": 12.5,
        "heading": 270.0,
    }
    expected = sum(haversine_km(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in itertools.pairwise(route))
    assert body["distance_km"] == pytest.approx(expected, abs=0.001)
    assert body["distance_km"] == pytest.approx(3, abs=0.01)

    window = await api.get(
        f"{API}/vehicles/{truck['_id']}/track?from=2030-05-01T08:01:00Z&to=2030-05-01T08:02:00",
        token=world.tokens["driver_a1"],
    )
    assert len(window.json["points"]) == 2 and window.json["distance_km"] == pytest.approx(1, abs=0.01)
    recent = await api.get(f"{API}/vehicles/{truck['_id']}/track", token=world.tokens["admin"])
    assert recent.json == {"vehicle_id": world.id("a1"), "points": [], "distance_km": 0}, "default: the last 24 h"


@pytest.mark.gen_test(timeout=60)
async def test_track_refuses_bad_windows(app: Any, api: Api) -> None:
    world = await make_world(app)
    truck = await world.add_vehicle("a1", "a", "driver_a1")
    base = f"{API}/vehicles/{truck['_id']}/track"
    backwards = await api.get(f"{base}?from=2030-05-02T00:00:00Z&to=2030-05-01T00:00:00Z", token=world.tokens["admin"])
    assert backwards.status == 422 and "from" in backwards.json["error"]["details"]
    garbage = await api.get(f"{base}?from=yesterday", token=world.tokens["admin"])
    assert garbage.status == 422 and "from" in garbage.json["error"]["details"]
    assert (await api.get(f"{API}/vehicles/{oid()}/track", token=world.tokens["admin"])).status == 404
    assert (await api.get(f"{base}", token=world.tokens["driver_a1"])).status == 200
    await world.add_user("driver_x", "DRIVER", "a")
    assert (await api.get(f"{base}", token=world.tokens["driver_x"])).status == 404
