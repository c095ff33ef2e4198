"""Geofence judging across server processes and restarts: each process opens its own Services on the
same MongoDB, as `dispatch serve` processes do; a restart closes one and opens another."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.events import Event
from dispatch.core.timeutil import utcnow
from dispatch.services import Services
from dispatch.settings import Settings
from models.vehicles import GpsHistory
from tests.support.fleet_fixtures import offset

DEPOT = offset(5, 5)
INSIDE, OUTSIDE = offset(5, 5.1), offset(3, 3)


class Track:
    """One truck of one organization streaming to whichever process is given, with a fence at the depot."""

    def __init__(self, services: Services) -> None:
        self.vehicle, self.driver, self.org = ObjectId(), ObjectId(), ObjectId()
        self.base = utcnow() - timedelta(minutes=5)

    async def fence(self, services: Services) -> str:
        doc = {"organization": self.org, "name": "Depot", "shape": {"type": "circle", "center": DEPOT, "radius_m": 300}}
        return str((await services.geofences.store.insert(doc))["_id"])

    def point(self, seq: int, where: dict[str, float]) -> dict[str, Any]:
        return {"seq": seq, "ts": self.base + timedelta(seconds=seq), "speed": 1.0, "heading": 0.0, "accuracy": 5.0,
                **where}  # fmt: skip

    async def send(self, services: Services, *points: dict[str, Any]) -> list[dict[str, Any]]:
        """Store the points (as the ingest does), then judge them on this process; the events it raised."""
        await GpsHistory(services.db).add(
            [GpsHistory.document(str(self.driver), str(self.vehicle), None, p) for p in points]
        )
        return await services.geofences.judge(self.vehicle, self.org, self.driver, list(points))


def published(services: Services) -> list[Event]:
    """The geofence events a process publishes from now on."""
    seen: list[Event] = []

    async def keep(event: Event) -> None:
        if event.type == "geofence":
            seen.append(event)

    services.events.listen(keep)
    return seen


async def stored(services: Services, fence: str) -> list[tuple[str, Any]]:
    cursor = services.geofences.store.events.find({"geofence_id": ObjectId(fence)}).sort("at", 1)
    return [(doc["event"], doc["at"]) for doc in await cursor.to_list()]


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_consecutive_points_on_two_processes_raise_each_event_once(app: Any, settings: Settings) -> None:
    one, two = app.settings["services"], Services.open(settings)
    try:
        track = Track(one)
        fence = await track.fence(one)
        frames_one, frames_two = published(one), published(two)
        await track.send(one, track.point(1, OUTSIDE))
        assert await track.send(two, track.point(2, INSIDE)) != []  # process 2 judges from process 1's state
        assert await track.send(one, track.point(3, OUTSIDE)) != []
        assert await stored(one, fence) == [("enter", track.point(2, INSIDE)["ts"]), ("exit", track.point(3, {})["ts"])]
        assert [e.data["event"] for e in frames_two] == ["enter"] and [e.data["event"] for e in frames_one] == ["exit"]
        assert all(e.topic in ("geofence.enter", "geofence.exit") and e.channels == (f"fleet:{track.org}",)
                   for e in frames_one + frames_two)  # fmt: skip

        # two points at once on two processes: one enter, never two, whichever judged first
        await asyncio.gather(track.send(one, track.point(4, INSIDE)), track.send(two, track.point(5, INSIDE)))
        enters = [kind for kind, at in await stored(one, fence) if at > track.point(3, {})["ts"]]
        assert enters == ["enter"]
        # both processes resend everything: nothing new
        everything = [track.point(s, INSIDE if s in (2, 4, 5) else OUTSIDE) for s in range(1, 6)]
        assert await track.send(two, *everything) == [] and await track.send(one, *everything) == []
        assert len(await stored(one, fence)) == 3
    finally:
        await two.close()


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_the_state_survives_a_restart_between_two_points(app: Any, settings: Settings) -> None:
    first = Services.open(settings)
    track = Track(first)
    fence = await track.fence(first)
    await track.send(first, track.point(1, OUTSIDE))
    assert [e["event"] for e in await track.send(first, track.point(2, INSIDE))] == ["enter"]
    await first.close()

    restarted = Services.open(settings)
    try:
        assert await track.send(restarted, track.point(2, INSIDE)) == [], "a resent point after the restart"
        assert [e["event"] for e in await track.send(restarted, track.point(3, OUTSIDE))] == ["exit"]
        assert [kind for kind, _ in await stored(restarted, fence)] == ["enter", "exit"]
    finally:
        await restarted.close()
