"""GPS ingest against the real MongoDB-wire server and Redis: stored once, acked after storing,
published on the driver's channels, and a failed history write kept and retried."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core import live
from dispatch.core.storage import Stores
from dispatch.realtime.frames import Frame
from dispatch.realtime.hub import Hub, stream_key
from dispatch.realtime.ingest import DriverContext, Ingest, Submission
from dispatch.settings import Settings
from models.vehicles import GPS_POINTS, GpsHistory

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


class Channel:
    """What one channel carried, as a socket of this process gets it."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)


class Acks:
    """A driver socket's acks."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def __call__(self, seq: int) -> None:
        self.seqs.append(seq)


class Rig:
    """An ingest and a hub on the test's stores, a driver with a vehicle on an order, and its channels."""

    def __init__(self, stores: Stores, settings: Settings) -> None:
        self.db = stores.mongo[settings.mongodb_db]
        self.redis = stores.redis
        self.hub = Hub(stores.redis)
        self.ingest = Ingest(self.db, stores.redis, self.hub)
        self.context = DriverContext(str(ObjectId()), str(ObjectId()), str(ObjectId()), str(ObjectId()))
        self.channels = {
            name: Channel()
            for name in (
                f"fleet:{self.context.organization}",
                f"vehicle:{self.context.vehicle_id}",
                f"order:{self.context.order_id}",
            )
        }

    async def follow_channels(self) -> None:
        for name, channel in self.channels.items():
            await self.hub.subscribe(channel, name)

    def published(self) -> dict[str, list[int]]:
        """The seq-ordered `ts` seconds of the location frames each channel carried (a point's id here)."""
        return {name: [_second(f.data["ts"]) for f in channel.frames] for name, channel in self.channels.items()}

    async def stored(self) -> list[dict[str, Any]]:
        return await self.db[GPS_POINTS].find({"driver_id": ObjectId(self.context.driver_id)}).sort("seq").to_list()

    async def close(self) -> None:
        await self.ingest.close()
        await self.hub.close()


def _second(ts: str) -> int:
    return int((datetime.fromisoformat(ts.replace("Z", "+00:00")) - START).total_seconds())


def points(*seqs: int) -> list[dict[str, Any]]:
    """Validated points (as `parse_points` makes them); point `seq` is at START + seq seconds."""
    return [
        {
            "seq": seq,
            "lat": 55.75 + seq / 1000,
            "lon": 37.61,
            "ts": START + timedelta(seconds=seq),
            "speed": 10.0,
            "heading": None,
            "accuracy": 5.0,
        }
        for seq in seqs
    ]


async def until(check: Any, what: str, within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def rig(io_loop: Any, stores: Stores, settings: Settings) -> Iterator[Rig]:
    made = Rig(stores, settings)
    io_loop.run_sync(made.follow_channels)
    yield made
    io_loop.run_sync(made.close)


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_points_are_stored_as_the_history_document_then_acked_and_published(rig: Rig) -> None:
    acks = Acks()
    sent = points(1, 2)
    rig.ingest.submit(Submission(rig.context, sent, acks))
    await until(lambda: acks.seqs, "the ack")
    assert acks.seqs == [2]
    c = rig.context
    assert await rig.stored() == [GpsHistory.document(c.driver_id, c.vehicle_id, c.order_id, p) for p in sent]
    await until(lambda: all(len(ch.frames) == 2 for ch in rig.channels.values()), "the location frames")
    assert rig.published() == {name: [1, 2] for name in rig.channels}
    location = rig.channels[f"vehicle:{c.vehicle_id}"].frames[-1]
    assert (location.type, location.data["driver_id"], location.data["lat"]) == ("location", c.driver_id, 55.752)
    position = await live.positions(rig.redis, [c.vehicle_id])
    assert position[c.vehicle_id] is not None  # the live position the REST reads use


@pytest.mark.gen_test(timeout=60)
async def test_a_resent_point_is_stored_once_and_acked_again(rig: Rig) -> None:
    first, again = Acks(), Acks()
    rig.ingest.submit(Submission(rig.context, points(1, 2), first))
    await until(lambda: first.seqs, "the first ack")
    rig.ingest.submit(Submission(rig.context, points(2, 3), again))  # the app never saw the ack of 2
    await until(lambda: again.seqs, "the second ack")
    assert again.seqs == [3] and [doc["seq"] for doc in await rig.stored()] == [1, 2, 3]


@pytest.mark.gen_test(timeout=60)
async def test_points_older_than_a_live_one_are_stored_but_not_published(rig: Rig) -> None:
    acks = Acks()
    rig.ingest.submit(Submission(rig.context, points(9), acks))
    rig.ingest.submit(Submission(rig.context, points(3, 4), acks, live_above=9))  # an offline buffer, sent late
    await until(lambda: len(acks.seqs) == 2, "both acks")
    assert acks.seqs == [9, 4]  # the buffer gets its own ack: a lower seq is not covered by 9
    assert [doc["seq"] for doc in await rig.stored()] == [3, 4, 9]
    await asyncio.sleep(0.2)
    assert rig.published() == {name: [9] for name in rig.channels}


@pytest.mark.gen_test(timeout=60)
async def test_acks_of_one_socket_are_folded_into_the_highest(rig: Rig) -> None:
    acks = Acks()
    for seq in (1, 2, 3):  # faster than they are stored: one write, one ack
        rig.ingest.submit(Submission(rig.context, points(seq), acks))
    await until(lambda: acks.seqs, "the ack")
    await asyncio.sleep(0.2)
    assert acks.seqs == [3] and len(await rig.stored()) == 3


@pytest.mark.gen_test(timeout=60)
async def test_a_failed_history_write_is_kept_retried_and_published_again_before_the_ack(rig: Rig) -> None:
    # The history refuses every document, and the fleet channel's stream key is not a stream,
    # so the publication fails too (the fleet frame comes first: the script fails before any PUBLISH).
    await rig.db.drop_collection(GPS_POINTS)
    await rig.db.create_collection(GPS_POINTS, validator={"$jsonSchema": {"required": ["never_there"]}})
    broken_stream = stream_key(f"fleet:{rig.context.organization}")
    await rig.redis.set(broken_stream, "not a stream")
    acks = Acks()
    submission = Submission(rig.context, points(1, 2), acks)
    rig.ingest.submit(submission)
    await until(lambda: submission.attempt >= 2, "two failed history writes")
    assert acks.seqs == [] and await rig.stored() == []  # nothing acked that is not stored
    assert rig.published() == {name: [] for name in rig.channels}

    await rig.db.drop_collection(GPS_POINTS)  # the store accepts writes again
    await rig.redis.delete(broken_stream)
    await until(lambda: acks.seqs, "the ack after the retry")
    assert acks.seqs == [2] and [doc["seq"] for doc in await rig.stored()] == [1, 2]
    await until(lambda: all(ch.frames for ch in rig.channels.values()), "the publication retried with the write")
    await asyncio.sleep(0.3)
    assert rig.published() == {name: [1, 2] for name in rig.channels}  # once each, in order


@pytest.mark.gen_test(timeout=60)
async def test_close_writes_the_points_still_pending(rig: Rig) -> None:
    acks = Acks()
    rig.ingest.submit(Submission(rig.context, points(1, 2, 3), acks))
    await rig.ingest.close()
    assert [doc["seq"] for doc in await rig.stored()] == [1, 2, 3] and acks.seqs == [3]
