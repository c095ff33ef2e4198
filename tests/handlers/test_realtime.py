"""The websocket protocol against the running app: auth, GPS ingest, fan-out, replay, bad frames."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dispatch.core import jsonutil
from tests.support.factories import login, make_user
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url


@pytest.fixture
def app(app: Any) -> Any:
    app.settings["ws_auth_timeout"] = 0.5
    app.settings["ws_stuck_after"] = 3.0
    return app


async def gps_count(app: Any, **query: Any) -> int:
    return await app.settings["services"].db["gps_points"].count_documents(query)


@pytest.mark.gen_test(timeout=60)
async def test_auth_by_header_query_or_first_frame(app: Any, api: Api, base_url: str) -> None:
    crew = (await fleet(app, api))["drivers"][0]
    by_header = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    assert (await by_header.recv_type("ready"))["user_id"] == str(crew["user"]["_id"])
    by_query = await WsClient.connect(ws_url(base_url, f"/ws/driver?token={crew['token']}"))
    await by_query.recv_type("ready")
    by_frame = await WsClient.connect(ws_url(base_url, "/ws/driver"))
    await by_frame.send({"type": "auth", "token": crew["token"]})
    await by_frame.recv_type("ready")
    for client in (by_header, by_query, by_frame):
        client.close()


@pytest.mark.gen_test(timeout=60)
async def test_auth_refusals_close_with_4401_and_4403(app: Any, api: Api, base_url: str) -> None:
    client_token = await login(app, await make_user(app, "BASE"))
    bad = await WsClient.connect(ws_url(base_url, "/ws/driver"), "not-a-token")
    assert await bad.closed() == 4401
    silent = await WsClient.connect(ws_url(base_url, "/ws/console"))
    assert await silent.closed() == 4401  # no auth frame within the timeout
    wrong_first = await WsClient.connect(ws_url(base_url, "/ws/console"))
    await wrong_first.send({"type": "subscribe", "channel": "fleet:x"})
    assert await wrong_first.closed() == 4401
    for path in ("/ws/driver", "/ws/console"):
        refused = await WsClient.connect(ws_url(base_url, path), client_token)
        assert await refused.closed() == 4403, path
    # logging out ends the session: its token no longer opens sockets
    crew = (await fleet(app, api))["drivers"][0]
    await api.post("/api/v1/auth/logout", token=crew["token"])
    ended = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    assert await ended.closed() == 4401


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_location_is_acked_stored_and_fanned_out(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api)
    crew = team["drivers"][0]
    vehicle_id = crew["vehicle"]["id"]
    console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await console.recv_type("ready")
    await console.send({"type": "subscribe", "channel": f"fleet:{team['org']['_id']}"})
    await console.recv_type("subscribed", channel=f"fleet:{team['org']['_id']}")
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    presence = await console.recv_type("presence")
    assert presence["online"] is True and presence["vehicle_id"] == vehicle_id
    await driver.recv_type("ready")
    await driver.send({"type": "location", **point(41, lat=55.7601, lon=37.6202)})
    assert (await driver.recv_type("ack"))["seq"] == 41
    assert await gps_count(app) == 1
    frame = await console.recv_type("location")
    assert frame["vehicle_id"] == vehicle_id and frame["driver_id"] == str(crew["user"]["_id"])
    assert (frame["lat"], frame["lon"], frame["speed"], frame["heading"]) == (55.7601, 37.6202, 12.5, 90.0)
    assert frame["channel"] == f"fleet:{team['org']['_id']}" and frame["offset"]
    shown = await api.get(f"/api/v1/vehicles/{vehicle_id}", token=team["manager_token"])
    assert shown.json["location"]["lat"] == 55.7601
    driver.close()
    offline = await console.recv_type("presence")
    assert offline["online"] is False


@pytest.mark.gen_test(timeout=60)
async def test_resent_seq_is_acked_again_and_stored_once(app: Any, api: Api, base_url: str) -> None:
    crew = (await fleet(app, api))["drivers"][0]
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    await driver.send({"type": "location", **point(7)})
    assert (await driver.recv_type("ack"))["seq"] == 7
    await driver.send({"type": "location", **point(7)})
    assert (await driver.recv_type("ack"))["seq"] == 7
    driver.close()
    # a new connection (the app restarted) resends unacked points: still stored once
    again = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await again.recv_type("ready")
    await again.send({"type": "locations", "points": [point(6), point(7), point(8)]})
    assert (await again.recv_type("ack"))["seq"] == 8
    assert await gps_count(app) == 3
    assert await gps_count(app, seq=7) == 1


@pytest.mark.gen_test(timeout=60)
async def test_offline_buffer_sent_after_a_live_point_is_stored(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api)
    crew = team["drivers"][0]
    console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await console.send({"type": "subscribe", "channel": f"vehicle:{crew['vehicle']['id']}"})
    await console.recv_type("subscribed", channel=f"vehicle:{crew['vehicle']['id']}")
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    # the app reconnects, sends its live point, then flushes its offline buffer (lower seqs)
    await driver.send({"type": "location", **point(7000100, lat=56.0)})
    assert (await driver.recv_type("ack"))["seq"] == 7000100
    buffer = [point(seq, lat=55.0 + (seq - 7000000) / 1000) for seq in range(7000001, 7000051)]
    await driver.send({"type": "locations", "points": buffer})
    assert (await driver.recv_type("ack"))["seq"] == 7000050
    track = await api.get(f"/api/v1/vehicles/{crew['vehicle']['id']}/track", token=team["manager_token"])
    assert track.status == 200
    assert sorted(p["lat"] for p in track.json["points"]) == sorted([p["lat"] for p in buffer] + [56.0])
    # the buffer is history: the truck stays where its live point put it
    shown = await api.get(f"/api/v1/vehicles/{crew['vehicle']['id']}", token=team["manager_token"])
    assert shown.json["location"]["lat"] == 56.0
    await driver.send({"type": "location", **point(7000101, lat=56.1)})
    await driver.recv_type("ack", seq=7000101)
    assert [f["lat"] for f in [await console.recv_type("location") for _ in range(2)]] == [56.0, 56.1]
    # resending the buffer is acked again and stores nothing twice
    await driver.send({"type": "locations", "points": buffer[:10]})
    assert (await driver.recv_type("ack"))["seq"] == 7000010
    assert await gps_count(app) == 52


@pytest.mark.gen_test(timeout=60)
async def test_offline_batch_of_500_points_is_stored_in_order(app: Any, api: Api, base_url: str) -> None:
    crew = (await fleet(app, api))["drivers"][0]
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    points = [point(n, lat=55.0 + n / 10_000) for n in range(1, 501)]
    await driver.send({"type": "locations", "points": list(reversed(points))})
    assert (await driver.recv_type("ack"))["seq"] == 500
    assert await gps_count(app) == 500
    too_many = [point(n) for n in range(1000, 1501)]
    await driver.send({"type": "locations", "points": too_many})
    error = await driver.recv_type("error")
    assert error["code"] == "batch_too_large"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed_json"),
        ('{"lat": 1}', "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "location", "seq": 1, "lat": 91, "lon": 0, "ts": "2026-01-01T00:00:00Z"}', "invalid_location"),
        ('{"type": "location", "seq": 1, "lat": "55", "lon": 0, "ts": "2026-01-01T00:00:00Z"}', "invalid_location"),
        ('{"type": "location", "seq": -1, "lat": 5, "lon": 0, "ts": "2026-01-01T00:00:00Z"}', "invalid_location"),
        ('{"type": "location", "seq": 1, "lat": 5, "lon": 0, "ts": "2999-01-01T00:00:00Z"}', "invalid_location"),
        ('{"type": "location", "seq": 1, "lat": 5, "lon": 0, "ts": "yesterday"}', "invalid_location"),
        ('{"type": "location", "seq": 1, "lat": NaN, "lon": 0, "ts": "2026-01-01T00:00:00Z"}', "malformed_json"),
        ('{"type": "location", "seq": 1, "lat": 1e300, "lon": 0, "ts": "2026-01-01T00:00:00Z"}', "invalid_location"),
        ('{"type": "locations", "points": "all"}', "invalid_location"),
        (b"\x00\x01binary", "bad_frame"),
    ],
)
@pytest.mark.gen_test(timeout=60)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    app: Any, api: Api, base_url: str, frame: Any, code: str
) -> None:
    crew = (await fleet(app, api))["drivers"][0]
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    await driver.send(frame)
    error = await driver.recv_type("error")
    assert error["code"] == code and error["message"]
    await driver.send({"type": "location", **point(1)})
    assert (await driver.recv_type("ack"))["seq"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_frames_over_64_kib_close_with_1009(app: Any, api: Api, base_url: str) -> None:
    crew = (await fleet(app, api))["drivers"][0]
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    await driver.send('{"type": "location", "pad": "' + "x" * 70_000 + '"}')
    assert await driver.closed() == 1009


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_console_scope_and_replay_after_reconnect(app: Any, api: Api, base_url: str) -> None:
    team, other = await fleet(app, api), await fleet(app, api)
    channel = f"fleet:{team['org']['_id']}"
    outsider = await WsClient.connect(ws_url(base_url, "/ws/console"), other["manager_token"])
    await outsider.recv_type("ready")
    await outsider.send({"type": "subscribe", "channel": channel})
    assert (await outsider.recv_type("error"))["code"] == "forbidden"
    await outsider.send({"type": "subscribe", "channel": f"fleet:{other['org']['_id']}"})
    await outsider.recv_type("subscribed")  # still open after the refusal

    console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await console.send({"type": "subscribe", "channel": channel})
    await console.recv_type("subscribed")
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["drivers"][0]["token"])
    await driver.recv_type("ready")
    await driver.send({"type": "location", **point(1)})
    last_seen = (await console.recv_type("location"))["offset"]
    console.close()
    for seq in (2, 3, 4):
        await driver.send({"type": "location", **point(seq, lat=55.0 + seq / 100)})
        await driver.recv_type("ack", seq=seq)
    back = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await back.send({"type": "subscribe", "channel": channel, "since": last_seen})
    await back.recv_type("subscribed")
    replayed = [await back.recv_type("location") for _ in range(3)]
    assert [f["lat"] for f in replayed] == [55.02, 55.03, 55.04]
    await driver.send({"type": "location", **point(5, lat=55.05)})
    assert (await back.recv_type("location"))["lat"] == 55.05  # then live again, nothing twice
    assert [f["lat"] for f in back.seen if f["type"] == "location"] == [55.02, 55.03, 55.04, 55.05]
    bad_since = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await bad_since.send({"type": "subscribe", "channel": channel, "since": "yesterday"})
    assert (await bad_since.recv_type("error"))["code"] == "bad_offset"


@pytest.mark.gen_test(timeout=120)
async def test_replay_from_an_old_offset_delivers_every_kept_frame(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api)
    channel = f"vehicle:{team['drivers'][0]['vehicle']['id']}"
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["drivers"][0]["token"])
    await driver.recv_type("ready")
    console = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await console.send({"type": "subscribe", "channel": channel})
    await console.recv_type("subscribed", channel=channel)
    await driver.send({"type": "location", **point(0)})
    old = (await console.recv_type("location"))["offset"]
    console.close()
    total = 5000  # what a channel keeps: ten times the socket's live outbox
    for start in range(1, total + 1, 500):
        await driver.send(
            {"type": "locations", "points": [point(n, lat=50 + n / 10_000) for n in range(start, start + 500)]}
        )
        await driver.recv_type("ack", seq=start + 499)
    back = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await back.send({"type": "subscribe", "channel": channel, "since": old})
    await back.recv_type("subscribed", channel=channel)
    replayed = [await back.recv_type("location") for _ in range(total)]
    assert [f["lat"] for f in replayed] == [50 + n / 10_000 for n in range(1, total + 1)]
    await driver.send({"type": "location", **point(total + 1, lat=51.0)})
    assert (await back.recv_type("location"))["lat"] == 51.0  # then live, nothing twice
    offsets = [f["offset"] for f in back.seen if f["type"] == "location"]
    assert len(offsets) == len(set(offsets)) == total + 1


@pytest.fixture
def raw_sockets() -> Any:
    """Raw sockets a test opens, closed at its end whatever happens."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


