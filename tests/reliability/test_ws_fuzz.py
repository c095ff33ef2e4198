"""Websocket fuzzing: random and malicious frames on every socket type (/ws/driver, /ws/console,
/ws/orders/{id}) get error frames or proper close codes, never a crashed handler, and never
disturb anyone else: a healthy driver keeps getting acks, and a healthy console its frames.

Frames are written with the standard library's json on purpose: it emits what orjson refuses
to (NaN, Infinity, integers of any size), which is exactly what a hostile client sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.core import jsonutil
from tests.support.factories import login, make_user
from tests.support.fleet_fixtures import make_vehicle_type, order_body
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)  # encodable as UTF-8
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), TEXT)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)
TYPES = ["location", "locations", "status", "subscribe", "unsubscribe", "auth", "ack", "error", "ready", ""]
FIELDS = [
    "seq",
    "lat",
    "lon",
    "ts",
    "speed",
    "heading",
    "accuracy",
    "channel",
    "since",
    "order_id",
    "status",
    "reason",
    "token",
    "offset",
]
POINT = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS[:7], VALUES))
FRAMES = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | TEXT | VALUES},
    optional={**dict.fromkeys(FIELDS, VALUES), "points": st.lists(POINT, max_size=6) | VALUES},
)
PAYLOADS = st.one_of(
    FRAMES.map(lambda frame: json.dumps(frame, allow_nan=True)),  # frames with wrong types, NaN, huge numbers
    VALUES.map(lambda value: json.dumps(value, allow_nan=True)),  # JSON that is not an object
    TEXT,  # text that is not JSON
    st.binary(max_size=64),  # binary frames
)


# Seconds without progress after which a wait fails. Each wait is for one event (an ack, a frame, a
# probe's answer), so a slow machine only makes a test take longer; whole tests get a hang guard only.
STALL = 60
HANG_GUARD = 900


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# Each attack with the error code a driver socket answers, then the one console and order sockets answer.
MJ, IL, UT, BF, BC, BO = "malformed_json", "invalid_location", "unknown_type", "bad_frame", "bad_channel", "bad_offset"


def malicious(now_ts: str) -> dict[str, tuple[str | bytes, str, str]]:
    """Named hand-written attacks: (payload, driver's error code, console's and order socket's error code)."""
    loc = '{"type": "location", "seq": 1, "lat": %s, "lon": 37.6, "ts": "' + now_ts + '"}'
    seq = '{"type": "location", "seq": %s, "lat": 1, "lon": 1, "ts": "' + now_ts + '"}'
    return {
        "NaN latitude": (loc % "NaN", MJ, MJ),
        "Infinity latitude": (loc % "Infinity", MJ, MJ),
        "-Infinity latitude": (loc % "-Infinity", MJ, MJ),
        "1e400 latitude (overflows a double)": (loc % "1e400", MJ, MJ),
        "latitude 1e308": (loc % "1e308", IL, UT),
        "seq 10**30": (seq % 10**30, IL, UT),
        "seq 2**64-1": (seq % (2**64 - 1), IL, UT),
        "seq -1": (seq % -1, IL, UT),
        "seq as a string": (seq % '"1"', IL, UT),
        "seq true": (seq % "true", IL, UT),
        "ts of year 99999": (
            '{"type": "location", "seq": 1, "lat": 1, "lon": 1, "ts": "99999-01-01T00:00:00Z"}',
            IL,
            UT,
        ),
        "10,000 nested arrays": (nested(10_000), MJ, MJ),
        "10,000 nested objects": ('{"a":' * 10_000 + "1" + "}" * 10_000, MJ, MJ),
        "1,000 nested arrays as seq": (seq % nested(1000), IL, UT),
        "1,000 nested arrays as type": (f'{{"type": {nested(1000)}}}', BF, BF),
        "501 points": (
            jsonutil.dumps({"type": "locations", "points": [{"seq": n} for n in range(501)]}).decode(),
            "batch_too_large",
            UT,
        ),
        "points as an object": ('{"type": "locations", "points": {"seq": 1}}', IL, UT),
        "type 5": ('{"type": 5}', BF, BF),
        "type null": ('{"type": null}', BF, BF),
        "no type": ('{"seq": 1}', BF, BF),
        "type as a 60 KiB string": ('{"type": "%s"}' % ("x" * 60_000), UT, UT),
        "array frame": ("[1, 2, 3]", BF, BF),
        "string frame": ('"location"', BF, BF),
        "number frame": ("42", BF, BF),
        "null frame": ("null", BF, BF),
        "empty text": ("", MJ, MJ),
        "whitespace": (" \n\t", MJ, MJ),
        "truncated JSON": ('{"type": "location", "seq": 1', MJ, MJ),
        "duplicate keys (the last wins)": ('{"type": "location", "type": "subscribe"}', UT, BC),
        "operator values": ('{"type": "subscribe", "channel": {"$gt": ""}, "since": {"$where": "1"}}', UT, BC),
        "channel of 10 KiB": ('{"type": "subscribe", "channel": "fleet:' + "a" * 10_000 + '"}', UT, BC),
        "since 2**70": ('{"type": "subscribe", "channel": "fleet:abc", "since": ' + str(2**70) + "}", UT, BO),
        "since in superscript digits": (
            '{"type": "subscribe", "channel": "fleet:abc", "since": "\u00b2-\u00b3"}',
            UT,
            BO,
        ),
        "status with an operator as order id": (
            '{"type": "status", "order_id": {"$oid": "0"}, "status": "accepted"}',
            BF,
            UT,
        ),
        "status with an object as reason": (
            '{"type": "status", "order_id": "x", "status": "en_route", "reason": {}}',
            "validation_error",
            UT,
        ),
        "auth again with junk": ('{"type": "auth", "token": [1]}', UT, UT),
        "a byte order mark before JSON": ("\ufeff{}", MJ, MJ),
        "raw NUL characters in a string": ('{"type": "\u0000\u0000"}', MJ, MJ),
        "binary JSON": (b'{"type": "location"}', BF, BF),
        "binary bytes 0-255": (bytes(range(256)), BF, BF),
    }


@pytest.fixture
def app(app: Any) -> Any:
    app.settings["ws_auth_timeout"] = 0.5  # unauthenticated sockets are closed sooner
    return app


@dataclass
class Arena:
    """The sockets under attack, and healthy neighbours that must not notice."""

    base_url: str
    tokens: dict[str, str]
    paths: dict[str, str]
    targets: dict[str, WsClient] = field(default_factory=dict)
    healthy_driver: WsClient | None = None
    healthy_console: WsClient | None = None
    seq: int = 0
    probes: int = 0
    vehicle_id: str = ""

    async def target(self, kind: str) -> WsClient:
        """The open socket of this kind (reconnected after a close)."""
        client = self.targets.get(kind)
        if client is None or client.close_code is not None:
            client = await WsClient.connect(ws_url(self.base_url, self.paths[kind]), self.tokens[kind])
            await client.recv_type("ready", timeout=STALL)
            self.targets[kind] = client
        return client

    async def attack(self, kind: str, payload: str | bytes) -> tuple[list[dict[str, Any]], int | None]:
        """Send a frame, then a probe; the frames answered in between, and the close code if it closed."""
        client = await self.target(kind)
        self.probes += 1
        probe = f"probe-{self.probes}"
        await client.conn.write_message(payload, binary=isinstance(payload, bytes))
        await client.send({"type": probe})
        replies = []
        while True:
            frame = await client.recv(timeout=STALL)
            if frame is None:
                return replies, client.close_code
            if frame.get("type") == "error" and probe in frame.get("message", ""):
                return replies, None
            replies.append(frame)

    async def heartbeat(self) -> None:
        """The healthy driver's next point is acked and reaches the healthy console."""
        assert self.healthy_driver is not None and self.healthy_console is not None
        self.seq += 1
        lat = round(50 + self.seq / 10_000, 6)
        await self.healthy_driver.send({"type": "location", **point(self.seq, lat=lat)})
        # The limits only catch a stall: under a flood on a busy machine the batch holding this point may be
        # large; it must come, not be fast. Which of the two waits failed says where the point was lost.
        try:
            await self.healthy_driver.recv_type("ack", timeout=STALL, seq=self.seq)
        except TimeoutError:
            raise AssertionError(f"no ack of seq {self.seq} in {STALL:.0f} s") from None
        try:  # acked means stored and published: a console subscribed before the send must get it
            await self.healthy_console.recv_type("location", timeout=STALL, lat=lat, vehicle_id=self.vehicle_id)
        except TimeoutError:
            raise AssertionError(f"seq {self.seq} was acked, but the console did not get it in {STALL:.0f} s") from None


def check_replies(replies: list[dict[str, Any]], close_code: int | None, payload: Any) -> None:
    """Every answer is a typed frame; errors carry a code and a message; the socket stayed open."""
    assert close_code is None, f"closed with {close_code} after {payload!r:.200}"
    for frame in replies:
        assert isinstance(frame.get("type"), str), frame
        if frame["type"] == "error":
            assert isinstance(frame.get("code"), str) and isinstance(frame.get("message"), str), frame


def crashes(records: list[logging.LogRecord]) -> list[str]:
    """Errors logged by Tornado (an uncaught exception in a handler) or anything else at ERROR."""
    return [f"{r.name}: {r.getMessage()[:300]}" for r in records if r.levelno >= logging.ERROR]


@pytest.fixture
def arena(app: Any, api: Api, base_url: str, io_loop: Any) -> Iterator[Arena]:
    async def build() -> Arena:
        team = await fleet(app, api, drivers=2)
        client = await make_user(app, "BASE")
        client_token = await login(app, client)
        body = order_body(await make_vehicle_type(app), organization=str(team["org"]["_id"]))
        order = (await api.post("/api/v1/orders", body, token=client_token)).json
        built = Arena(
            base_url,
            {"driver": team["drivers"][0]["token"], "console": team["manager_token"], "order": client_token},
            {"driver": "/ws/driver", "console": "/ws/console", "order": f"/ws/orders/{order['id']}"},
            vehicle_id=team["drivers"][1]["vehicle"]["id"],
        )
        built.healthy_driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["drivers"][1]["token"])
        await built.healthy_driver.recv_type("ready")
        built.healthy_console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
        await built.healthy_console.send({"type": "subscribe", "channel": f"fleet:{team['org']['_id']}"})
        await built.healthy_console.recv_type("subscribed")
        await built.heartbeat()
        return built

    return io_loop.run_sync(build, timeout=HANG_GUARD)


