"""Websockets: `/ws/driver` (GPS in, assignments out), `/ws/console` (live fleet), `/ws/orders/{id}`.

Handlers only speak the protocol; validation, batching, storage and fan-out live in
dispatch/realtime/.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import tornado.iostream
import tornado.websocket

from dispatch.core import jsonutil, metrics
from dispatch.core.errors import ApiError
from dispatch.core.policy import public
from dispatch.core.storage import UNAVAILABLE
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.core.vocabulary import Category
from dispatch.domain import api_keys
from dispatch.realtime.access import DriverVehicle, may_subscribe, may_track_order
from dispatch.realtime.frames import Frame, FrameError, channel_of, frame_type, parse_points, since_of
from dispatch.realtime.hub import Hub
from dispatch.realtime.ingest import Submission
from dispatch.realtime.outbox import QUEUE_LIMIT, STUCK_AFTER, Outbox
from dispatch.services import Services

log = logging.getLogger("dispatch.realtime")

AUTH_TIMEOUT = 5.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4008
CLOSE_TRY_AGAIN = 1013  # a store is unreachable: reconnect shortly
WS_DOC = """
        tags: [realtime]
        description: |
          Upgrade to a websocket (SPEC section 6). Authenticate with `Authorization: Bearer`,
          `?token=` or a first frame `{"type": "auth", "token": ...}` within 5 s; failures close
          with 4401 / 4403 after the upgrade. Sockets are for people: an API key (`X-API-Key`, or a
          `dsp_…` key given as the token) is closed with 4403 `not_for_api_keys`.
        parameters:
          - {name: token, in: query, required: false, schema: {type: string}}
        responses:
          101: {description: Switching to the websocket protocol.}
          400: {$ref: '#/components/responses/400'}