async def until(condition: Any, what: str, stall: float = 60) -> None:
    """Wait for a condition the server reaches on its own; fail after `stall` seconds without it."""
    deadline = asyncio.get_running_loop().time() + stall
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"still waiting for {what} after {stall:.0f} s"
        await asyncio.sleep(0.05)


def raw_upgrade(base_url: str, path: str, token: str) -> socket.socket:
    """A websocket that completes the upgrade and then never reads: the slowest possible console."""
    host, port = base_url.split("//")[1].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so the window stays small
    sock.connect((host.replace("localhost", "127.0.0.1"), int(port)))
    sock.sendall(
        (
            f"GET {path}?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def send_masked(sock: socket.socket, text: str) -> None:
    """One masked client text frame (what a browser sends)."""
    data = text.encode()
    header = bytearray([0x81])
    header += bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    mask = b"\x01\x02\x03\x04"
    sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


@pytest.mark.gen_test(timeout=300)  # a hang guard: every wait inside has its own stall limit
async def test_a_console_that_never_reads_does_not_delay_another(
    app: Any, api: Api, base_url: str, raw_sockets: list[socket.socket]
) -> None:
    from dispatch.core import metrics

    # A small per-socket queue (batches the same size, as 500 and 500 in production) lets the stuck
    # console overflow after a few hundred points instead of thousands; once its write stalls, the
    # next batch overflows it within milliseconds, long before the stuck write is given up on.
    batch = app.settings["ws_queue_limit"] = 50
    app.settings["ws_stuck_after"] = 5.0
    team = await fleet(app, api)
    channel = f"fleet:{team['org']['_id']}"
    stuck = raw_upgrade(base_url, "/ws/console", team["manager_token"])
    raw_sockets.append(stuck)
    await asyncio.sleep(0.2)
    send_masked(stuck, jsonutil.dumps({"type": "subscribe", "channel": channel}).decode())
    hub = app.settings["services"].hub
    await until(lambda: len(hub.local.get(channel, ())) == 1, "the stuck console follows the fleet")
    # The server's end of a loopback socket grows its send buffer to megabytes; held small (as the
    # stuck end's receive buffer is), the stuck console's writes stall after a few dozen frames.
    (server_end,) = hub.local[channel]
    server_end.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    healthy = await WsClient.connect(ws_url(base_url, "/ws/console"), team["manager_token"])
    await healthy.send({"type": "subscribe", "channel": channel})
    await healthy.recv_type("subscribed")
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["drivers"][0]["token"])
    await driver.recv_type("ready")
    await until(lambda: len(hub.local.get(channel, ())) == 2, "both consoles follow the fleet")
    dropped = metrics.FRAMES_DROPPED.labels("console")
    dropped_before = dropped._value.get()

    sent = received = 0
    # Until the stuck console's socket buffers are full and its queue overflows; then one batch more.
    while sent < 2 * batch or dropped._value.get() == dropped_before:
        assert sent < 12000, "the stuck console never overflowed"
        await driver.send({"type": "locations", "points": [point(n) for n in range(sent + 1, sent + batch + 1)]})
        sent += batch
        await driver.recv_type("ack", timeout=60, seq=sent)
        for _ in range(batch):  # the healthy console keeps up, as a live page would
            await healthy.recv_type("location", timeout=30)
            received += 1
    assert received == sent  # the healthy console got every point
    assert dropped._value.get() > dropped_before  # the stuck one lost old ones
    assert (await api.get("/healthz")).status == 200
    # the stuck console is disconnected (its write stalls for ws_stuck_after); the healthy one stays.
    # Waited for well short of the unanswered-ping close (40 s after opening), which would pass it too.
    await until(lambda: len(hub.local.get(channel, ())) == 1, "the stuck console's close", stall=15)
    await driver.send({"type": "location", **point(sent + 1)})
    await healthy.recv_type("location")


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_ending_a_session_closes_its_sockets(app: Any, api: Api, base_url: str) -> None:
    team = await fleet(app, api)
    crew = team["drivers"][0]
    other_token = await login(app, crew["user"])  # the same driver on a second device
    phone = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
    tablet = await WsClient.connect(ws_url(base_url, "/ws/driver"), other_token)
    for socket_ in (phone, tablet):
        await socket_.recv_type("ready")
    assert (await api.post("/api/v1/auth/logout", token=crew["token"])).status == 204
    assert await phone.closed() == 4401
    await tablet.send({"type": "location", **point(1)})
    await tablet.recv_type("ack", seq=1)  # the other session's socket is untouched
    changed = await api.post(
        "/api/v1/auth/password/change",
        {"old_password": "correct-horse-battery", "new_password": "another-horse-2"},
        token=other_token,
    )
    assert changed.status == 204
    assert await tablet.closed() == 4401  # a password change ends every session
