"""Across server processes: a console on one process sees a driver on another; a truck whose points
go to two processes in turn gets each geofence event once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.timeutil import isoformat, utcnow
from tests.support.fleet_fixtures import offset
from tests.support.helpers import Api
from tests.support.processes import serving
from tests.support.realtime_client import WsClient, fleet, point, ws_url

# A hang guard only: two server starts (each may take up to wait_ready's 30 s on a busy machine) and
# waits with their own limits must not add up to a red test.
HANG_GUARD = 300


async def console_and_driver(console_url: str, driver_url: str, team: dict[str, Any]) -> tuple[WsClient, WsClient]:
    """A manager's console following the fleet on one server, and the first driver's socket on another."""
    console = await WsClient.connect(ws_url(console_url, "/ws/console"), team["manager_token"])
    await console.send({"type": "subscribe", "channel": f"fleet:{team['org']['_id']}"})
    await console.recv_type("subscribed")
    driver = await WsClient.connect(ws_url(driver_url, "/ws/driver"), team["drivers"][0]["token"])
    await driver.recv_type("ready")
    return console, driver


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_console_on_one_server_sees_driver_on_another(
    app: Any, api: Api, base_url: str, settings: Any, tmp_path: Path
) -> None:
    team = await fleet(app, api)
    # The test's own server is one process (the console's); a `dispatch serve` process is the other.
    with serving(settings, tmp_path / "a.log") as server_a:
        console, driver = await console_and_driver(base_url, server_a, team)
        await driver.send({"type": "location", **point(1, lat=48.8566, lon=2.3522)})
        await driver.recv_type("ack", seq=1)
        frame = await console.recv_type("location", timeout=20)
        assert (frame["lat"], frame["lon"]) == (48.8566, 2.3522)
        assert frame["vehicle_id"] == team["drivers"][0]["vehicle"]["id"]


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_forked_processes_share_one_port_and_all_consoles_get_every_point(
    app: Any, api: Api, settings: Any, tmp_path: Path
) -> None:
    team = await fleet(app, api)
    channel = f"fleet:{team['org']['_id']}"
    with serving(settings, tmp_path / "forked.log", processes=2) as server:
        consoles = [await WsClient.connect(ws_url(server, "/ws/console"), team["manager_token"]) for _ in range(6)]
        for console in consoles:
            await console.send({"type": "subscribe", "channel": channel})
            await console.recv_type("subscribed")
        driver = await WsClient.connect(ws_url(server, "/ws/driver"), team["drivers"][0]["token"])
        await driver.recv_type("ready")
        await driver.send({"type": "locations", "points": [point(n, lat=50 + n / 100) for n in range(1, 6)]})
        await driver.recv_type("ack", seq=5)
        for console in consoles:
            lats = [(await console.recv_type("location", timeout=20))["lat"] for _ in range(5)]
            assert lats == [50.01, 50.02, 50.03, 50.04, 50.05]
        await asyncio.sleep(0)


@pytest.mark.parametrize("redis_mode", ["cluster"])
@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_on_a_redis_cluster_a_console_resumes_on_another_server_with_since(
    app: Any, api: Api, base_url: str, settings: Any, tmp_path: Path
) -> None:
    assert settings.redis_cluster
    team = await fleet(app, api)
    channel = f"fleet:{team['org']['_id']}"
    with serving(settings, tmp_path / "a.log") as server_a:
        console, driver = await console_and_driver(base_url, server_a, team)
        await driver.send({"type": "location", **point(1, lat=50.01)})
        await driver.recv_type("ack", seq=1)
        offset = (await console.recv_type("location", timeout=20))["offset"]
        console.close()
        # Away meanwhile; back on the other process, it asks for what it missed.
        await driver.send({"type": "locations", "points": [point(n, lat=50 + n / 100) for n in range(2, 5)]})
        await driver.recv_type("ack", seq=4)
        back = await WsClient.connect(ws_url(server_a, "/ws/console"), team["manager_token"])
        await back.send({"type": "subscribe", "channel": channel, "since": offset})
        await back.recv_type("subscribed")
        replayed = [(await back.recv_type("location", timeout=20))["lat"] for _ in range(3)]
        await driver.send({"type": "location", **point(5, lat=50.05)})
        live = await back.recv_type("location", timeout=20)
        assert replayed == [50.02, 50.03, 50.04] and live["lat"] == 50.05


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_a_truck_whose_points_alternate_between_two_processes_gets_each_geofence_event_once(
    app: Any, api: Api, base_url: str, settings: Any, tmp_path: Path
) -> None:
    team = await fleet(app, api)
    token, crew = team["manager_token"], team["drivers"][0]
    depot = offset(5, 5)
    shape = {"type": "circle", "center": depot, "radius_m": 300}
    body = {"organization": team["org"]["_id"], "name": "Depot", "shape": shape}
    fence = (await api.post("/api/v1/geofences", body, token=token)).json
    base, away, inside = utcnow() - timedelta(minutes=1), offset(3, 3), offset(5, 5.1)
    route = [away, inside, away, inside, away]  # enter at 2, exit at 3, enter at 4, exit at 5

    async def send(url: str, seq: int) -> None:
        """Point `seq` (seq seconds after `base`) through a new socket on `url`; back once acked."""
        driver = await WsClient.connect(ws_url(url, "/ws/driver"), crew["token"])
        await driver.recv_type("ready")
        when = isoformat(base + timedelta(seconds=seq))
        await driver.send({"type": "location", **point(seq, **route[seq - 1], ts=when)})
        await driver.recv_type("ack", seq=seq)
        driver.close()

    async def events() -> list[tuple[str, str]]:
        page = (await api.get(f"/api/v1/geofences/{fence['id']}/events?limit=50", token=token)).json
        return sorted((item["at"], item["event"]) for item in page["items"])

    crossings = ((2, "enter"), (3, "exit"), (4, "enter"), (5, "exit"))
    expected = sorted((isoformat(base + timedelta(seconds=seq)), kind) for seq, kind in crossings)
    # The test's own server is one process, a `dispatch serve` process the other; each judges what it
    # stored, in its own time (off the ack path), so the second may judge before the first has.
    with serving(settings, tmp_path / "a.log") as server_a:
        for seq in range(1, 6):
            await send(server_a if seq % 2 else base_url, seq)
        deadline = time.monotonic() + 30
        while (found := await events()) != expected:
            assert len(found) <= len(expected) and time.monotonic() < deadline, found
            await asyncio.sleep(0.1)
        for seq in (3, 4):  # resent to the other process: stored and judged already, nothing new
            await send(base_url if seq % 2 else server_a, seq)
        await asyncio.sleep(1)  # a drain of each process has passed
        assert await events() == expected