"""


class Socket(tornado.websocket.WebSocketHandler):
    """Common protocol: authentication, error frames, a bounded outbox, channel subscriptions."""

    kind = "socket"
    categories: frozenset[str] = frozenset()
    route = ""
    session_ended_code = CLOSE_UNAUTHENTICATED  # the token is dead: the app signs in again

    def initialize(self) -> None:
        self.user: dict[str, Any] | None = None
        self.session_id: str | None = None
        self.outbox: Outbox | None = None
        self.channels: set[str] = set()
        self._auth_timer: Any = None
        self._gone = False

    # --- dependencies -------------------------------------------------
    @property
    def services(self) -> Services:
        """The process's services (dispatch.services)."""
        services: Services = self.settings["services"]
        return services

    @property
    def hub(self) -> Hub:
        """This process's fan-out (the one of `services`)."""
        return self.services.hub

    def check_origin(self, origin: str) -> bool:
        """Same-origin pages and the configured CORS origins may connect (apps send no Origin)."""
        allowed = self.services.settings.cors_origin_list
        return "*" in allowed or origin in allowed or urlsplit(origin).netloc == self.request.host

    def prepare(self) -> None:
        """Only a GET that asks for the upgrade reaches the protocol; other requests get a JSON error."""
        if self.request.method != "GET":
            raise ApiError(405)
        connection = {part.strip().lower() for part in self.request.headers.get("Connection", "").split(",")}
        if self.request.headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection:
            raise ApiError(400, "websocket_upgrade_required", "Open this path as a websocket (Upgrade: websocket).")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The SPEC error envelope, as for REST handlers (Tornado's default is an HTML page)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = exc if isinstance(exc, ApiError) else ApiError(status_code)
        if status_code == 405:
            self.set_header("Allow", "GET")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(jsonutil.dumps({"error": {"code": error.code, "message": error.message, "details": {}}}))

    # --- life cycle -----------------------------------------------------
    async def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)  # live frames are small: no Nagle delay waiting for the peer's ACK
        metrics.WEBSOCKETS.labels(self.kind).inc()
        self.hub.sockets.add(self)  # closed with 1001 on shutdown
        self.outbox = Outbox(
            self._send,
            self._stuck,
            self.kind,
            limit=self.settings.get("ws_queue_limit", QUEUE_LIMIT),
            stuck_after=self.settings.get("ws_stuck_after", STUCK_AFTER),
        )
        token = self._upgrade_token()
        if api_keys.HEADER in self.request.headers:  # sockets are for people (SPEC section 9)
            self.close(CLOSE_FORBIDDEN, "not_for_api_keys")
        elif token:
            await self._authenticate(token)
        else:
            self._auth_timer = asyncio.get_running_loop().call_later(
                self.settings.get("ws_auth_timeout", AUTH_TIMEOUT),
                self.close,
                CLOSE_UNAUTHENTICATED,
                "authentication timeout",
            )

    def _upgrade_token(self) -> str | None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.get_query_argument("token", None)

    async def _authenticate(self, token: str) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if api_keys.looks_like_key(token):  # a key where a person's token belongs: forbidden, not unknown
            self.close(CLOSE_FORBIDDEN, "not_for_api_keys")
            return
        try:
            caller = await self.services.identity.resolve(token)
        except ApiError as exc:
            self.close(CLOSE_UNAUTHENTICATED, exc.code)
            return
        except UNAVAILABLE as exc:
            self._unavailable(exc)
            return
        if caller.user.get("category") not in self.categories:
            self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        self.user = caller.user
        self.session_id = caller.session_id
        try:
            if await self.on_authenticated():
                await self._follow(f"user:{self.user['_id']}")
                self.send_json({"type": "ready", "user_id": str(self.user["_id"])})
        except UNAVAILABLE as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> None:
        """A store is down while setting the socket up: close so the client reconnects later."""
        log.warning("%s socket closed with 1013: %s: %s", self.kind, type(exc).__name__, exc)
        self.close(CLOSE_TRY_AGAIN, "try again later")

    async def on_authenticated(self) -> bool:
        """Set the socket up for its user; False when it was closed instead."""
        return True

    async def on_message(self, message: str | bytes) -> None:
        if self._gone:
            return
        try:
            if isinstance(message, bytes):
                raise FrameError("bad_frame", "Send JSON text frames.")
            try:
                frame = jsonutil.loads(message)
            except jsonutil.JSONDecodeError:
                raise FrameError("malformed_json", "The frame is not valid JSON.") from None
            kind = frame_type(frame)
            if self.user is None:
                await self._auth_frame(kind, frame)
            else:
                await self.handle(kind, frame)
        except FrameError as exc:
            self.send_json({"type": "error", "code": exc.code, "message": str(exc), **exc.details})
        except UNAVAILABLE as exc:  # the frame could not be acted on now; the socket stays open
            log.warning("%s frame not handled: %s: %s", self.kind, type(exc).__name__, exc)
            self.send_json(
                {
                    "type": "error",
                    "code": "service_unavailable",
                    "message": "A data store is unreachable; try again shortly.",
                }
            )

    async def _auth_frame(self, kind: str, frame: dict[str, Any]) -> None:
        token = frame.get("token")
        if kind != "auth" or not isinstance(token, str) or not token:
            self.close(CLOSE_UNAUTHENTICATED, "authenticate first")
            return
        await self._authenticate(token)

    async def handle(self, kind: str, frame: dict[str, Any]) -> None:
        """Act on a frame of an authenticated socket."""
        raise FrameError("unknown_type", f"Frames of type {kind!r} are not accepted here.")

    def on_close(self) -> None:
        if self._gone:
            return
        self._gone = True
        self.hub.sockets.discard(self)
        metrics.WEBSOCKETS.labels(self.kind).dec()
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self.outbox is not None:
            self.outbox.close()
        if self.channels:
            self.hub.spawn(self.hub.unsubscribe(self, self.channels))
        self.on_gone()

    def on_gone(self) -> None:
        """Hook for subclasses: the socket closed."""

    # --- outgoing -------------------------------------------------------
    def send_json(self, data: dict[str, Any]) -> None:
        """Queue a frame for this socket."""
        if self.outbox is not None:
            self.outbox.put(Frame.own(data))

    def deliver(self, frame: Frame) -> None:
        """A live frame from the hub (after the replay of its channel, when there was one)."""
        if frame.type == "session_ended":
            if frame.data.get("session_id") in ("*", self.session_id):
                self.close(self.session_ended_code, "session ended")
            return
        if frame.type == "scope_changed":
            self.recheck_soon()
            return
        # the subscription may have ended while this frame was on its way
        if frame.channel in self.channels and self.outbox is not None:
            self.outbox.put(frame)

    def _send(self, frame: bytes) -> asyncio.Future[None]:
        """Write a text frame; the future of the write, done at once when the socket took it whole.

        Tornado's `write_message` wraps each write in a new task (to translate its error); at thousands
        of frames a second that is a good part of a socket's cost, so frames go to the protocol's
        frame writer directly. The socket offers no compression, which is the one thing the wrapper adds.
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        try:
            return connection._write_frame(True, 0x1, frame)  # type: ignore[attr-defined]
        except tornado.iostream.StreamClosedError:
            raise tornado.websocket.WebSocketClosedError() from None

    # --- access re-checks -------------------------------------------------
    def recheck_soon(self) -> None:
        """Re-check this socket's access in the background (what the user may see has changed)."""
        if not self._gone and self.user is not None:
            self.hub.spawn(self._recheck())

    async def _recheck(self) -> None:
        """Read the user again; close when they may no longer use this socket, else narrow its scope."""
        if self._gone or self.user is None:
            return
        user = await self.services.identity.users.get(self.user["_id"])
        if user is None or not user.get("is_active") or user.get("category") not in self.categories:
            self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        self.user = user
        await self.on_scope_change()

    async def on_scope_change(self) -> None:
        """Hook for subclasses: drop what `self.user` (just re-read) may no longer follow."""

    async def _revoke(self, channel: str) -> None:
        """End a subscription the user lost access to: an error frame, then nothing more of it."""
        self.channels.discard(channel)
        if self.outbox is not None:
            self.outbox.discard_channel(channel)
        self.send_json(
            {
                "type": "error",
                "code": "forbidden",
                "message": f"You may no longer follow {channel}.",
                "channel": channel,
            }
        )
        await self.hub.unsubscribe(self, [channel])

    def _stuck(self, reason: str) -> None:
        log.warning("closing a stuck %s socket: %s", self.kind, reason)
        self.close(CLOSE_TOO_SLOW, "too slow")

    # --- subscriptions ----------------------------------------------------
    async def _follow(self, channel: str, since: str | None = None) -> None:
        """Subscribe; with `since`, first replay what the channel carried after that offset."""
        assert self.outbox is not None
        self.channels.add(channel)
        try:
            await self.hub.follow(self, channel, since, self.outbox)
        except BaseException:
            if not self.hub.follows(self, channel):  # not subscribed (a replay that failed leaves it live)
                self.channels.discard(channel)
            raise

    async def _unfollow(self, channel: str) -> None:
        self.channels.discard(channel)
        await self.hub.unsubscribe(self, [channel])
        self.send_json({"type": "unsubscribed", "channel": channel})


