"""Fan-out across server processes through Redis.

Every frame published on a channel is appended to a capped stream `stream:{<channel>}`
(recent history, for `since` replay) and published on `ch:{<channel>}` together with its
stream id as `offset` — both in one server-side script, so the id a console sees live
is the id it can later resume from. Each process holds one pub/sub connection (on a Redis
Cluster: one per node), decodes every message once into a `Frame` and delivers that to its
local sockets; nothing is shared in process memory across processes.

On a Redis Cluster the hash tag `{<channel>}` puts a channel's stream and pub/sub channel in one
slot; a batch of frames is published with one script call per slot (in one pipeline), each call
declaring every key it touches, and pub/sub is sharded (`SPUBLISH`/`SSUBSCRIBE`), so each node
carries only its own channels' messages. One Redis uses the same script and keys with plain
`PUBLISH`/`SUBSCRIBE` (every frame of a batch in one call).

On pub/sub a message is the JSON array `[offset, fields]` (`offset` null for live-only
messages, which no stream keeps), or an array of such pairs: one script call publishes the frames it
carries for one channel as one message, so a batch of GPS points costs each process one pub/sub
message per channel, not one per point. A stream entry keeps the fields alone (`d`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisUnreachable
from redis.exceptions import TimeoutError as RedisTimeout

from dispatch.core import jsonutil
from dispatch.core.events import Event
from dispatch.core.storage import REDIS_FAILURES, is_cluster
from dispatch.realtime.frames import Frame, parse_offset

log = logging.getLogger("dispatch.realtime")

STREAM_MAXLEN = 5000
REPLAY_PAGE = 250  # frames read from a stream at a time while replaying (half a socket's outbox)
BACKGROUND_GRACE = 1.0  # seconds close() waits for follow-up work (unsubscribes, presence) at shutdown
RECONNECT_FIRST = 0.25  # seconds before the first pub/sub reconnect attempt
RECONNECT_MAX = 1.0  # longest pause between attempts, so live frames resume within a second or so
CONFIRM_TIMEOUT = 10.0  # seconds a subscription waits for Redis to confirm it before failing (503-like)

# KEYS: per frame, its channel's stream and pub/sub channel (all of one slot on a cluster). ARGV: maxlen,
# the publish command (PUBLISH, or SPUBLISH on a cluster), then each frame's fields, a JSON object. Each id
# and its fields travel as two elements of an array, so nothing here reads or edits the fields' JSON text;
# the frames of one channel go out as one message, `[[id, fields], ...]`, in order.
PUBLISH_MANY = """
local ids = {}
local messages = {}
local channels = {}
for i = 1, #KEYS, 2 do
  local fields = ARGV[(i + 1) / 2 + 2]
  local id = redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*', 'd', fields)
  local channel = KEYS[i + 1]
  if messages[channel] == nil then
    messages[channel] = {}
    channels[#channels + 1] = channel
  end
  local parts = messages[channel]
  parts[#parts + 1] = '["' .. id .. '",' .. fields .. ']'
  ids[#ids + 1] = id
end
for _, channel in ipairs(channels) do
  redis.call(ARGV[2], channel, '[' .. table.concat(messages[channel], ',') .. ']')
end
return ids
"""


class _SourceGone(Exception):
    """A cluster node's pub/sub connection was dropped: none of its channels is followed any more."""


class Subscriber(Protocol):
    """A local socket that receives the live frames of the channels it follows."""

    def deliver(self, frame: Frame) -> None: ...


class Sink(Protocol):
    """Where a subscriber's replayed frames go, a page at a time as it drains (its outbox)."""

    limit: int

    def put(self, frame: Frame) -> None: ...

    async def room(self, size: int) -> bool: ...


def pubsub_key(channel: str) -> str:
    """The Redis pub/sub channel that carries a channel's live frames."""
    return "ch:{" + channel + "}"


def stream_key(channel: str) -> str:
    """The Redis stream that keeps a channel's recent frames (same cluster slot as its pub/sub channel)."""
    return "stream:{" + channel + "}"


def channel_of(key: bytes) -> str:
    """The channel whose live frames a pub/sub channel carries."""
    return key.decode().removeprefix("ch:{").removesuffix("}")


def live_message(channel: str, fields: Mapping[str, Any]) -> tuple[str, bytes]:
    """A live-only message (kept by no stream, so never replayed): the pub/sub key and message to PUBLISH."""
    return pubsub_key(channel), jsonutil.dumps([None, fields])


def decode(channel: str, message: bytes) -> list[Frame]:
    """A pub/sub message of a channel as its Frames, in order; ValueError when it is neither `[offset, fields]`
    nor a non-empty array of them."""
    decoded = jsonutil.loads(message)
    if not isinstance(decoded, list) or not decoded:
        raise ValueError("not an [offset, fields] message")
    pairs = decoded if isinstance(decoded[0], list) else [decoded]
    if not all(_is_pair(pair) for pair in pairs):
        raise ValueError("not an [offset, fields] message")
    return [Frame.carried(channel, offset, fields) for offset, fields in pairs]


def _is_pair(pair: Any) -> bool:
    return (
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[1], dict)
        and (pair[0] is None or isinstance(pair[0], str))
    )


def _text(value: Any) -> str:
    """A stream id as Redis returned it (bytes), as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _Catchup:
    """A subscriber of a channel whose replay runs, or ran: live frames are held back meanwhile, then
    those the replay already sent are dropped (they may still be on their way) until a newer one comes."""

    __slots__ = ("floor", "held")

    def __init__(self) -> None:
        self.held: list[Frame] | None = []
        self.floor: tuple[int, int] | None = None  # the replay's last offset, once it ended

    def take(self, frame: Frame) -> bool:
        """Hold a live frame, or say whether it goes out (False: the replay sent it)."""
        if self.held is not None:
            self.held.append(frame)
            return False
        return frame.newer_than(self.floor)


def _driver_channel(event: Event) -> tuple[str, ...]:
    """Order updates also reach the assigned driver's own channel (their socket follows it),
    unless the driver made the change (their socket already answered them)."""
    order = event.data.get("order") if event.type == "order" else None
    driver = order.get("driver_id") if isinstance(order, dict) else None
    return (f"user:{driver}",) if driver and driver != event.data.get("actor_id") else ()


class Hub:
    """This process's side of the fan-out."""

    def __init__(self, redis: aioredis.Redis, stream_maxlen: int = STREAM_MAXLEN) -> None:
        self.redis = redis
        self.stream_maxlen = stream_maxlen
        # Per channel, its local subscribers, each live (None) or catching up after a replay.
        self.local: dict[str, dict[Subscriber, _Catchup | None]] = {}
        self.sharded = is_cluster(redis)  # a Redis Cluster: sharded pub/sub, scripts per slot
        self._publish = "SPUBLISH" if self.sharded else "PUBLISH"
        self._pubsub: Any = None
        # Reader tasks of the pub/sub connection(s): one (`redis`) on one Redis, one per node on a cluster.
        self._readers: dict[str, tuple[Any, asyncio.Task[None]]] = {}  # source: (its pub/sub, reader)
        self._recovering: asyncio.Task[None] | None = None
        # Pause before the next reconnect: doubles while new connections die before a message comes
        # (a cluster node's dead pooled connections may take a SUBSCRIBE and fail on the read).
        self._reconnect_delay = RECONNECT_FIRST
        # Per pub/sub channel, one future per SUBSCRIBE sent and not yet confirmed, oldest first;
        # each ends True once Redis confirms it, False when sending it failed.
        self._unconfirmed: dict[bytes, deque[asyncio.Future[bool]]] = {}
        self._closed = False
        self._background: set[asyncio.Task[Any]] = set()
        self.sockets: set[Any] = set()  # every open websocket of this process, for shutdown

    def spawn(self, coro: Any) -> None:
        """Run a socket's follow-up work (unsubscribe, presence) in the background; awaited on close."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:  # e.g. a store outage: say so, once
            exc = task.exception()
            name = getattr(task.get_coro(), "__qualname__", "task")
            log.warning("background %s failed: %s: %s", name, type(exc).__name__, exc)

    # --- publishing -----------------------------------------------------
    async def queue_publish(self, pipe: Any, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[int]]:
        """Add the publication of (channel, fields) pairs to a pipeline: one script call per slot, in order.

        Returns, per call queued, the indexes of the items it publishes (its answer lists their offsets).
        """
        groups: dict[int, list[int]] = {}
        for index, (channel, _) in enumerate(items):
            groups.setdefault(key_slot(stream_key(channel).encode()) if self.sharded else 0, []).append(index)
        for indexes in groups.values():
            keys = [key for i in indexes for key in (stream_key(items[i][0]), pubsub_key(items[i][0]))]
            fields = [jsonutil.dumps(items[i][1]) for i in indexes]
            # EVAL with the script text, not a registered Script: a Script in a pipeline makes the
            # pipeline ask SCRIPT EXISTS first, a second round trip on every GPS batch.
            pipe.eval(PUBLISH_MANY, len(keys), *keys, self.stream_maxlen, self._publish, *fields)
        return list(groups.values())

    async def publish_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
        """Publish (channel, fields) pairs in one round trip; returns their offsets."""
        if not items:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            calls = await self.queue_publish(pipe, items)
            answers = await pipe.execute()
        offsets = [""] * len(items)
        for indexes, ids in zip(calls, answers, strict=True):
            for index, entry_id in zip(indexes, ids, strict=True):
                offsets[index] = _text(entry_id)
        return offsets

    async def publish_raw(self, channel: str, message: bytes) -> None:
        """Publish one message as it is on a channel's pub/sub channel (live-only notices; tests)."""
        await self.redis.execute_command(self._publish, pubsub_key(channel), message)  # type: ignore[no-untyped-call]

    async def publish_event(self, event: Event) -> None:
        """EventBus listener: a domain event becomes one frame per channel."""
        if event.live_only:
            await self.publish_live(event)
            return
        channels = list(dict.fromkeys(event.channels + _driver_channel(event)))
        await self.publish_many(
            [(channel, {"type": event.type, "channel": channel, **event.data}) for channel in channels]
        )

    async def publish_live(self, event: Event) -> None:
        """Publish a notice to the sockets open now, on every process, keeping it for no replay."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel in dict.fromkeys(event.channels):
                key, message = live_message(channel, {"type": event.type, "channel": channel, **event.data})
                pipe.execute_command(self._publish, key, message)
            await pipe.execute()

    # --- subscribing ----------------------------------------------------
    async def follow(self, subscriber: Subscriber, channel: str, since: str | None, sink: Sink) -> None:
        """Subscribe, say `subscribed`, replay what the channel kept after `since`, then go live.

        Live frames that arrive meanwhile are held back and delivered after the replay, except those
        the replay already sent: no gap and no duplicate between the two.
        """
        catchup = _Catchup()
        await self._subscribe(subscriber, channel, catchup)
        last = parse_offset(since) if since is not None else None
        try:
            sink.put(Frame.own({"type": "subscribed", "channel": channel}))
            if since is not None:
                last = await self._replay(subscriber, channel, since, sink, catchup) or last
        except BaseException:
            self._live(subscriber, channel, catchup)  # what was held is dropped; the socket says why
            raise
        held, catchup.held, catchup.floor = catchup.held or [], None, last
        members = self.local.get(channel, {})
        if members.get(subscriber) is not catchup:  # unsubscribed meanwhile
            return
        for frame in held:
            if self._passes(members, subscriber, catchup, frame):
                subscriber.deliver(frame)
        if last is None:  # nothing replayed: nothing to drop either
            self._live(subscriber, channel, catchup)

    async def _replay(
        self, subscriber: Subscriber, channel: str, since: str, sink: Sink, catchup: _Catchup
    ) -> tuple[int, int] | None:
        """Put what the channel kept after `since` into the sink, a page at a time as it drains; the last offset.

        Replay stops at the newest frame kept when it began: later frames are held as they arrive live.
        Pages wait for room in the sink, so no replayed frame is dropped to make room for the next.
        """
        end = await self.last_offset(channel)
        stop = parse_offset(end) if end is not None else None
        position, last, offset = parse_offset(since) or (0, 0), None, since
        while end is not None and stop is not None and position < stop:
            size = min(REPLAY_PAGE, sink.limit)
            if not self._catching_up(subscriber, channel, catchup) or not await sink.room(size):
                break
            page = await self.history(channel, offset, size, until=end)
            if not page or not self._catching_up(subscriber, channel, catchup):
                break
            for frame in page:
                sink.put(frame)
            offset = page[-1].offset or offset
            position = last = parse_offset(offset) or position
        return last

    def _catching_up(self, subscriber: Subscriber, channel: str, catchup: _Catchup) -> bool:
        """Whether this subscription (not a later one of the same subscriber) is still on and catching up."""
        return self.local.get(channel, {}).get(subscriber) is catchup

    def _live(self, subscriber: Subscriber, channel: str, catchup: _Catchup) -> None:
        """The subscriber gets every frame of the channel from now on."""
        if self._catching_up(subscriber, channel, catchup):
            self.local[channel][subscriber] = None

    @staticmethod
    def _passes(
        members: dict[Subscriber, _Catchup | None], subscriber: Subscriber, catchup: _Catchup, frame: Frame
    ) -> bool:
        """Whether a live frame goes to a subscriber catching up; the first one past its replay makes it live."""
        if not catchup.take(frame):
            return False
        if frame.offset is not None and members.get(subscriber) is catchup:
            members[subscriber] = None  # frames come in offset order: every later one is newer too
        return True

    def follows(self, subscriber: Subscriber, channel: str) -> bool:
        """Whether the subscriber is subscribed to the channel in this process."""
        return subscriber in self.local.get(channel, {})

    async def subscribe(self, subscriber: Subscriber, channel: str) -> None:
        """Deliver the channel's live frames to the subscriber from the moment this returns."""
        await self._subscribe(subscriber, channel, None)

    async def _subscribe(self, subscriber: Subscriber, channel: str, catchup: _Catchup | None) -> None:
        """Add a local subscriber, live or catching up.

        redis-py's SUBSCRIBE only sends the command; it returns before Redis has the subscription.
        So this waits for Redis's confirmation (read by the reader), and a later subscriber of a
        channel whose subscription is still on its way waits for the same confirmation: a frame
        published after `subscribed` went out is never missed.
        """
        members = self.local.setdefault(channel, {})
        first = not members
        members[subscriber] = catchup
        key = pubsub_key(channel).encode()
        confirmation = None
        try:
            if first:  # awaited by later subscribers from now on, even while the connection is opened
                confirmation = asyncio.get_running_loop().create_future()
                self._unconfirmed.setdefault(key, deque()).append(confirmation)
                await self._ensure_reader()
                await self._send_subscribe(self._pubsub, [key])
            pending = self._unconfirmed.get(key)
            if pending:
                await self._confirmation(pending[-1])
        except REDIS_FAILURES:  # Redis unreachable: not subscribed, the caller says so
            self._forget(key, confirmation)
            if members.get(subscriber) is catchup:
                del members[subscriber]
            if not members and self.local.get(channel) is members:
                self.local.pop(channel, None)
            raise

    @staticmethod
    async def _confirmation(confirmation: asyncio.Future[bool]) -> None:
        """Wait until Redis confirmed a SUBSCRIBE (shared by every subscriber waiting for it)."""
        try:
            confirmed = await asyncio.wait_for(asyncio.shield(confirmation), CONFIRM_TIMEOUT)
        except TimeoutError:
            raise RedisTimeout(f"no subscription confirmed by Redis in {CONFIRM_TIMEOUT:.0f} s") from None
        if not confirmed:
            raise RedisUnreachable("the subscription could not be sent to Redis")

    def _forget(self, key: bytes, confirmation: asyncio.Future[bool] | None) -> None:
        """A SUBSCRIBE that failed: nobody waits for its confirmation any longer."""
        pending = self._unconfirmed.get(key)
        if confirmation is not None and pending is not None and confirmation in pending:
            pending.remove(confirmation)
            if not pending:
                del self._unconfirmed[key]
            if not confirmation.done():
                confirmation.set_result(False)

    def _confirmed(self, key: bytes) -> None:
        """Redis confirmed a SUBSCRIBE of this channel: the oldest one waiting is live."""
        pending = self._unconfirmed.get(key)
        if pending:
            confirmation = pending.popleft()
            if not pending:
                del self._unconfirmed[key]
            if not confirmation.done():
                confirmation.set_result(True)

    async def unsubscribe(self, subscriber: Subscriber, channels: Iterable[str]) -> None:
        """Stop delivering these channels to the subscriber."""
        emptied = []
        for channel in list(channels):
            members = self.local.get(channel)
            if members is None:
                continue
            members.pop(subscriber, None)
            if not members:
                del self.local[channel]
                emptied.append(pubsub_key(channel))
        if emptied and self._pubsub is not None and not self._closed:
            try:
                if self.sharded:
                    await self._pubsub.sunsubscribe(*emptied)
                else:
                    await self._pubsub.unsubscribe(*emptied)
            except REDIS_FAILURES:
                log.warning("unsubscribe from %d channels failed (Redis unreachable)", len(emptied))

    async def history(self, channel: str, since: str, limit: int = REPLAY_PAGE, until: str = "+") -> list[Frame]:
        """Up to `limit` frames the channel carried after offset `since` (up to offset `until`), oldest first."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = await self.redis.xrange(  # type: ignore[assignment]
            stream_key(channel), min="(" + since, max=until, count=limit
        )
        return [Frame.carried(channel, _text(entry_id), jsonutil.loads(fields[b"d"])) for entry_id, fields in rows]

    async def last_offset(self, channel: str) -> str | None:
        """The offset of the newest frame the channel keeps, or None when it keeps none."""
        rows = await self.redis.xrevrange(stream_key(channel), max="+", min="-", count=1)
        if not rows:
            return None
        return _text(rows[0][0])

    # --- the reader -----------------------------------------------------
    async def _ensure_reader(self) -> None:
        if self._pubsub is None:
            if self.sharded:
                await self.redis.initialize()  # the cluster's slot map, which SSUBSCRIBE routes by
            self._pubsub = self.redis.pubsub()  # subscribe confirmations are read: see subscribe()
        if not self.sharded:
            self._start_readers(self._pubsub)

    async def _send_subscribe(self, pubsub: Any, keys: list[bytes]) -> None:
        """SUBSCRIBE (SSUBSCRIBE on a cluster, on each key's node); the reader reads the confirmations."""
        if self.sharded:
            await pubsub.ssubscribe(*keys)
        else:
            await pubsub.subscribe(*keys)
        self._start_readers(pubsub)

    def _start_readers(self, pubsub: Any) -> None:
        """A reader task for each connection of `pubsub` that has none (redis-py's cluster pub/sub reads
        its nodes one after the other, each with the whole timeout: one task per node reads them all at once)."""
        recovering = self._recovering is not None and not self._recovering.done()
        if pubsub is not self._pubsub or (recovering and asyncio.current_task() is not self._recovering):
            return  # a connection being replaced: its readers ended, the new one's start when it is subscribed
        sources = list(pubsub.node_pubsub_mapping) if self.sharded else ["redis"]
        for source in sources:
            reading, task = self._readers.get(source, (None, None))
            if reading is not pubsub or task is None or task.done():  # a reader of an old connection ends by itself
                task = asyncio.create_task(self._read(pubsub, source), name=f"hub-reader {source}")
                self._readers[source] = (pubsub, task)

    async def _next(self, pubsub: Any, source: str) -> dict[str, Any] | None:
        """The next message of one connection (None: none within a second, or nothing subscribed yet)."""
        if not self.sharded:
            if not pubsub.subscribed:
                await asyncio.sleep(0.05)
                return None
            message: dict[str, Any] | None = await pubsub.get_message(timeout=1.0)
            return message
        node_pubsub = pubsub.node_pubsub_mapping.get(source)
        if node_pubsub is None:  # no channel of this node is followed any longer
            raise _SourceGone
        if not node_pubsub.subscribed:
            await asyncio.sleep(0.05)
            return None
        node = self.redis.get_node(node_name=source)  # type: ignore[attr-defined]
        if node is None:
            raise RedisUnreachable(f"node {source} left the cluster")
        message = await pubsub.get_sharded_message(target_node=node, timeout=1.0)
        return message

    async def _read(self, pubsub: Any, source: str) -> None:
        """Deliver one connection's messages to local subscribers; after a Redis outage, resubscribe."""
        while not self._closed and self._pubsub is pubsub:
            try:
                message = await self._next(pubsub, source)
            except asyncio.CancelledError:
                raise
            except _SourceGone:
                return
            except REDIS_FAILURES as exc:
                if self._pubsub is pubsub and (self._recovering is None or self._recovering.done()):
                    log.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                    self._recovering = asyncio.create_task(self._reconnect(), name="hub-reconnect")
                return
            if message is None:
                continue
            kind = message.get("type")
            if kind in ("message", "smessage"):
                self._reconnect_delay = RECONNECT_FIRST  # this connection works
                self._dispatch(message["channel"], message["data"])
            elif kind in ("subscribe", "ssubscribe"):
                self._confirmed(message["channel"])

    async def _reconnect(self) -> None:
        """A fresh pub/sub connection subscribed to every local channel, retried until Redis answers.

        A failed SUBSCRIBE leaves the new connection with no channels, and the reader would then
        wait forever for a subscription; so keep trying here, briefly apart, until one succeeds.
        """
        delay = self._reconnect_delay
        while not self._closed:
            await asyncio.sleep(delay)
            with contextlib.suppress(*REDIS_FAILURES):
                await self._pubsub.aclose()
            self._pubsub = pubsub = self.redis.pubsub()
            channels = [pubsub_key(c).encode() for c in self.local]
            try:
                if channels:
                    await self._send_subscribe(pubsub, channels)
            except REDIS_FAILURES:
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            self._start_readers(pubsub)
            self._reconnect_delay = min(delay * 2, RECONNECT_MAX)
            log.info("pub/sub reconnected (%d channels)", len(channels))
            return

    def _dispatch(self, raw_channel: bytes, message: bytes) -> None:
        channel = channel_of(raw_channel)
        try:
            frames = decode(channel, message)
        except ValueError as exc:  # JSONDecodeError is one: a message no publisher of ours wrote
            log.warning("dropped a malformed message on %s: %s", channel, exc)
            return
        members = self.local.get(channel, {})
        for frame in frames:
            for subscriber, catchup in list(members.items()):
                if catchup is not None and not self._passes(members, subscriber, catchup, frame):
                    continue
                try:
                    subscriber.deliver(frame)
                except Exception:  # one broken socket must not stop delivery to the others
                    log.exception("delivery to a subscriber of %s failed", channel)

    async def close_sockets(self, code: int = 1001, reason: str = "going away", timeout: float = 3.0) -> int:
        """Close every open websocket of this process (shutdown); wait briefly for them to be gone."""
        closing = list(self.sockets)
        for socket in closing:
            socket.close(code, reason)
        deadline = asyncio.get_running_loop().time() + timeout
        while self.sockets and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - sockets leave one by one
            await asyncio.sleep(0.02)
        return len(closing)

    async def close(self) -> None:
        """Finish background work, stop reading and drop the pub/sub connection."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=BACKGROUND_GRACE)
        self._closed = True
        tasks = [task for _, task in self._readers.values()]
        tasks += [self._recovering] if self._recovering is not None else []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._pubsub.aclose()
