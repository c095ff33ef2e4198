"""The hub's subscriptions against the real Redis: live the moment `subscribe` returns."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from dispatch.realtime.frames import Frame
from dispatch.realtime.hub import Hub


class Recorder:
    """A subscriber that keeps the `n` of every frame it gets."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.changed = asyncio.Event()

    def deliver(self, frame: Frame) -> None:
        self.seen.append(frame.data["n"])
        self.changed.set()

    async def until(self, n: int, timeout: float = 30) -> None:
        """Wait until frame `n` arrived."""
        async def wait() -> None:
            while n not in self.seen:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)


def frame(channel: str, n: int) -> tuple[str, dict[str, Any]]:
    return channel, {"type": "probe", "channel": channel, "n": n}


@pytest.mark.gen_test(timeout=60)
async def test_a_second_subscriber_waits_for_the_subscription_on_its_way(app: Any) -> None:
    # A hub on a client of its own: its pub/sub connection is still being opened when the second
    # subscriber comes, while the app's client publishes on a connection that is already open.
    own = aioredis.Redis.from_url(app.settings["config"].redis_url)
    hub, publisher = Hub(own), Hub(app.settings["redis"])
    channel = f"fleet:{uuid.uuid4().hex[:24]}"
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
        await own.aclose()


@pytest.mark.gen_test(timeout=60)
async def test_a_channel_followed_again_right_after_leaving_is_live(app: Any) -> None:
    hub = Hub(app.settings["redis"])
    channel = f"fleet:{uuid.uuid4().hex[:24]}"
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