KINDS = ("driver", "console", "order")


# 150 generated frames per socket type in the suite; a longer local run: WS_FUZZ_EXAMPLES=5000 make test ...
@settings(
    max_examples=int(os.environ.get("WS_FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=PAYLOADS)
def test_generated_frames_get_error_frames_and_disturb_nobody(
    arena: Arena, io_loop: Any, payload: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def attack_each_kind() -> None:
        for kind in KINDS:
            replies, closed = await arena.attack(kind, payload)
            check_replies(replies, closed, payload)
        await arena.heartbeat()

    io_loop.run_sync(attack_each_kind, timeout=HANG_GUARD)
    assert not crashes(caplog.records)


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_malicious_frames_get_error_frames_on_every_socket(
    arena: Arena, caplog: pytest.LogCaptureFixture
) -> None:
    attacks = malicious(point(0)["ts"])
    for kind in KINDS:
        for name, (payload, driver_code, other_code) in attacks.items():
            replies, closed = await arena.attack(kind, payload)
            check_replies(replies, closed, name)
            expected = driver_code if kind == "driver" else other_code
            assert [(f["type"], f["code"]) for f in replies] == [("error", expected)], (kind, name, replies)
        await arena.heartbeat()
    assert not crashes(caplog.records)


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_oversize_and_invalid_utf8_frames_close_only_their_socket(
    arena: Arena, caplog: pytest.LogCaptureFixture
) -> None:
    for kind in KINDS:
        client = await arena.target(kind)
        await client.send('{"type": "%s"}' % ("x" * 70_000))
        assert await client.closed() == 1009  # message too big
        url = ws_url(arena.base_url, arena.paths[kind])
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {arena.tokens[kind]}"}, max_size=None
        ) as raw:
            while jsonutil.loads(await raw.recv()).get("type") != "ready":
                pass
            await raw.send(b'{"type": "\xff\xfe"}', text=True)  # a text frame that is not UTF-8
            with pytest.raises(websockets.ConnectionClosed):  # noqa: PT012 - read until the server drops us
                while True:
                    await asyncio.wait_for(raw.recv(), 10)
            assert raw.close_code in (1006, 1007), raw.close_code  # Tornado drops such a peer (1006)
        await arena.heartbeat()
    assert not crashes(caplog.records)


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_unauthenticated_garbage_is_refused_without_harm(arena: Arena, caplog: pytest.LogCaptureFixture) -> None:
    for kind in KINDS:
        url = ws_url(arena.base_url, arena.paths[kind])
        for first, answer in (
            (b"\x00\x01", ["error"]),
            ("{not json", ["error"]),
            (nested(10_000), ["error"]),
            ('[{"type": "auth"}]', ["error"]),
            ('{"type": "auth", "token": {"$ne": ""}}', []),
            ('{"type": "auth", "token": "%s"}' % ("A" * 60_000), []),
            ('{"type": "subscribe", "channel": "fleet:x"}', []),
        ):
            client = await WsClient.connect(url)
            await client.conn.write_message(first, binary=isinstance(first, bytes))
            frames = []
            while (frame := await client.recv()) is not None:
                frames.append(frame["type"])
            # an error frame for what cannot be read; 4401 at once for a wrong first frame, else at the auth timeout
            assert (frames, client.close_code) == (answer, 4401), (kind, first[:40])
        await arena.heartbeat()
    assert not crashes(caplog.records)


async def flood(client: WsClient, frames: list[str]) -> list[dict[str, Any]]:
    """Send every frame as fast as the socket takes them while reading answers; answers until the probe's."""
    got: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            frame = await client.recv(timeout=STALL)
            assert frame is not None, f"closed with {client.close_code} during the flood"
            if frame.get("type") == "error" and "flood-end" in frame.get("message", ""):
                return
            got.append(frame)

    reader = asyncio.get_running_loop().create_task(read())
    for frame in frames:
        await client.conn.write_message(frame)
    await client.send({"type": "flood-end"})
    await reader  # ends at the probe's answer; fails if a frame does not come for STALL seconds
    return got


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_floods_are_answered_in_full_and_others_keep_streaming(
    arena: Arena, caplog: pytest.LogCaptureFixture
) -> None:
    beats = 0
    flooding = True

    async def keep_beating() -> None:
        nonlocal beats
        while flooding:
            await arena.heartbeat()
            beats += 1
            await asyncio.sleep(0.05)

    beating = asyncio.get_running_loop().create_task(keep_beating())
    started = time.monotonic()
    ts = point(0)["ts"]
    garbage = ["{not json", '{"type": 1}', "[]", '{"type": "nope"}', '{"type": "location", "lat": NaN}'] * 600
    try:
        for kind in KINDS:
            answers = await flood(await arena.target(kind), garbage)
            assert len(answers) == len(garbage) and {a["type"] for a in answers} == {"error"}, kind
        driver = await arena.target("driver")
        points = [
            jsonutil.dumps({"type": "location", "seq": n, "lat": 55.0, "lon": 37.0, "ts": ts}).decode()
            for n in range(1, 2001)
        ]
        answers = await flood(driver, points)
        assert not [a for a in answers if a["type"] == "error"]
        if max(a["seq"] for a in answers if a["type"] == "ack") < 2000:  # acks follow storage, maybe later
            await driver.recv_type("ack", timeout=STALL, seq=2000)
    finally:
        flooding = False
        await beating  # a failed heartbeat raises here
    assert beats >= 1, f"no heartbeat in {time.monotonic() - started:.1f} s of floods"
    assert not crashes(caplog.records)
