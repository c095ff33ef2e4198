"""Frames as data: incoming frames validated into points, outgoing ones decoded once into a `Frame`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatch.core import jsonutil
from dispatch.realtime import frames
from dispatch.realtime.frames import Frame, FrameError, channel_of, frame_type, parse_offset, parse_points, since_of

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LOCATION = {
    "type": "location",
    "channel": "fleet:6566f0c2a1b2c3d4e5f60718",
    "vehicle_id": "6566f0c2a1b2c3d4e5f60719",
    "driver_id": "6566f0c2a1b2c3d4e5f6071a",
    "lat": 55.7558123,
    "lon": 37.6173,
    "ts": "2026-11-30T11:59:59.125Z",
    "speed": 12.5,
    "heading": None,
}


def point(n: int, **changes: Any) -> dict[str, Any]:
    return {"seq": n, "lat": 55.75, "lon": 37.61, "ts": "2026-11-30T11:59:00Z", **changes}


def code_of(call: Any) -> str:
    with pytest.raises(FrameError) as caught:
        call()
    return caught.value.code


# --- outgoing ------------------------------------------------------------------
def test_a_carried_frame_goes_out_with_its_offset_first_and_every_field_as_published() -> None:
    frame = Frame.carried(LOCATION["channel"], "1700000000000-3", LOCATION)
    assert (frame.type, frame.channel, frame.offset) == ("location", LOCATION["channel"], "1700000000000-3")
    assert jsonutil.loads(frame.wire) == {"offset": "1700000000000-3", **LOCATION}
    # the bytes clients got when the offset was spliced into the published JSON text
    assert frame.wire == b'{"offset":"1700000000000-3",' + jsonutil.dumps(LOCATION)[1:]


def test_a_live_only_frame_has_no_offset_and_goes_out_as_published() -> None:
    fields = {"type": "session_ended", "channel": "user:1", "session_id": "*"}
    frame = Frame.carried("user:1", None, fields)
    assert frame.offset is None and frame.data["session_id"] == "*"
    assert frame.wire == jsonutil.dumps(fields)


def test_a_sockets_own_frame_is_about_the_channel_it_names() -> None:
    subscribed = Frame.own({"type": "subscribed", "channel": "fleet:x"})
    assert (subscribed.type, subscribed.channel, subscribed.offset) == ("subscribed", "fleet:x", None)
    assert subscribed.wire == b'{"type":"subscribed","channel":"fleet:x"}'
    assert Frame.own({"type": "ack", "seq": 4}).channel is None


def test_only_location_frames_may_be_dropped() -> None:
    assert Frame.carried("fleet:x", "1-0", LOCATION).droppable
    assert not Frame.carried("fleet:x", "1-0", {**LOCATION, "type": "order"}).droppable
    assert not Frame.own({"type": "ack", "seq": 1}).droppable


def test_a_live_frame_is_newer_than_a_replay_when_its_offset_is_higher() -> None:
    frame = Frame.carried("fleet:x", "1700000000000-3", LOCATION)
    assert frame.newer_than(None)
    assert frame.newer_than((1700000000000, 2)) and frame.newer_than((1699999999999, 99))
    assert not frame.newer_than((1700000000000, 3)) and not frame.newer_than((1700000000001, 0))
    assert Frame.carried("user:1", None, {"type": "scope_changed"}).newer_than((2**63, 0))  # never kept, never replayed


# --- incoming ------------------------------------------------------------------
def test_a_frame_needs_a_string_type() -> None:
    assert frame_type({"type": "locations"}) == "locations"
    assert code_of(lambda: frame_type([1])) == "bad_frame"
    assert code_of(lambda: frame_type({"type": 3})) == "bad_frame"


def test_points_are_validated_normalized_and_sorted_by_seq() -> None:
    points = parse_points(
        {
            "type": "locations",
            "points": [point(7, ts="2026-11-30T14:59:00.123456+03:00"), point(3, speed=0, heading=360)],
        },
        NOW,
    )
    assert [p["seq"] for p in points] == [3, 7]
    assert points[1]["ts"] == datetime(2026, 11, 30, 11, 59, 0, 123000, tzinfo=UTC)  # UTC, whole ms
    assert (points[0]["speed"], points[0]["heading"], points[0]["accuracy"]) == (0.0, 360.0, None)
    single = parse_points({"type": "location", **point(1)}, NOW)
    assert [p["seq"] for p in single] == [1]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"seq": -1}, "invalid_location"),
        ({"seq": True}, "invalid_location"),
        ({"lat": 90.5}, "invalid_location"),
        ({"lon": float("nan")}, "invalid_location"),
        ({"lat": None}, "invalid_location"),
        ({"speed": -1}, "invalid_location"),
        ({"ts": "yesterday"}, "invalid_location"),
        ({"ts": (NOW + timedelta(minutes=6)).isoformat()}, "invalid_location"),
        ({"ts": (NOW - timedelta(days=8)).isoformat()}, "invalid_location"),
    ],
)
def test_a_bad_point_is_refused_with_its_field(bad: dict[str, Any], code: str) -> None:
    assert code_of(lambda: parse_points({"type": "location", **point(1, **bad)}, NOW)) == code


def test_a_batch_must_hold_between_one_and_max_points() -> None:
    assert code_of(lambda: parse_points({"type": "locations", "points": []}, NOW)) == "invalid_location"
    too_many = [point(n) for n in range(frames.MAX_BATCH + 1)]
    assert code_of(lambda: parse_points({"type": "locations", "points": too_many}, NOW)) == "batch_too_large"


def test_channels_and_offsets_of_subscribe_frames() -> None:
    assert channel_of({"channel": "fleet:abc"}) == "fleet:abc"
    assert code_of(lambda: channel_of({"channel": "fleet"})) == "bad_channel"
    assert since_of({}) is None
    assert since_of({"since": 0}) == "0-0" and since_of({"since": 1700000000000}) == "1700000000000-0"
    assert since_of({"since": "1700000000000-5"}) == "1700000000000-5"
    for bad in ("1-x", "²-0", -1, True, 2**64):
        assert code_of(lambda bad=bad: since_of({"since": bad})) == "bad_offset"


def test_offsets_compare_as_pairs_of_numbers() -> None:
    assert parse_offset("1700000000000-12") == (1700000000000, 12)
    assert parse_offset("5") == (5, 0)
    assert parse_offset("9-10") > parse_offset("9-9")  # type: ignore[operator]
    assert parse_offset("1-") == (1, 0)
    assert parse_offset("a-1") is None and parse_offset(f"{2**64}-0") is None
