"""Fan-out across server processes: a console on one process sees a driver on another."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import Api
from tests.support.processes import serving
from tests.support.realtime_client import WsClient, fleet, point, ws_url

# A hang guard only: two server starts (each may take up to wait_ready's 30 s on a busy machine) and
# waits with their own limits must not add up to a red test.
HANG_GUARD = 300


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_console_on_one_server_sees_driver_on_another(
    app: Any, api: Api, base_url: str, settings: Any, tmp_path: Path
) -> None:
    team = await fleet(app, api)
    channel = f"fleet:{team['org']['_id']}"
    # The test's own server is one process (the console's); a `dispatch serve` process is the other.
    with serving(settings, tmp_path / "a.log") as server_a:
        console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
        await console.send({"type": "subscribe", "channel": channel})
        await console.recv_type("subscribed")
        driver = await WsClient.connect(ws_url(server_a, "/ws/driver"), team["drivers"][0]["token"])
        await driver.recv_type("ready")
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
        console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
        await console.send({"type": "subscribe", "channel": channel})
        await console.recv_type("subscribed")
        driver = await WsClient.connect(ws_url(server_a, "/ws/driver"), team["drivers"][0]["token"])
        await driver.recv_type("ready")
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
