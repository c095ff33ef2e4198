"""Websocket frames as data: validation of incoming frames (hand-written for the GPS hot path: no
schema library per point), and `Frame`, the decoded outgoing frame sockets and outboxes look at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from dispatch.core import jsonutil

MAX_BATCH = 500
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
MAX_SEQ = 2**53  # what JavaScript clients can count to exactly


class Frame(NamedTuple):
    """An outgoing frame, decoded once per process and shared by every local socket (immutable):
    what sockets filter on, and the bytes they send. (A named tuple: built per message, it must be cheap.)"""

    type: str
    channel: str | None  # the channel that carried it (or that a socket's own frame is about)
    offset: str | None  # the stream id a channel kept it under; None for live-only and a socket's own frames
    data: Mapping[str, Any]  # its fields, `offset` aside
    wire: bytes  # what the peer receives

    @classmethod
    def own(cls, data: Mapping[str, Any]) -> Frame:
        """A frame a socket says itself (ready, ack, subscribed, error): sent as it is."""
        return cls(data["type"], data.get("channel"), None, data, jsonutil.dumps(data))

    @classmethod
    def carried(cls, channel: str, offset: str | None, data: Mapping[str, Any]) -> Frame:
        """A frame a channel carried; its offset goes first on the wire, for the client to resume from."""
        wire = jsonutil.dumps(data if offset is None else {"offset": offset, **data})
        return cls(str(data.get("type")), channel, offset, data, wire)

    @property
    def droppable(self) -> bool:
        """Whether a newer frame supersedes it (a position): dropped first when an outbox is full."""
        return self.type == "location"

    def newer_than(self, position: tuple[int, int] | None) -> bool:
        """Whether a live frame comes after a replay that ended at `position` (live-only frames always do)."""
        if position is None or self.offset is None:
            return True
        return (parse_offset(self.offset) or (0, 0)) > position


class FrameError(ValueError):
    """A frame that cannot be accepted; answered with an `error` frame, the socket stays open."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def frame_type(frame: Any) -> str:
    """The `type` of a decoded frame, or a FrameError."""
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", "A frame must be a JSON object.")
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_frame", "A frame needs a string `type`.")
    return kind


def _number(point: dict[str, Any], name: str, low: float, high: float, required: bool = True) -> float | None:
    value = point.get(name)
    if value is None:
        if required:
            raise FrameError("invalid_location", f"`{name}` is required.", field=name)
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise FrameError("invalid_location", f"`{name}` must be a number from {low} to {high}.", field=name)
    return float(value)


def parse_ts(value: Any, now: datetime) -> datetime:
    """A point's timestamp: ISO 8601 (Z or offset), not in the future beyond clock skew, not ancient."""
    if not isinstance(value, str) or len(value) > 40:
        raise FrameError("invalid_location", "`ts` must be an ISO 8601 time.", field="ts")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FrameError("invalid_location", "`ts` must be an ISO 8601 time.", field="ts") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    if ts > now + MAX_FUTURE:
        raise FrameError("invalid_location", "`ts` is in the future.", field="ts")
    if ts < now - MAX_AGE:
        raise FrameError("invalid_location", "`ts` is too old.", field="ts")
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def parse_point(point: Any, now: datetime) -> dict[str, Any]:
    """One GPS point, validated and normalized (ts as an aware datetime)."""
    if not isinstance(point, dict):
        raise FrameError("invalid_location", "A point must be a JSON object.")
    seq = point.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise FrameError("invalid_location", "`seq` must be a whole number ≥ 0.", field="seq")
    return {
        "seq": seq,
        "lat": _number(point, "lat", -90, 90),
        "lon": _number(point, "lon", -180, 180),
        "ts": parse_ts(point.get("ts"), now),
        "speed": _number(point, "speed", 0, 1000, required=False),
        "heading": _number(point, "heading", 0, 360, required=False),
        "accuracy": _number(point, "accuracy", 0, 100_000, required=False),
    }


def parse_points(frame: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The points of a `location` or `locations` frame, in seq order."""
    if frame["type"] == "location":
        return [parse_point(frame, now)]
    points = frame.get("points")
    if not isinstance(points, list) or not points:
        raise FrameError("invalid_location", "`points` must be a non-empty list.")
    if len(points) > MAX_BATCH:
        raise FrameError("batch_too_large", f"At most {MAX_BATCH} points per frame.", limit=MAX_BATCH)
    return sorted((parse_point(p, now) for p in points), key=lambda p: p["seq"])


def channel_of(frame: dict[str, Any]) -> str:
    """The channel named by a subscribe/unsubscribe frame."""
    channel = frame.get("channel")
    if not isinstance(channel, str) or ":" not in channel or len(channel) > 100:
        raise FrameError("bad_channel", "`channel` must look like fleet:<org_id>, order:<id> or vehicle:<id>.")
    return channel


def since_of(frame: dict[str, Any]) -> str | None:
    """The `since` offset of a subscribe frame (a Redis stream id like `1700000000000-0`), if any."""
    since = frame.get("since")
    if since is None:
        return None
    if isinstance(since, int) and not isinstance(since, bool) and 0 <= since < 2**64:
        return f"{since}-0" if since else "0-0"
    if isinstance(since, str) and parse_offset(since) is not None:
        return since
    raise FrameError("bad_offset", "`since` must be an offset from an earlier frame.")


def parse_offset(offset: str) -> tuple[int, int] | None:
    """A stream id as a comparable (ms, seq) pair, or None when malformed."""
    ms, _, seq = offset.partition("-")
    # ASCII digits only: str.isdigit() also accepts digits like "²" that int() refuses.
    if not _digits(ms) or (seq and not _digits(seq)) or len(offset) > 40:
        return None
    parsed = int(ms), int(seq or 0)
    return parsed if max(parsed) < 2**64 else None  # Redis stream ids are two 64-bit numbers


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
