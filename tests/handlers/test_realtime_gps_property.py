"""Property: whatever a driver app sends — live points, offline buffers, resends, over one or
several connections in turn — every acked point is stored, and stored exactly once.

The client keeps its frames in flight (it does not wait for one ack before sending the next)
and checks the ack contract as an app would: an ack names the highest seq of the oldest frame
still unconfirmed, or of a later, higher one that covers it, and arrives only once those points are stored.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url

SEQ = st.integers(min_value=0, max_value=60)
FRAME = st.one_of(
    st.tuples(st.just("live"), SEQ),
    st.tuples(st.just("batch"), st.lists(SEQ, min_size=1, max_size=12)),
    st.tuples(st.just("resend"), st.integers(min_value=0, max_value=20)),
)
CONNECTIONS = st.lists(st.lists(FRAME, min_size=1, max_size=6), min_size=1, max_size=3)


@dataclass
class Driver:
    """One driver with a vehicle; each example uses its own range of seqs."""

    base_url: str
    token: str
    driver_id: ObjectId
    db: Any
    bases: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000, 1_000_000))

    async def stored(self, low: int, high: int) -> list[int]:
        """The seqs of this driver's stored points in [low, high], one entry per stored document."""
        cursor = self.db["gps_points"].find(
            {"driver_id": self.driver_id, "seq": {"$gte": low, "$lte": high}}, {"seq": 1}
        )
        return [doc["seq"] async for doc in cursor]


@pytest.fixture
def driver(app: Any, api: Api, base_url: str, io_loop: Any) -> Driver:
    async def build() -> Driver:
        crew = (await fleet(app, api))["drivers"][0]
        return Driver(base_url, crew["token"], crew["user"]["_id"], app.settings["services"].db)

    return io_loop.run_sync(build, timeout=60)


def confirm(outstanding: list[tuple[int, set[int]]], seq: int) -> set[int]:
    """The points an ack confirms: the oldest outstanding frames up to the first one whose highest
    seq it names; the frames before it, all lower, were covered by it (acks are cumulative per frame)."""
    highest = [h for h, _ in outstanding]
    assert seq in highest, f"ack {seq} matches no outstanding frame: {highest}"
    last = highest.index(seq)
    assert all(h < seq for h in highest[:last]), f"ack {seq} overtook a higher frame: {highest}"
    confirmed = set().union(*(points for _, points in outstanding[: last + 1]))
    del outstanding[: last + 1]
    return confirmed


async def run_connection(driver: Driver, frames: list[tuple[str, Any]], base: int, sent: list[list[int]]) -> set[int]:
    """Send the frames on a fresh connection without waiting; check every ack; the seqs acked."""
    socket = await WsClient.connect(ws_url(driver.base_url, "/ws/driver"), driver.token)
    await socket.recv_type("ready")
    outstanding: list[tuple[int, set[int]]] = []
    for kind, arg in frames:
        if kind == "resend":  # a frame sent before, maybe on an earlier connection
            seqs = sent[arg % len(sent)] if sent else [base]
        else:
            seqs = [base + s for s in ([arg] if kind == "live" else arg)]
        sent.append(seqs)
        if len(seqs) == 1:
            await socket.send({"type": "location", **point(seqs[0])})
        else:
            await socket.send({"type": "locations", "points": [point(s) for s in seqs]})
        outstanding.append((max(seqs), set(seqs)))
    acked: set[int] = set()
    while outstanding:
        seq = (await socket.recv_type("ack", timeout=5))["seq"]
        confirmed = confirm(outstanding, seq)
        missing = confirmed - set(await driver.stored(min(confirmed), max(confirmed)))
        assert not missing, f"acked {seq} before storing {sorted(missing)}"
        acked |= confirmed
    socket.close()
    return acked


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(connections=CONNECTIONS)
def test_every_acked_point_is_stored_exactly_once(
    driver: Driver, io_loop: Any, connections: list[list[tuple[str, Any]]]
) -> None:
    base = next(driver.bases)

    async def scenario() -> None:
        sent: list[list[int]] = []
        acked: set[int] = set()
        for frames in connections:  # the app reconnects: the same driver, one connection after another
            acked |= await run_connection(driver, frames, base, sent)
        stored = await driver.stored(base, base + 999_999)
        assert acked == {s for seqs in sent for s in seqs}  # every frame was acked
        assert sorted(stored) == sorted(acked)  # each acked point stored, none twice

    io_loop.run_sync(scenario, timeout=60)
