"""A socket's outbox: in order, drop-oldest-location under pressure, stuck sockets closed, paced replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatch.core import jsonutil, metrics
from dispatch.realtime.frames import Frame
from dispatch.realtime.outbox import BURST, Outbox


class Peer:
    """The socket end of an outbox: records what was sent; `stalled` writes never complete."""

    def __init__(self, stalled: bool = False, broken: bool = False) -> None:
        self.sent: list[bytes] = []
        self.stalled = stalled
        self.broken = broken
        self.stuck: list[str] = []
        self.writing: list[asyncio.Future[None]] = []

    def send(self, wire: bytes) -> asyncio.Future[None]:
        if self.broken:
            raise ConnectionError("the socket is closed")
        self.sent.append(wire)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.stalled:
            self.writing.append(done)
        else:
            done.set_result(None)
        return done

    def unstall(self) -> None:
        """Complete the writes waiting, and every later one at once."""
        self.stalled = False
        for done in self.writing:
            done.set_result(None)

    def on_stuck(self, reason: str) -> None:
        self.stuck.append(reason)

    def numbers(self) -> list[Any]:
        """The `n` (or an ack's `seq`) of every frame sent, in order."""
        return [jsonutil.loads(wire).get("n", jsonutil.loads(wire).get("seq")) for wire in self.sent]


def location(n: int, channel: str = "fleet:a") -> Frame:
    return Frame.carried(channel, f"{n}-0", {"type": "location", "channel": channel, "n": n})


def order(n: int, channel: str = "fleet:a") -> Frame:
    return Frame.carried(channel, f"{n}-0", {"type": "order", "channel": channel, "n": n})


async def shut(outbox: Outbox) -> None:
    """Close an outbox and let its write loop end (no task left pending after the test)."""
    outbox.close()
    await asyncio.sleep(0.01)


async def drained(peer: Peer, count: int) -> None:
    """Let the write loop run until the peer got `count` frames."""
    for _ in range(100):
        if len(peer.sent) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the peer got {len(peer.sent)} frames, not {count}")


@pytest.mark.gen_test
async def test_frames_go_out_in_order_as_their_wire_bytes() -> None:
    peer = Peer()
    outbox = Outbox(peer.send, peer.on_stuck)
    frames = [location(1), order(2), Frame.own({"type": "ack", "seq": 3}), location(4)]
    for frame in frames:
        outbox.put(frame)
    await drained(peer, 4)
    assert peer.sent == [frame.wire for frame in frames]
    await shut(outbox)


@pytest.mark.gen_test
async def test_a_socket_keeping_up_gets_each_frame_at_once_and_a_slow_one_gets_them_in_order_later() -> None:
    peer = Peer()
    outbox = Outbox(peer.send, peer.on_stuck)
    outbox.put(location(1))
    assert peer.numbers() == [1]  # no loop turn between the frame and the socket
    peer.stalled = True
    outbox.put(location(2))  # its write stays in flight: what comes next waits behind it
    outbox.put(order(3))
    outbox.put(location(4))
    assert peer.numbers() == [1, 2]
    peer.unstall()
    await drained(peer, 4)
    assert peer.numbers() == [1, 2, 3, 4]
    await shut(outbox)


@pytest.mark.gen_test
async def test_a_full_outbox_drops_its_oldest_location_never_a_status_frame() -> None:
    peer = Peer(stalled=True)
    outbox = Outbox(peer.send, peer.on_stuck, kind="unit", limit=3)
    dropped_before = metrics.FRAMES_DROPPED.labels("unit")._value.get()
    outbox.put(order(0))  # with the socket, its write in flight: the next frames queue
    for frame in (order(1), location(2), location(3), order(4), order(5)):
        outbox.put(frame)
    assert outbox.dropped == 2 and metrics.FRAMES_DROPPED.labels("unit")._value.get() == dropped_before + 2
    peer.unstall()
    await drained(peer, 4)
    assert peer.numbers() == [0, 1, 4, 5]
    assert peer.stuck == [] and not outbox.closed
    await shut(outbox)


@pytest.mark.gen_test
async def test_an_outbox_overflowing_with_undroppable_frames_is_stuck() -> None:
    peer = Peer(stalled=True)
    outbox = Outbox(peer.send, peer.on_stuck, limit=2)
    for n in range(6):  # one with the socket, then twice the limit of frames that may not be dropped, and one more
        outbox.put(order(n))
    assert outbox.closed and peer.stuck == ["queue full of undroppable frames"]
    outbox.put(order(9))
    peer.unstall()
    await asyncio.sleep(0.05)
    assert peer.numbers() == [0]  # a closed outbox sends nothing more
    await shut(outbox)


@pytest.mark.gen_test
async def test_a_write_that_does_not_complete_in_time_makes_the_socket_stuck() -> None:
    peer = Peer(stalled=True)
    outbox = Outbox(peer.send, peer.on_stuck, stuck_after=0.1)
    outbox.put(location(1))
    for _ in range(100):
        if peer.stuck:
            break
        await asyncio.sleep(0.01)
    assert len(peer.stuck) == 1 and peer.stuck[0].startswith("a write did not complete") and outbox.closed
    await shut(outbox)


@pytest.mark.gen_test
async def test_a_send_that_fails_at_once_closes_the_outbox() -> None:
    peer = Peer(broken=True)
    outbox = Outbox(peer.send, peer.on_stuck)
    outbox.put(location(1))
    for _ in range(100):
        if outbox.closed:
            break
        await asyncio.sleep(0.01)
    assert outbox.closed and peer.stuck == []  # the socket is gone: on_close cleans up, nothing to report
    await shut(outbox)


@pytest.mark.gen_test
async def test_room_waits_for_frames_to_leave_and_says_when_the_outbox_closed() -> None:
    peer = Peer(stalled=True)
    outbox = Outbox(peer.send, peer.on_stuck, limit=100)
    for n in range(100):
        outbox.put(location(n))
    await drained(peer, 1)  # the first frame is with the socket, its write pending; the rest waits
    waiting = asyncio.get_running_loop().create_task(outbox.room(BURST + 1))  # 99 queued + 65 > 100
    await asyncio.sleep(0.05)
    assert not waiting.done()
    peer.unstall()
    assert await asyncio.wait_for(waiting, 5) is True
    await drained(peer, 100)
    assert outbox.dropped == 0
    outbox.close()
    assert await asyncio.wait_for(outbox.room(1), 5) is False
    await shut(outbox)


@pytest.mark.gen_test
async def test_discarding_a_channel_drops_only_its_queued_frames() -> None:
    peer = Peer(stalled=True)
    outbox = Outbox(peer.send, peer.on_stuck)
    outbox.put(Frame.own({"type": "ack", "seq": 0}))  # with the socket, its write in flight: the next frames queue
    for frame in (
        location(1, "fleet:a"),
        location(2, "vehicle:b"),
        Frame.own({"type": "ack", "seq": 3}),
        order(4, "fleet:a"),
        order(5, "vehicle:b"),
    ):
        outbox.put(frame)
    outbox.discard_channel("fleet:a")
    peer.unstall()
    await drained(peer, 4)
    await asyncio.sleep(0.02)
    assert peer.numbers() == [0, 2, 3, 5]
    await shut(outbox)
