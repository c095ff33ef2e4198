"""GPS ingest: points from every driver socket of this process, written in batches.

Two writer tasks per process each take whatever points arrived since their last write: one
inserts them into the GPS history (one `insert_many`), the other updates the live positions
and publishes them (one Redis pipeline). They run apart, so consoles see a point as soon as
Redis has it, not when the (slower, journaled) history write of the batch before it ends, and
history batches grow while MongoDB is busy. Acks go out only once MongoDB has the points and
their publication was tried; a failed history write keeps the batch and retries it (publishing
again what did not go out), so an acked point is a stored point.
A point's `_id` is `<driver_id>:<seq>`, so a resent point is never stored twice.
Once a batch is stored, its watchers (the GPS watch: ETAs, arrivals, geofences) are told which
vehicles moved; they do their work in their own task, never on this path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from pymongo import WriteConcern
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import live
from dispatch.core.storage import REDIS_FAILURES
from dispatch.core.timeutil import isoformat
from dispatch.realtime.hub import Hub
from models.vehicles import GpsHistory

log = logging.getLogger("dispatch.realtime")

# Told of a vehicle's newly stored points: (vehicle_id, organization, driver_id, order_id, points); must not block.
Watcher = Callable[[str, str | None, str, str | None, list[dict[str, Any]]], None]

RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
# Under load, a history write starts at most this often (seconds): points arriving meanwhile join it. A
# journaled insert costs the database about as much per call as for tens of documents, so a stream of
# small writes would spend the store's CPU on calls instead of points. An idle stream's point is
# written at once; under load an ack waits this much longer at most.
HISTORY_EVERY = 0.05
# The same for the Redis publication, shorter: consoles wait for it.
PUBLISH_EVERY = 0.01
DURABLE = WriteConcern(w="majority", j=True)
FLUSH_TIMEOUT = 4.0  # seconds a shutdown waits for buffered points to be written


@dataclass
class DriverContext:
    """What a driver socket streams for: the driver, their vehicle, its organization and current order."""

    driver_id: str
    vehicle_id: str | None = None
    organization: str | None = None
    order_id: str | None = None


@dataclass
class Submission:
    """Points of one frame, waiting to be written, and how to ack them."""

    context: DriverContext
    points: list[dict[str, Any]]
    ack: Callable[[int], None]
    live_above: int = -1  # points at or below this seq arrived after a newer one: stored, not published
    fanned_out: bool = False
    attempt: int = 0
    stored: bool = False
    publishing: bool = False  # waiting for, or in, a Redis publish
    acked: bool = False


class Ingest:
    """The batching writer of one process."""

    def __init__(self, db: AsyncDatabase[Any], redis: aioredis.Redis, hub: Hub) -> None:
        # An ack promises the point survives: journaled on disk (and on a majority of a replica set).
        self.history = GpsHistory(db, write_concern=DURABLE)
        self.redis = redis
        self.hub = hub
        self._pending: list[Submission] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._publish_failing = False
        self._closing = False
        self._in_flight: list[Submission] = []
        self._unpublished: list[Submission] = []
        self._publish_wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        """Tell a watcher of every stored batch's points, per vehicle (at start-up)."""
        self._watchers.append(watcher)

    def submit(self, submission: Submission) -> None:
        """Queue points for the next batch (never blocks the caller)."""
        self._pending.append(submission)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gps-ingest")
        self._queue_publish([submission])

    def _queue_publish(self, submissions: list[Submission]) -> None:
        for submission in submissions:
            submission.publishing = True
        self._unpublished += submissions
        self._publish_wake.set()
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop(), name="gps-publish")

    async def _run(self) -> None:
        pace = _Pace(HISTORY_EVERY)
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await pace.wait(hurry=self._closing)
            batch, self._pending = self._pending, []
            self._in_flight = batch
            await self._write(batch)
            self._in_flight = []

    async def _write(self, batch: list[Submission]) -> None:
        try:
            await self._store(batch)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch is kept and retried
            await self._retry_later(batch, exc)
            return
        for submission in batch:
            submission.stored = True
        self._settle(batch)
        self._tell(batch)

    def _tell(self, batch: list[Submission]) -> None:
        """Tell the watchers which vehicles' points were just stored (a few dict updates; no I/O)."""
        for submission in batch:
            context = submission.context
            if context.vehicle_id is None:
                continue
            for watcher in self._watchers:
                try:
                    watcher(
                        context.vehicle_id, context.organization, context.driver_id, context.order_id, submission.points
                    )
                except Exception:  # a watcher's bug must never cost the ingest
                    log.exception("a GPS watcher failed")

    async def _publish_loop(self) -> None:
        pace = _Pace(PUBLISH_EVERY)
        while True:
            if not self._unpublished:
                if self._closing:
                    return
                self._publish_wake.clear()
                await self._publish_wake.wait()
                continue
            await pace.wait(hurry=self._closing)
            batch, self._unpublished = self._unpublished, []
            try:
                await self._publish(batch)
                published = True
            except Exception:  # noqa: BLE001 - Redis outages are logged by _publish; the history write goes on
                published = False
            for submission in batch:
                submission.fanned_out = published
                submission.publishing = False
            self._settle(batch)

    def _settle(self, submissions: list[Submission]) -> None:
        """Ack what is stored and no longer waiting for its publication.

        Every frame's highest seq is acked, or covered by a later ack of the same socket with a
        higher seq: a driver flooding ascending frames faster than they are stored gets
        a few acks, not one per frame piling up unsent, while an offline buffer sent after a live
        point (lower seqs) still gets its own ack. Points are stored in submission order, so an
        ack also means every earlier frame of its socket is stored.
        """
        pending: dict[Callable[[int], None], list[int]] = {}
        for submission in submissions:
            if submission.stored and not submission.publishing and not submission.acked:
                submission.acked = True
                _push_ack(pending.setdefault(submission.ack, []), submission.points[-1]["seq"])
        for ack, seqs in pending.items():
            for seq in seqs:
                ack(seq)

    async def _retry_later(self, batch: list[Submission], error: BaseException) -> None:
        """Keep the batch (no acks yet) and try again after a pause."""
        attempt = batch[0].attempt
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        log.warning(
            "GPS history write failed (%s); retrying %d points in %.2f s",
            type(error).__name__,
            sum(len(s.points) for s in batch),
            delay,
        )
        for submission in batch:
            submission.attempt = attempt + 1
        await asyncio.sleep(delay)
        self._queue_publish([s for s in batch if not s.fanned_out and not s.publishing])  # as each attempt did
        self._pending[:0] = batch

    async def _store(self, batch: list[Submission]) -> None:
        await self.history.add(
            [
                GpsHistory.document(s.context.driver_id, s.context.vehicle_id, s.context.order_id, point)
                for s in batch
                for point in s.points
            ]
        )

    async def _publish(self, batch: list[Submission]) -> None:
        """Live positions and location frames of the batch, in one Redis round trip."""
        if not batch:
            return
        latest: dict[str, tuple[DriverContext, dict[str, Any]]] = {}
        frames: list[tuple[str, dict[str, Any]]] = []
        for submission in batch:
            context = submission.context
            points = [p for p in submission.points if p["seq"] > submission.live_above]
            if context.vehicle_id is None or not points:
                continue
            for point in points:
                frames += _location_frames(context, point)
            latest[context.vehicle_id] = (context, points[-1])
        if not frames:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                live.queue_positions(
                    pipe,
                    (
                        (
                            vehicle_id,
                            context.organization,
                            {**point, "ts": isoformat(point["ts"]), "driver_id": context.driver_id},
                        )
                        for vehicle_id, (context, point) in latest.items()
                    ),
                )
                await self.hub.queue_publish(pipe, frames)
                await pipe.execute()
        except REDIS_FAILURES as exc:
            if not self._publish_failing:  # once per outage, not once per batch
                log.warning("live positions not published (%s); history is still stored", type(exc).__name__)
            self._publish_failing = True
            raise
        if self._publish_failing:
            log.info("live positions published again")
            self._publish_failing = False

    async def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Flush: let the batch in flight finish and write every pending point (retrying), then stop."""
        self._closing = True
        self._wake.set()
        self._publish_wake.set()
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gps-ingest")
        writers = [task for task in (self._task, self._publisher) if task is not None]
        if not writers:
            return
        _, late = await asyncio.wait(writers, timeout=timeout)
        if self._task in late:  # the store stayed down: these points were never acked, so their senders resend them
            left = sum(len(s.points) for s in self._in_flight + self._pending)
            log.warning("shutdown: %d GPS points not written in %.0f s (never acked)", left, timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)


class _Pace:
    """A writer's pace: a write starts at most once per `every` seconds, so what arrives meanwhile joins it."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.started = -every

    async def wait(self, hurry: bool = False) -> None:
        """Wait out the rest of the interval since the last start (not when hurrying: shutdown); then start."""
        loop = asyncio.get_running_loop()
        pause = self.started + self.every - loop.time()
        if pause > 0 and not hurry:
            await asyncio.sleep(pause)
        self.started = loop.time()


def _push_ack(seqs: list[int], seq: int) -> None:
    """Add a frame's ack; earlier ones it covers (a lower seq) need not go out."""
    while seqs and seqs[-1] < seq:
        seqs.pop()
    seqs.append(seq)


def _location_frames(context: DriverContext, point: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    channels = [f"fleet:{context.organization}"] if context.organization else []
    channels.append(f"vehicle:{context.vehicle_id}")
    if context.order_id:
        channels.append(f"order:{context.order_id}")
    body = {
        "vehicle_id": context.vehicle_id,
        "driver_id": context.driver_id,
        "lat": point["lat"],
        "lon": point["lon"],
        "ts": isoformat(point["ts"]),
        "speed": point["speed"],
        "heading": point["heading"],
    }
    return [(channel, {"type": "location", "channel": channel, **body}) for channel in channels]
