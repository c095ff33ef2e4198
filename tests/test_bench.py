"""The benchmark harness runs end to end: a smoke run at a tiny load for a second (not a measurement)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.websocket

from models.vehicles import GpsHistory

ROOT = Path(__file__).resolve().parent.parent


def test_fanout_harness_measures_both_relays_and_the_server_with_the_same_generator() -> None:
    # Private services for the run: the bench writes live positions, which must not reach the suite's Redis.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fanout",
            "--drivers",
            "10",
            "--consoles",
            "1",
            "--rates",
            "100",
            "--step-seconds",
            "1",
            "--quiet-wait",
            "0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["scenario"] for line in lines] == ["fanout_relay", "fanout_durable_relay", "fanout"]
    for line in lines:
        step = line["steps"][0]
        assert step["offered_rate"] > 50
        assert step["acked_ratio"] == 1.0  # every point acked (stored, for the durable relay and the server)
        assert step["acked_in_2s_ratio"] == 1.0
        assert step["delivery_ratio"] == 1.0  # and every point reached the console
        assert step["fanout_p50_ms"] > 0
    assert lines[2]["ratio_to_relay"] > 0 and lines[2]["ratio_to_durable_relay"] > 0
    assert "server ÷ durable relay" in run.stderr  # the comparison table


def test_the_durable_relay_acks_a_point_once_it_is_stored_and_stores_a_resent_point_once(
    services: Any, sync_db: Any, settings: Any
) -> None:
    """The peer the server is measured against keeps the server's promise: acked means stored, once."""
    from bench.common import relay_process

    driver = "0123456789abcdef01234567"
    env = {"DISPATCH_MONGODB_URL": services.mongodb_url, "DISPATCH_MONGODB_DB": settings.mongodb_db}

    def point(seq: int) -> bytes:
        ts = f"2030-01-01T00:00:0{seq}.000Z"
        return json.dumps({"type": "location", "seq": seq, "lat": 55.7, "lon": 37.6, "ts": ts, "speed": 10.0,
                           "heading": 90.0, "accuracy": 5.0}).encode()  # fmt: skip

    async def stream(url: str) -> list[int]:
        request = tornado.httpclient.HTTPRequest(
            url.replace("http", "ws") + "/ws/driver", headers={"Authorization": f"Bearer {driver}"}
        )
        socket = await tornado.websocket.websocket_connect(request)
        assert json.loads(await socket.read_message())["type"] == "ready"  # type: ignore[arg-type]
        acks: list[int] = []

        async def until_acked(seq: int) -> None:
            while not acks or acks[-1] != seq:
                frame = json.loads(await asyncio.wait_for(socket.read_message(), 10))  # type: ignore[arg-type]
                if frame["type"] == "ack":
                    acks.append(frame["seq"])
                    # acked: stored already (acks are cumulative, and a resent point is stored once)
                    assert sync_db["gps_points"].count_documents({"seq": {"$lte": frame["seq"]}}) == frame["seq"]

        for seq in (1, 2, 3):
            await socket.write_message(point(seq))
        await until_acked(3)
        await socket.write_message(point(2))  # resent: its ack was lost, say
        await until_acked(2)
        socket.close()
        # Until the relay has answered the close and the connection is down: a socket still open when
        # asyncio.run closes this loop would be collected, unclosed, in some later test.
        while await asyncio.wait_for(socket.read_message(), 10) is not None:
            pass
        return acks

    with relay_process(env) as relay:
        acks = asyncio.run(stream(relay.url))
    assert acks[-2:] == [3, 2]
    docs = list(sync_db["gps_points"].find({}, {"_id": 1}).sort("seq"))
    assert [doc["_id"] for doc in docs] == [f"{driver}:1", f"{driver}:2", f"{driver}:3"]
    stored = sync_db["gps_points"].find_one({"_id": f"{driver}:1"})
    expected = GpsHistory.document(driver, driver, None, {"seq": 1, "lat": 55.7, "lon": 37.6, "speed": 10.0,
                                    "heading": 90.0, "accuracy": 5.0, "ts": stored["ts"]})  # fmt: skip
    assert stored == expected  # the same document the server writes
    assert "vehicle_ts" in sync_db["gps_points"].index_information()