class DriverSocket(Socket):
    """A driver app: GPS in (acked once stored), assignments and order updates out."""

    kind = "driver"
    categories = frozenset({Category.DRIVER})

    @public
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    get.__doc__ = (
        """The driver's live socket: location / locations / status frames in; ack, assignment, order out.
        ---
        operationId: openDriverSocket"""
        + WS_DOC
    )

    def initialize(self) -> None:
        super().initialize()
        self.vehicle: DriverVehicle | None = None
        self.highest = -1  # the highest seq this connection sent: lower ones are history, not live positions

    async def on_authenticated(self) -> bool:
        self.vehicle = DriverVehicle(self.services.db, self.user["_id"])  # type: ignore[index]
        context = await self.vehicle.load()
        await self._presence(True, context)
        return True

    async def handle(self, kind: str, frame: dict[str, Any]) -> None:
        if kind in ("location", "locations"):
            self._locations(frame)
        elif kind == "status":
            await self._status(frame)
        else:
            await super().handle(kind, frame)

    def _locations(self, frame: dict[str, Any]) -> None:
        points = parse_points(frame, utcnow())
        vehicle = self.vehicle
        assert vehicle is not None
        if vehicle.context.vehicle_id is None and not vehicle.stale:
            raise FrameError("no_vehicle", "No vehicle is assigned to you; ask your dispatcher.")
        if vehicle.stale:
            vehicle.reload_soon(self.hub.spawn)
        # Every point goes to the store, whatever was acked before: its `_id` (driver:seq) makes a
        # resend a no-op there, so a point is skipped only when that exact seq is already stored.
        live_above, self.highest = self.highest, max(self.highest, points[-1]["seq"])
        self.services.ingest.submit(Submission(vehicle.context, points, self._ack, live_above=live_above))

    def _ack(self, seq: int) -> None:
        self.send_json({"type": "ack", "seq": seq})

    async def _status(self, frame: dict[str, Any]) -> None:
        """Move one of the driver's orders along the state machine (the same rules as the REST call)."""
        order_id = frame.get("order_id")
        if not isinstance(order_id, str) or not isinstance(frame.get("status"), str):
            raise FrameError("bad_frame", "A status frame needs string `order_id` and `status`.")
        try:
            order = await self.services.orders.change_status_unchecked(
                self.user,  # type: ignore[arg-type]
                order_id,
                frame["status"],
                frame.get("reason"),
            )
        except ApiError as exc:
            raise FrameError(exc.code, exc.message, order_id=order_id, **exc.details) from None
        self.send_json({"type": "order", "event": "status_changed", "order": order})
        if self.vehicle is not None:
            await self.vehicle.load()

    def deliver(self, frame: Frame) -> None:
        super().deliver(frame)
        if self.vehicle is not None and frame.type in ("assignment", "order"):
            self.hub.spawn(self.vehicle.load())

    async def on_scope_change(self) -> None:
        if self.vehicle is not None:
            await self.vehicle.load()  # e.g. no longer in the vehicle's organization

    def on_gone(self) -> None:
        if self.vehicle is not None and self.user is not None:
            self.hub.spawn(self._presence(False, self.vehicle.context))

    async def _presence(self, online: bool, context: Any) -> None:
        if context.organization is None:
            return
        data = {
            "type": "presence",
            "channel": f"fleet:{context.organization}",
            "driver_id": context.driver_id,
            "vehicle_id": context.vehicle_id,
            "online": online,
            "at": _now_iso(),
        }
        try:
            await self.hub.publish_many([(f"fleet:{context.organization}", data)])
        except Exception as exc:  # noqa: BLE001 - presence is best effort; the socket itself must not fail
            log.warning("presence not published: %s", type(exc).__name__)


