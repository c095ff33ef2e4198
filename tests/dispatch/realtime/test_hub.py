"""The hub against the real Redis: live the moment `subscribe` returns, frames decoded once per
process, replay-then-live without gap or duplicate (`follow`)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from dispatch.core import jsonutil
from dispatch.core.events import Event
from dispatch.core.storage import Stores, open_stores
from dispatch.realtime.frames import Frame
from dispatch.realtime.hub import REPLAY_PAGE, Hub, live_message, pubsub_key
from dispatch.settings import Settings

pytestmark = pytest.mark.both_redis


class Recorder:
    """A subscriber that keeps every frame it gets."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.changed = asyncio.Event()

    @property
    def seen(self) -> list[Any]:
        """The `n` of every frame, in order (None for frames without one)."""
        return [frame.data.get("n") for frame in self.frames]

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.changed.set()

    async def until(self, n: int) -> None:
        """Wait until frame `n` arrived."""
        await self._wait(lambda: n in self.seen)

    async def got(self, count: int) -> None:
        """Wait until `count` frames arrived."""
        await self._wait(lambda: len(self.frames) >= count)

    async def _wait(self, done: Any) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), 30)


class Console(Recorder):
    """A subscriber with an outbox of `limit` frames that the peer drains whenever the hub asks for room.

    `pause` makes each request for room take that long, so live frames arrive while a replay runs.
    """

    def __init__(self, limit: int = 500, pause: float = 0.0) -> None:
        super().__init__()
        self.limit = limit
        self.pause = pause
        self.queued = 0
        self.most_queued = 0
        self.rooms: list[int] = []
        self.asked = asyncio.Event()  # set once the hub asked for room
        self.gate: asyncio.Event | None = None  # when set up, room() waits for it

    def put(self, frame: Frame) -> None:
        self.queued += 1
        self.most_queued = max(self.most_queued, self.queued)
        self.deliver(frame)

    async def room(self, size: int) -> bool:
        self.rooms.append(size)
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.pause)
        self.queued = 0  # the peer read everything
        return True


def frame(channel: str, n: int) -> tuple[str, dict[str, Any]]:
    return channel, {"type": "probe", "channel": channel, "n": n}


def fleet() -> str:
    return f"fleet:{uuid.uuid4().hex[:24]}"


async def publish_range(hub: Hub, channel: str, numbers: range, pause: float = 0.0) -> list[str]:
    offsets = []
    for n in numbers:
        offsets += await hub.publish_many([frame(channel, n)])
        if pause:
            await asyncio.sleep(pause)
    return offsets


