"""A bounded outgoing queue per socket: a slow reader never slows anyone else.

When the queue is full the oldest location frame is dropped (a newer position supersedes
it); status frames (orders, waybills, presence, notifications) are never dropped. A socket
whose queue still overflows, or whose pending write does not complete in time, is stuck
and gets closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from dispatch.core import metrics
from dispatch.realtime.frames import Frame

log = logging.getLogger("dispatch.realtime")

QUEUE_LIMIT = 500
STUCK_AFTER = 15.0
BURST = 64  # frames handed to the socket before waiting for them to be written


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _failed(future: asyncio.Future[Any]) -> bool:
    """Whether a finished write failed (the socket closed under it)."""
    return future.cancelled() or future.exception() is not None


class Outbox:
    """Frames waiting for one socket, written in order with flow control."""

    def __init__(
        self,
        send: Callable[[bytes], asyncio.Future[None]],  # a write's future, done once the socket took it
        on_stuck: Callable[[str], None],
        kind: str = "",
        limit: int = QUEUE_LIMIT,
        stuck_after: float = STUCK_AFTER,
    ) -> None:
        self._send = send
        self._dropped_metric = metrics.FRAMES_DROPPED.labels(kind)
        self._on_stuck = on_stuck
        self.limit = limit
        self.stuck_after = stuck_after
        self._queue: deque[Frame] = deque()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()  # set whenever frames leave the queue (or it closes)
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[Any] | None = None  # the last write handed to the socket
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame) -> None:
        """Write a frame now when nothing waits before it, else queue it; under pressure drop the oldest
        location frame instead."""
        if self.closed:
            return
        if not self._queue and (self._writing is None or self._writing.done()):
            self._write_now(frame)
            return
        full = len(self._queue) >= self.limit and not self._drop_oldest_location()
        if full and len(self._queue) >= 2 * self.limit:
            self.close()
            self._on_stuck("queue full of undroppable frames")
            return
        self._queue.append(frame)
        self._wake()

    def _wake(self) -> None:
        self._ready.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_loop())

    def _write_now(self, frame: Frame) -> None:
        """The common case, a socket keeping up: the frame goes to the socket at once, with no task switch.

        Most writes finish at once (the kernel takes the bytes); one that does not is watched by the
        write loop, which holds later frames back until it finishes (or the socket counts as stuck).
        """
        try:
            write = self._send(frame.wire)
        except Exception:  # noqa: BLE001 - a send that fails at once: the socket is closed
            self.close()
            return
        if write.done():
            if _failed(write):
                self.close()
            return
        write.add_done_callback(_consume)
        self._writing = write
        self._wake()

    def _drop_oldest_location(self) -> bool:
        for index, frame in enumerate(self._queue):
            if frame.droppable:
                del self._queue[index]
                self.dropped += 1
                self._dropped_metric.inc()
                return True
        return False

    async def room(self, size: int) -> bool:
        """Wait until `size` more frames fit without dropping any; False once the outbox is closed."""
        while not self.closed and len(self._queue) + size > self.limit:
            self._space.clear()
            await self._space.wait()
        return not self.closed

    def discard_channel(self, channel: str) -> None:
        """Drop the queued frames of one channel (a subscription that ended)."""
        self._queue = deque(frame for frame in self._queue if frame.channel != channel)

    async def _write_loop(self) -> None:
        while not self.closed:
            writing = self._writing
            if writing is not None and not writing.done():
                # Wait without cancelling the write itself: closing the socket ends it.
                done, _ = await asyncio.wait([writing], timeout=self.stuck_after)
                if not done:
                    self.close()
                    self._on_stuck(f"a write did not complete in {self.stuck_after:.0f} s")
                continue
            if writing is not None and _failed(writing):
                self.close()
                return
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            self._writing = self._write_burst()
            self._space.set()
            if self._writing is None:  # the socket closed under us; on_close cleans up
                self.close()
                return

    def _write_burst(self) -> asyncio.Future[Any] | None:
        """Hand up to BURST queued frames to the socket; the future of the last (writes finish in order).

        Waiting once per burst instead of once per frame keeps a busy console from needing
        several event-loop turns per frame; the socket's own buffer holds at most one burst.
        """
        write = None
        for _ in range(min(BURST, len(self._queue))):
            try:
                write = self._send(self._queue.popleft().wire)
            except Exception:  # noqa: BLE001 - a send that fails at once: the socket is closed
                return None
            write.add_done_callback(_consume)
        return write

    def close(self) -> None:
        """Stop writing; frames still queued are discarded."""
        self.closed = True
        self._queue.clear()
        self._ready.set()
        self._space.set()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
