"""A real websocket client for tests (Tornado's), with helpers to wait for frames."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import tornado.httpclient
import tornado.websocket

from dispatch.core import jsonutil
from tests.support.factories import login, make_org, make_user
from tests.support.fleet_fixtures import make_vehicle_type, order_body
from tests.support.helpers import Api

OPEN: list[WsClient] = []  # closed by the `ws_cleanup` fixture after each test


class WsClient:
    """One websocket connection; frames are read in order, closes are recorded."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.seen: list[dict[str, Any]] = []
        OPEN.append(self)

    @classmethod
    async def connect(cls, url: str, token: str | None = None, *, header: bool = True) -> WsClient:
        """Open a socket, with the token in the Authorization header (or nowhere)."""
        headers = {"Authorization": f"Bearer {token}"} if token and header else {}
        request = tornado.httpclient.HTTPRequest(url, headers=headers, request_timeout=10)
        return cls(await tornado.websocket.websocket_connect(request, max_message_size=16 * 1024 * 1024))

    async def send(self, frame: Any) -> None:
        """Send a frame (dicts as JSON text)."""
        await self.conn.write_message(
            jsonutil.dumps(frame).decode() if not isinstance(frame, (str, bytes)) else frame,
            binary=isinstance(frame, bytes),
        )

    async def recv(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next frame, or None once the socket is closed."""
        message = await asyncio.wait_for(self.conn.read_message(), timeout)
        if message is None:
            return None
        frame = jsonutil.loads(message)
        self.seen.append(frame)
        return frame

    async def recv_type(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The next frame of this type (and field values), skipping others."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.recv(max(left, 0.01))
            if frame is None:
                raise AssertionError(f"socket closed ({self.close_code}) while waiting for {kind}")
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def closed(self, timeout: float = 10) -> int | None:
        """Wait until the server closes the socket; its close code."""
        while await asyncio.wait_for(self.conn.read_message(), timeout) is not None:
            pass
        return self.close_code

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code

    def close(self) -> None:
        self.conn.close()


def close_all() -> None:
    """Close every client a test opened (Tornado warns about unclosed ones)."""
    while OPEN:
        OPEN.pop().close()


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://") + path


async def fleet(app: Any, api: Any, drivers: int = 1) -> dict[str, Any]:
    """An organization with a manager and drivers, each with an available vehicle (made through the API)."""
    org = await make_org(app)
    manager = await make_user(app, "MANAGER", organizations=[org["_id"]])
    manager_token = await login(app, manager)
    crew = []
    for _n in range(drivers):
        driver = await make_user(app, "DRIVER", organizations=[org["_id"]])
        created = await api.post(
            "/api/v1/vehicles",
            {
                "plate": f"T{uuid.uuid4().hex[:6].upper()}",
                "model": "Tow",
                "capacity_kg": 3500,
                "organization": str(org["_id"]),
                "driver_id": str(driver["_id"]),
                "status": "available",
            },
            token=manager_token,
        )
        assert created.status == 201, created.json
        crew.append({"user": driver, "token": await login(app, driver), "vehicle": created.json})
    return {"org": org, "manager": manager, "manager_token": manager_token, "drivers": crew}


async def ordered(app: Any, api: Api, team: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A client's order placed in the team's organization; returns (order, client token)."""
    client = await make_user(app, "BASE")
    token = await login(app, client)
    body = order_body(await make_vehicle_type(app), organization=str(team["org"]["_id"]))
    created = await api.post("/api/v1/orders", body, token=token)
    assert created.status == 201, created.json
    return created.json, token


def point(seq: int, lat: float = 55.75, lon: float = 37.61, **extra: Any) -> dict[str, Any]:
    """A valid GPS point of now."""
    from dispatch.core.timeutil import isoformat, utcnow

    return {
        "seq": seq,
        "lat": lat,
        "lon": lon,
        "ts": isoformat(utcnow()),
        "speed": 12.5,
        "heading": 90.0,
        "accuracy": 5.0,
        **extra,
    }