@pytest.mark.gen_test(timeout=60)
async def test_a_second_subscriber_waits_for_the_subscription_on_its_way(stores: Stores, settings: Settings) -> None:
    # A hub on a client of its own: its pub/sub connection is still being opened when the second
    # subscriber comes, while the shared client publishes on a connection that is already open.
    own = open_stores(settings)
    hub, publisher = Hub(own.redis), Hub(stores.redis)
    channel = fleet()
    first, second = Recorder(), Recorder()
    try:
        subscribing = asyncio.get_running_loop().create_task(hub.subscribe(first, channel))
        await asyncio.sleep(0)  # the first subscription is on its way: connecting, then SUBSCRIBE
        await hub.subscribe(second, channel)
        await publisher.publish_many([frame(channel, 1)])  # after `subscribe` returned: must be delivered
        await subscribing
        await publisher.publish_many([frame(channel, 2)])
        await second.until(2)
        await first.until(2)
        assert second.seen == [1, 2] and first.seen == [1, 2]
    finally:
        await hub.close()
        await own.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_channel_followed_again_right_after_leaving_is_live(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    gone, back = Recorder(), Recorder()
    try:
        await hub.subscribe(gone, channel)
        leaving = asyncio.get_running_loop().create_task(hub.unsubscribe(gone, [channel]))
        await asyncio.sleep(0)  # UNSUBSCRIBE on its way
        await hub.subscribe(back, channel)
        await leaving
        await hub.publish_many([frame(channel, 1)])
        await back.until(1)
        assert back.seen == [1] and gone.seen == []
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_message_is_decoded_once_per_process_into_the_frame_clients_get(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    first, second = Recorder(), Recorder()
    try:
        await hub.subscribe(first, channel)
        await hub.subscribe(second, channel)
        fields = {"type": "location", "channel": channel, "lat": 55.7512345, "lon": 37.6, "speed": None}
        [offset] = await hub.publish_many([(channel, fields)])
        await first.got(1)
        await second.got(1)
        got = first.frames[0]
        assert second.frames[0] is got  # one decode, one Frame shared by every local socket
        assert (got.type, got.channel, got.offset, dict(got.data)) == ("location", channel, offset, fields)
        assert got.wire == b'{"offset":"' + offset.encode() + b'",' + jsonutil.dumps(fields)[1:]
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_history_gives_the_frames_clients_got_live_after_an_offset(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    live = Recorder()
    try:
        await hub.subscribe(live, channel)
        offsets = await publish_range(hub, channel, range(5))
        await live.until(4)
        kept = await hub.history(channel, "0-0")
        assert [f.wire for f in kept] == [f.wire for f in live.frames]
        assert [f.offset for f in kept] == offsets
        assert [f.data["n"] for f in await hub.history(channel, offsets[1], limit=2)] == [2, 3]
        assert await hub.last_offset(channel) == offsets[-1]
        assert await hub.last_offset(fleet()) is None
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=90)
async def test_follow_replays_then_goes_live_without_gap_or_duplicate(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    kept = REPLAY_PAGE * 2 + 17  # several pages
    offsets = await publish_range(hub, channel, range(kept))
    console = Console(limit=100, pause=0.02)  # slow enough that live frames come while the replay runs
    try:
        publishing = asyncio.get_running_loop().create_task(
            publish_range(hub, channel, range(kept, kept + 60), pause=0.005)
        )
        await hub.follow(console, channel, offsets[9], console)
        await publishing
        await console.until(kept + 59)
        assert (
            console.frames[0].type == "subscribed"
            and console.frames[0].wire == Frame.own({"type": "subscribed", "channel": channel}).wire
        )
        assert console.seen[1:] == list(range(10, kept + 60))  # from after `since`, every frame once, in order
        assert console.most_queued <= console.limit  # pages waited for room: nothing had to be dropped
        assert set(console.rooms) == {100}
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_replayed_frame_still_on_its_way_live_is_not_sent_twice(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    offsets = await publish_range(hub, channel, range(5))
    console = Console()
    try:
        await hub.follow(console, channel, "0-0", console)
        assert console.seen[1:] == [0, 1, 2, 3, 4]
        # Frame 4's pub/sub copy reaches the process only now (it was published while the replay read it).
        late = jsonutil.dumps([offsets[4], {"type": "probe", "channel": channel, "n": 4}])
        await hub.publish_raw(channel, late)
        await hub.publish_many([frame(channel, 5)])
        await console.until(5)
        assert console.seen[1:] == [0, 1, 2, 3, 4, 5]
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_follow_without_since_says_subscribed_then_delivers_live_frames(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    await publish_range(hub, channel, range(3))  # kept, but not asked for
    console = Console()
    try:
        await hub.follow(console, channel, None, console)
        await hub.publish_many([frame(channel, 3)])
        await console.until(3)
        assert [f.type for f in console.frames] == ["subscribed", "probe"] and console.seen[1:] == [3]
        assert console.rooms == [] and hub.follows(console, channel)
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_replay_ends_when_the_subscription_does_and_nothing_follows(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    await publish_range(hub, channel, range(REPLAY_PAGE + 10))
    console = Console(limit=REPLAY_PAGE)
    console.gate = asyncio.Event()
    try:
        following = asyncio.get_running_loop().create_task(hub.follow(console, channel, "0-0", console))
        await asyncio.wait_for(console.asked.wait(), 10)  # the replay waits for room for its first page
        await hub.publish_many([frame(channel, 999)])  # live, held back behind the replay
        await hub.unsubscribe(console, [channel])  # e.g. access revoked
        console.gate.set()
        await asyncio.wait_for(following, 10)
        await hub.publish_many([frame(channel, 1000)])
        await asyncio.sleep(0.2)
        assert [f.type for f in console.frames] == ["subscribed"]  # no page, no held frame, nothing live
        assert not hub.follows(console, channel) and channel not in hub.local
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_batch_reaches_each_process_as_one_message_per_channel_with_its_frames_in_order(
    stores: Stores,
) -> None:
    hub = Hub(stores.redis)
    first, second = fleet(), fleet()
    socket = Recorder()
    listener = stores.redis.pubsub()  # what another process would read: the raw pub/sub messages
    try:
        await hub.subscribe(socket, first)
        await hub.subscribe(socket, second)
        if hub.sharded:
            await listener.ssubscribe(pubsub_key(first))
        else:
            await listener.subscribe(pubsub_key(first))
        offsets = await hub.publish_many([frame(first, 1), frame(second, 2), frame(first, 3), frame(first, 4)])
        await socket.got(4)
        by_channel = {
            channel: [f.data["n"] for f in socket.frames if f.channel == channel] for channel in (first, second)
        }
        assert by_channel == {first: [1, 3, 4], second: [2]}  # in order within each channel
        assert sorted(f.offset for f in socket.frames) == sorted(offsets)  # each frame keeps its own offset
        raw = []
        for _ in range(50):
            message = await (listener.get_sharded_message if hub.sharded else listener.get_message)(timeout=0.1)
            if message is not None and message["type"] in ("message", "smessage"):
                raw.append(jsonutil.loads(message["data"]))
        assert raw == [[[offsets[0], dict(frame(first, 1)[1])], [offsets[2], dict(frame(first, 3)[1])],
                        [offsets[3], dict(frame(first, 4)[1])]]]  # fmt: skip
    finally:
        await listener.aclose()
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_live_only_message_is_delivered_without_an_offset_and_never_kept(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = f"user:{uuid.uuid4().hex[:24]}"
    socket = Recorder()
    try:
        await hub.subscribe(socket, channel)
        await hub.publish_raw(channel, live_message(channel, {"type": "session_ended", "channel": channel, "n": 1})[1])
        await socket.until(1)
        assert (socket.frames[0].type, socket.frames[0].offset) == ("session_ended", None)
        assert await hub.history(channel, "0-0") == []
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_malformed_message_is_dropped_and_delivery_goes_on(stores: Stores) -> None:
    hub = Hub(stores.redis)
    channel = fleet()
    socket = Recorder()
    try:
        await hub.subscribe(socket, channel)
        junk_messages = (b"not json", b'{"offset":"0-0","type":"probe","n":0}', b'["1-0", 5]', b"[1, {}]", b"[]")
        for junk in (*junk_messages, b'[["1-0", {"type": "probe", "n": 0}], ["2-0", 5]]'):
            await hub.publish_raw(channel, junk)
        await hub.publish_many([frame(channel, 1)])
        await socket.until(1)
        assert socket.seen == [1]
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=60)
async def test_an_order_event_also_reaches_its_driver_unless_the_driver_made_the_change(stores: Stores) -> None:
    hub = Hub(stores.redis)
    org, order_id, driver = fleet(), uuid.uuid4().hex[:24], uuid.uuid4().hex[:24]
    manager_view, driver_view = Recorder(), Recorder()
    try:
        await hub.subscribe(manager_view, org)
        await hub.subscribe(driver_view, f"user:{driver}")
        order = {"id": order_id, "driver_id": driver}
        await hub.publish_event(Event("order", (org,), {"order": order, "actor_id": "someone", "n": 1}))
        await hub.publish_event(Event("order", (org,), {"order": order, "actor_id": driver, "n": 2}))
        await manager_view.until(2)
        await driver_view.until(1)
        await asyncio.sleep(0.1)
        assert manager_view.seen == [1, 2] and driver_view.seen == [1]
        assert driver_view.frames[0].data["channel"] == f"user:{driver}" and driver_view.frames[0].type == "order"
    finally:
        await hub.close()
