"""Fan-out across server processes through Redis.

Every frame published on a channel is appended to a capped stream `stream:<channel>`
(recent history, for `since` replay) and published on `ch:<channel>` with its stream id
spliced in as `offset` — both in one server-side script, so the id a console sees live
is the id it can later resume from. Each process holds one pub/sub connection and
delivers to its local sockets; nothing is shared in process memory across processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Iterable, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisUnreachable, RedisError, TimeoutError as RedisTimeout

from dispatch.core import jsonutil
from dispatch.core.events import Event

log = logging.getLogger("dispatch.realtime")

STREAM_MAXLEN = 5000
REPLAY_PAGE = 250  # frames read from a stream at a time while replaying (half a socket's outbox)
BACKGROUND_GRACE = 1.0  # seconds close() waits for follow-up work (unsubscribes, presence) at shutdown
RECONNECT_FIRST = 0.25  # seconds before the first pub/sub reconnect attempt
RECONNECT_MAX = 1.0     # longest pause between attempts, so live frames resume within a second or so
CONFIRM_TIMEOUT = 10.0  # seconds a subscription waits for Redis to confirm it before failing (503-like)
LIVE_ONLY_OFFSET = "0-0"  # the offset of frames kept in no stream: no replay ever resumes from it

# ARGV: maxlen, then (channel, payload) pairs; payloads are JSON objects without `offset`.
PUBLISH_MANY = """
local ids = {}
for i = 2, #ARGV, 2 do
  local channel, payload = ARGV[i], ARGV[i + 1]
  local id = redis.call('XADD', 'stream:' .. channel, 'MAXLEN', '~', ARGV[1], '*', 'd', payload)
  redis.call('PUBLISH', 'ch:' .. channel, '{"offset":"' .. id .. '",' .. string.sub(payload, 2))
  ids[#ids + 1] = id
end
return ids
"""


class Subscriber(Protocol):
    """A local socket that receives frames of the channels it subscribed to."""

    def deliver(self, channel: str, frame: bytes) -> None: ...


def pubsub_key(channel: str) -> str:
    """The Redis pub/sub channel that carries a channel's live frames."""
    return "ch:" + channel


def with_offset(offset: str, payload: bytes) -> bytes:
    """A stored payload as the frame clients get: `offset` first."""
    return b'{"offset":"' + offset.encode() + b'",' + payload[1:]


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
        self.local: dict[str, set[Subscriber]] = {}
        self._script = redis.register_script(PUBLISH_MANY)
        self._pubsub: Any = None
        self._reader: asyncio.Task | None = None
        # Per pub/sub channel, one future per SUBSCRIBE sent and not yet confirmed, oldest first;
        # each ends True once Redis confirms it, False when sending it failed.
        self._unconfirmed: dict[bytes, deque[asyncio.Future]] = {}
        self._closed = False
        self._background: set[asyncio.Task] = set()
        self.sockets: set[Any] = set()  # every open websocket of this process, for shutdown

    def spawn(self, coro: Any) -> None:
        """Run a socket's follow-up work (unsubscribe, presence) in the background; awaited on close."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:  # e.g. a store outage: say so, once
            exc = task.exception()
            log.warning("background %s failed: %s: %s", task.get_coro().__qualname__, type(exc).__name__, exc)

    # --- publishing -----------------------------------------------------
    async def queue_publish(self, pipe: Any, items: list[tuple[str, bytes]]) -> None:
        """Add the publication of (channel, payload) pairs to a pipeline (one script call)."""
        if items:
            # EVAL with the script text, not a registered Script: a Script in a pipeline makes the
            # pipeline ask SCRIPT EXISTS first, a second round trip on every GPS batch.
            pipe.eval(PUBLISH_MANY, 0, *self._args(items))

    async def publish_many(self, items: list[tuple[str, bytes]]) -> list[str]:
        """Publish (channel, payload) pairs in one round trip; returns their offsets."""
        if not items:
            return []
        ids = await self._script(args=self._args(items))
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    def _args(self, items: list[tuple[str, bytes]]) -> list[Any]:
        args: list[Any] = [self.stream_maxlen]
        for channel, payload in items:
            args += [channel, payload]
        return args

    async def publish_event(self, event: Event) -> None:
        """EventBus listener: a domain event becomes one frame per channel."""
        if event.live_only:
            await self.publish_live(event)
            return
        channels = list(dict.fromkeys(event.channels + _driver_channel(event)))
        await self.publish_many([(channel, jsonutil.dumps({"type": event.type, "channel": channel, **event.data}))
                                 for channel in channels])

    async def publish_live(self, event: Event) -> None:
        """Publish a notice to the sockets open now, on every process, keeping it for no replay."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel in dict.fromkeys(event.channels):
                pipe.publish(pubsub_key(channel), jsonutil.dumps({"offset": LIVE_ONLY_OFFSET, "type": event.type,
                                                                  "channel": channel, **event.data}))
            await pipe.execute()

    # --- subscribing ----------------------------------------------------
    async def subscribe(self, subscriber: Subscriber, channel: str) -> None:
        """Deliver the channel's live frames to the subscriber from the moment this returns.

        redis-py's SUBSCRIBE only sends the command; it returns before Redis has the subscription.
        So this waits for Redis's confirmation (read by the reader), and a later subscriber of a
        channel whose subscription is still on its way waits for the same confirmation: a frame
        published after `subscribed` went out is never missed.
        """
        members = self.local.setdefault(channel, set())
        first = not members
        members.add(subscriber)
        key = pubsub_key(channel).encode()
        confirmation = None
        try:
            if first:
                await self._ensure_reader()
                confirmation = asyncio.get_running_loop().create_future()
                self._unconfirmed.setdefault(key, deque()).append(confirmation)
                await self._pubsub.subscribe(key)
            pending = self._unconfirmed.get(key)
            if pending:
                await self._confirmation(pending[-1])
        except (RedisError, OSError):  # Redis unreachable: not subscribed, the caller says so
            self._forget(key, confirmation)
            members.discard(subscriber)
            if not members and self.local.get(channel) is members:
                self.local.pop(channel, None)
            raise

    @staticmethod
    async def _confirmation(confirmation: asyncio.Future) -> None:
        """Wait until Redis confirmed a SUBSCRIBE (shared by every subscriber waiting for it)."""
        try:
            confirmed = await asyncio.wait_for(asyncio.shield(confirmation), CONFIRM_TIMEOUT)
        except asyncio.TimeoutError:
            raise RedisTimeout(f"no subscription confirmed by Redis in {CONFIRM_TIMEOUT:.0f} s") from None
        if not confirmed:
            raise RedisUnreachable("the subscription could not be sent to Redis")

    def _forget(self, key: bytes, confirmation: asyncio.Future | None) -> None:
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
            members.discard(subscriber)
            if not members:
                del self.local[channel]
                emptied.append(pubsub_key(channel))
        if emptied and self._pubsub is not None and not self._closed:
            try:
                await self._pubsub.unsubscribe(*emptied)
            except (RedisError, OSError):
                log.warning("unsubscribe from %d channels failed (Redis unreachable)", len(emptied))

    async def history(self, channel: str, since: str, limit: int = REPLAY_PAGE) -> list[tuple[str, bytes]]:
        """Up to `limit` frames the channel carried after offset `since`, oldest first."""
        rows = await self.redis.xrange("stream:" + channel, min="(" + since, max="+", count=limit)
        out = []
        for entry_id, fields in rows:
            offset = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append((offset, with_offset(offset, fields[b"d"])))
        return out

    async def last_offset(self, channel: str) -> str | None:
        """The offset of the newest frame the channel keeps, or None when it keeps none."""
        rows = await self.redis.xrevrange("stream:" + channel, max="+", min="-", count=1)
        if not rows:
            return None
        entry_id = rows[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    # --- the reader -----------------------------------------------------
    async def _ensure_reader(self) -> None:
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub()  # subscribe confirmations are read: see subscribe()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="hub-reader")

    async def _read(self) -> None:
        """Deliver pub/sub messages to local subscribers; resubscribe after a Redis outage."""
        while not self._closed:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                await self._reconnect()
                continue
            if message is None:
                continue
            if message.get("type") == "message":
                self._dispatch(message["channel"], message["data"])
            elif message.get("type") == "subscribe":
                self._confirmed(message["channel"])

    async def _reconnect(self) -> None:
        """A fresh pub/sub connection subscribed to every local channel, retried until Redis answers.

        A failed SUBSCRIBE leaves the new connection with no channels, and the reader would then
        wait forever for a subscription; so keep trying here, briefly apart, until one succeeds.
        """
        delay = RECONNECT_FIRST
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                await self._pubsub.aclose()
            except (RedisError, OSError):
                pass
            self._pubsub = self.redis.pubsub()
            channels = [pubsub_key(c) for c in self.local]
            try:
                if channels:
                    await self._pubsub.subscribe(*channels)
            except (RedisError, OSError):
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            log.info("pub/sub reconnected (%d channels)", len(channels))
            return

    def _dispatch(self, raw_channel: bytes, frame: bytes) -> None:
        channel = raw_channel.decode()[3:]
        for subscriber in list(self.local.get(channel, ())):
            try:
                subscriber.deliver(channel, frame)
            except Exception:  # one broken socket must not stop delivery to the others
                log.exception("delivery to a subscriber of %s failed", channel)

    async def close_sockets(self, code: int = 1001, reason: str = "going away", timeout: float = 3.0) -> int:
        """Close every open websocket of this process (shutdown); wait briefly for them to be gone."""
        closing = list(self.sockets)
        for socket in closing:
            socket.close(code, reason)
        deadline = asyncio.get_running_loop().time() + timeout
        while self.sockets and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return len(closing)

    async def close(self) -> None:
        """Finish background work, stop reading and drop the pub/sub connection."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=BACKGROUND_GRACE)
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except (RedisError, OSError):
                pass
