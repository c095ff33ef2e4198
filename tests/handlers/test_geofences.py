"""Geofences (SPEC section 10): who manages them, validation, and enter/exit events from the GPS stream,
live, from a shuffled late offline batch and from a resent one."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from dispatch.core.timeutil import isoformat, utcnow
from tests.support.api_keys import make_key, with_key
from tests.support.factories import login, make_user
from tests.support.fleet_fixtures import offset
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url

API = "/api/v1"
DEPOT = offset(5, 5)
SQUARE = [[DEPOT["lat"] - 0.005, DEPOT["lon"] - 0.005], [DEPOT["lat"] - 0.005, DEPOT["lon"] + 0.005],
          [DEPOT["lat"] + 0.005, DEPOT["lon"] + 0.005], [DEPOT["lat"] + 0.005, DEPOT["lon"] - 0.005]]  # fmt: skip


def circle(org: Any, radius_m: float = 300, name: str = "Depot") -> dict[str, Any]:
    return {"organization": str(org), "name": name, "shape": {"type": "circle", "center": DEPOT, "radius_m": radius_m}}


@pytest.mark.gen_test(timeout=60)
async def test_managers_keep_their_geofences_and_bad_shapes_are_refused(app: Any, api: Api) -> None:
    team, other = await fleet(app, api), await fleet(app, api)
    token, org = team["manager_token"], team["org"]["_id"]
    made = await api.post(f"{API}/geofences", circle(org), token=token)
    assert made.status == 201, made.json
    fence = made.json
    assert fence["shape"] == {"type": "circle", "center": DEPOT, "radius_m": 300}
    polygon = await api.post(
        f"{API}/geofences", {"organization": str(org), "name": "Lot", "shape": {"type": "polygon", "points": SQUARE}},
        token=token,
    )  # fmt: skip
    assert polygon.status == 201 and polygon.json["shape"]["points"] == SQUARE

    bow_tie = [SQUARE[0], SQUARE[2], SQUARE[1], SQUARE[3]]
    for shape, field in (
        ({"type": "circle", "center": DEPOT, "radius_m": 0}, "shape.radius_m"),
        ({"type": "circle", "center": {"lat": 91, "lon": 0}, "radius_m": 10}, "shape.center.lat"),
        ({"type": "circle", "center": DEPOT}, "shape.radius_m"),
        ({"type": "polygon", "points": SQUARE[:2]}, "shape.points"),
        ({"type": "polygon", "points": [[0.0, float(i % 2)] for i in range(501)]}, "shape.points"),
        ({"type": "polygon", "points": bow_tie}, "shape.points"),
        ({"type": "polygon", "points": [[95.0, 0.0], [0.0, 1.0], [1.0, 1.0]]}, "shape.points"),
        ({"type": "square"}, "shape.type"),
    ):
        refused = await api.post(f"{API}/geofences", {**circle(org), "shape": shape}, token=token)
        assert refused.status == 422 and field in refused.json["error"]["details"], (shape, refused.json)
    theirs = await api.post(f"{API}/geofences", circle(other["org"]["_id"]), token=token)
    assert theirs.status == 422 and "organization" in theirs.json["error"]["details"]

    renamed = await api.patch(f"{API}/geofences/{fence['id']}", {"name": "Main depot"}, token=token)
    assert renamed.status == 200 and renamed.json["name"] == "Main depot"
    listed = await api.get(f"{API}/geofences", token=token)
    assert {f["id"] for f in listed.json["items"]} == {fence["id"], polygon.json["id"]} and listed.json["total"] == 2
    # other organizations' managers do not see it; drivers and clients may not; a `fleet:read` key reads only
    assert (await api.get(f"{API}/geofences/{fence['id']}", token=other["manager_token"])).status == 404
    assert (await api.get(f"{API}/geofences", token=other["manager_token"])).json["total"] == 0
    assert (await api.get(f"{API}/geofences", token=team["drivers"][0]["token"])).status == 403
    assert (await api.get(f"{API}/geofences", token=await login(app, await make_user(app, "BASE")))).status == 403
    key = (await make_key(api, token, str(org), ["fleet:read"]))["key"]
    assert (await api.get(f"{API}/geofences/{fence['id']}/events", headers=with_key(key))).status == 200
    assert (await api.post(f"{API}/geofences", circle(org), headers=with_key(key))).status == 403
    assert (await api.delete(f"{API}/geofences/{fence['id']}", headers=with_key(key))).status == 403

    assert (await api.delete(f"{API}/geofences/{fence['id']}", token=token)).status == 204
    assert (await api.get(f"{API}/geofences/{fence['id']}", token=token)).status == 404


def _at(seq: int, where: dict[str, float], base: Any) -> dict[str, Any]:
    """Point `seq`, `seq` seconds after `base`."""
    return point(seq, **where, ts=isoformat(base + timedelta(seconds=seq)))


@pytest.mark.gen_test(timeout=60)
async def test_enter_and_exit_live_from_a_shuffled_late_batch_and_never_twice(
    app: Any, api: Api, base_url: str
) -> None:
    team = await fleet(app, api)
    crew, token = team["drivers"][0], team["manager_token"]
    fence = (await api.post(f"{API}/geofences", circle(team["org"]["_id"]), token=token)).json
    console = await WsClient.connect(ws_url(base_url, "/ws/console"), token)
    await console.recv_type("ready")
    await console.send({"type": "subscribe", "channel": f"fleet:{team['org']['_id']}"})
    await console.recv_type("subscribed")
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    base, away, inside = utcnow() - timedelta(minutes=2), offset(3, 3), offset(5, 5.1)  # inside: 100 m from DEPOT

    # live: outside, inside, outside
    for seq, where in ((1, away), (2, inside), (3, away)):
        await driver.send({"type": "location", **_at(seq, where, base)})
    entered = await console.recv_type("geofence", event="enter")
    assert entered["geofence_id"] == fence["id"] and entered["vehicle_id"] == crew["vehicle"]["id"]
    assert entered["driver_id"] == str(crew["user"]["_id"]) and entered["at"] == _at(2, inside, base)["ts"]
    assert (await console.recv_type("geofence", event="exit"))["at"] == _at(3, away, base)["ts"]

    # offline: a live point (20, at the yard: a second fence) goes out and is judged first; then the
    # buffer 10..19 comes, shuffled, with a visit inside the depot at 14..16
    yard = (await api.post(f"{API}/geofences", {**circle(team["org"]["_id"], 200, "Yard"), "shape": {
        "type": "circle", "center": offset(2, 2), "radius_m": 200}}, token=token)).json  # fmt: skip
    await driver.send({"type": "location", **_at(20, offset(2, 2), base)})
    at_yard = await console.recv_type("geofence", event="enter")
    assert (at_yard["geofence_id"], at_yard["at"]) == (yard["id"], _at(20, away, base)["ts"])
    buffer = [_at(seq, inside if 14 <= seq <= 16 else away, base) for seq in range(10, 20)]
    random.Random(7).shuffle(buffer)
    await driver.send({"type": "locations", "points": buffer})
    late_in = await console.recv_type("geofence", event="enter")
    late_out = await console.recv_type("geofence", event="exit")
    assert (late_in["at"], late_out["at"]) == (_at(14, inside, base)["ts"], _at(17, away, base)["ts"])
    assert late_in["geofence_id"] == late_out["geofence_id"] == fence["id"], "the yard's enter at 20 stands"

    # the same batch again, then a live visit to the depot: only the visit's events
    await driver.send({"type": "locations", "points": buffer})
    await driver.send({"type": "location", **_at(30, inside, base)})
    left_yard = await console.recv_type("geofence")
    assert (left_yard["event"], left_yard["geofence_id"]) == ("exit", yard["id"])
    again = await console.recv_type("geofence")
    assert (again["event"], again["at"]) == ("enter", _at(30, inside, base)["ts"])
    events = await api.get(f"{API}/geofences/{fence['id']}/events", token=token)
    assert [(e["event"], e["at"]) for e in events.json["items"]] == [
        ("enter", _at(30, inside, base)["ts"]),
        ("exit", _at(17, away, base)["ts"]),
        ("enter", _at(14, inside, base)["ts"]),
        ("exit", _at(3, away, base)["ts"]),
        ("enter", _at(2, inside, base)["ts"]),
    ]
    assert [f["type"] for f in console.seen].count("geofence") == 7
