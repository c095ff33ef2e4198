"""`dispatch simulate` as a real process against the running app: trucks move on a console."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from dispatch.core.geo import haversine_km
from dispatch.tools.devservices import VENV_BIN
from dispatch.tools.simulate import Route
from tests.support.factories import PASSWORD
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, ws_url


def test_routes_move_at_town_speed() -> None:
    import random

    route = Route(55.75, 37.62, random.Random(7))
    positions = [route.advance(1.0) for _ in range(120)]
    for before, after in itertools.pairwise(positions):
        km = haversine_km(before["lat"], before["lon"], after["lat"], after["lon"])
        assert km <= 75 / 3600 + 1e-6  # never faster than 75 km/h between one-second points
        assert 10 <= after["speed"] <= 70 and 0 <= after["heading"] < 360
    assert haversine_km(55.75, 37.62, positions[-1]["lat"], positions[-1]["lon"]) > 0.1  # it went somewhere


@pytest.mark.gen_test(timeout=90)
async def test_simulated_drivers_move_trucks_on_a_console(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api, drivers=2)
    console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await console.send({"type": "subscribe", "channel": f"fleet:{team['org']['_id']}"})
    await console.recv_type("subscribed")
    names = [crew["user"]["username"] for crew in team["drivers"]]
    procs = [
        await asyncio.create_subprocess_exec(
            str(VENV_BIN / "dispatch"),
            "simulate",
            "--drivers",
            "1",
            "--rate",
            "4",
            "--duration",
            "3",
            "--url",
            base_url,
            "--username-template",
            name,
            "--password",
            PASSWORD,
            "--seed",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for name in names
    ]
    seen: dict[str, list[tuple[float, float]]] = {}
    while sum(len(v) for v in seen.values()) < 10:
        frame = await console.recv_type("location", timeout=20)
        seen.setdefault(frame["vehicle_id"], []).append((frame["lat"], frame["lon"]))
    outputs = [(await proc.communicate())[0].decode() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert set(seen) == {crew["vehicle"]["id"] for crew in team["drivers"]}  # both trucks reported
    assert any(len(set(track)) > 1 for track in seen.values())  # and moved
    last = outputs[0].strip().splitlines()[-1]
    sent, acked = (int(last.split(f"{k}=")[1].split()[0]) for k in ("sent", "acked"))
    assert sent >= 8 and acked == sent
    stored = await app.settings["services"].db["gps_points"].count_documents({})
    assert stored >= sum(int(o.strip().splitlines()[-1].split("acked=")[1].split()[0]) for o in outputs)