class ConsoleSocket(Socket):
    """A manager console: subscribes to its organizations' channels, with replay after reconnects."""

    kind = "console"
    categories = frozenset({Category.MANAGER, Category.ADMIN})

    @public
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    get.__doc__ = (
        """The console's live socket: subscribe / unsubscribe in; location, order, waybill, presence out.
        ---
        operationId: openConsoleSocket"""
        + WS_DOC
    )

    async def handle(self, kind: str, frame: dict[str, Any]) -> None:
        if kind == "subscribe":
            channel, since = channel_of(frame), since_of(frame)
            if not await may_subscribe(self.services.db, self.user, channel):  # type: ignore[arg-type]
                raise FrameError("forbidden", f"You may not follow {channel}.", channel=channel)
            await self._follow(channel, since)
        elif kind == "unsubscribe":
            await self._unfollow(channel_of(frame))
        else:
            await super().handle(kind, frame)

    async def on_scope_change(self) -> None:
        if self.user is None:  # not signed in yet: nothing followed
            return
        for channel in sorted(self.channels):
            if not channel.startswith("user:") and not await may_subscribe(self.services.db, self.user, channel):
                await self._revoke(channel)


class OrderSocket(Socket):
    """One order's live view: its truck's position and its status events."""

    kind = "order"
    categories = frozenset({Category.BASE, Category.DRIVER, Category.MANAGER, Category.ADMIN})
    session_ended_code = CLOSE_FORBIDDEN  # SPEC 13: the order has left the user's scope

    @public
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    get.__doc__ = (
        """An order's live socket: the assigned truck's location and the order's status events.
        ---
        operationId: openOrderSocket"""
        + WS_DOC
    )

    async def on_authenticated(self) -> bool:
        order_id = self.path_kwargs["order_id"]
        if not await may_track_order(self.services.db, self.user, order_id):  # type: ignore[arg-type]
            self.close(CLOSE_FORBIDDEN, "forbidden")
            return False
        await self._follow(f"order:{order_id}")
        return True

    async def handle(self, kind: str, frame: dict[str, Any]) -> None:
        if kind == "subscribe":
            channel, since = channel_of(frame), since_of(frame)
            if channel not in self.channels:
                raise FrameError("forbidden", "This socket follows its order only.", channel=channel)
            await self._unfollow(channel)
            await self._follow(channel, since)
        else:
            await super().handle(kind, frame)

    def deliver(self, frame: Frame) -> None:
        super().deliver(frame)
        if frame.type == "order" and (frame.channel or "").startswith("order:"):
            self.recheck_soon()  # a decline or another driver takes the order out of a driver's scope

    async def on_scope_change(self) -> None:
        order_id = self.path_kwargs["order_id"]
        if not await may_track_order(self.services.db, self.user, order_id):  # type: ignore[arg-type]
            self.close(CLOSE_FORBIDDEN, "forbidden")


def _now_iso() -> str:
    return isoformat(utcnow())


default_handlers = [
    (r"/ws/driver", DriverSocket),
    (r"/ws/console", ConsoleSocket),
    (r"/ws/orders/(?P<order_id>[^/]+)", OrderSocket),
]
