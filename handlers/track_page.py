"""The public tracking page `/t/{token}` and its socket `/ws/track/{token}` (SPEC section 11).

The socket is read-only and needs no account: the token is the credential. It follows the order's
channel and passes every frame through the public projection (models/tracking.py), dropping what the
public does not see; `since` works as on `/ws/orders/{id}`. Revoked links close it with 4403 (a live
notice on `track:<order_id>`), and so does a link that expires while it is open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dispatch.core import metrics
from dispatch.core.errors import ApiError
from dispatch.core.policy import public
from dispatch.core.storage import UNAVAILABLE
from dispatch.core.timeutil import utcnow
from dispatch.domain.tracking import REVOKED, notice_channel
from dispatch.realtime.frames import Frame, FrameError, channel_of, since_of
from dispatch.realtime.outbox import STUCK_AFTER, Outbox
from handlers.console import PageHandler
from handlers.realtime import CLOSE_FORBIDDEN, CLOSE_TRY_AGAIN, Socket
from models.tracking import expires_at, project_frame

STATIC = Path(__file__).resolve().parent.parent / "dispatch" / "static" / "track"
# Read once at start-up: static files shipped with the package.
PAGE_HTML = (STATIC / "index.html").read_bytes()
GONE_HTML = (STATIC / "gone.html").read_bytes()


class TrackPageHandler(PageHandler):
    @public
    async def get(self, token: str) -> None:
        """The tracking page of a shared order, for a phone (an unknown or expired link: a friendly 404 page).
        ---
        tags: [tracking]
        operationId: getTrackingPage
        description: Its scripts read `/api/v1/track/{token}` and follow `/ws/track/{token}`; the same
          content security policy as `/console`.
        responses:
          200:
            description: An HTML page.
            content:
              text/html: {schema: {type: string}}
          404:
            description: Unknown, expired or revoked link. A browser (`Accept` with `text/html`) gets an HTML
              page saying the link does not work (any more); other clients the JSON error.
            content:
              text/html: {schema: {type: string}}
              application/json: {schema: Error}
        """
        await self.services.tracking.limit(self.client_ip)
        try:
            await self.services.tracking.order_of(token)
            page, status = PAGE_HTML, 200
        except ApiError as exc:
            if exc.status != 404 or "text/html" not in self.request.headers.get("Accept", ""):
                raise  # a program asking gets the JSON error, as everywhere
            page, status = GONE_HTML, 404
        self.set_status(status)
        self.set_header("Referrer-Policy", "no-referrer")  # the token is in the path
        self.set_header("Cache-Control", "no-store")
        self.send_page(page)


class PublicSink:
    """The socket's outbox as the hub sees it while replaying: each frame projected, or dropped."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.limit = outbox.limit

    def put(self, frame: Frame) -> None:
        shown = public_frame(frame)
        if shown is not None:
            self.outbox.put(shown)

    async def room(self, size: int) -> bool:
        return await self.outbox.room(size)


def public_frame(frame: Frame) -> Frame | None:
    """A frame of the order's channel as the public sees it (or None); a socket's own frames go as they are."""
    if frame.offset is None and frame.type in ("subscribed", "error"):
        return frame
    data = project_frame(frame.data)
    return None if data is None else Frame.carried(str(frame.channel), frame.offset, data)


class TrackSocket(Socket):
    """A tracking link's live view: the order's `order`, `location` and `eta` frames, projected."""

    kind = "track"

    @public
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    get.__doc__ = """A tracking link's live socket: the order's status, its truck's location and ETA (read-only).
        ---
        tags: [realtime, tracking]
        operationId: openTrackingSocket
        security: []
        description: |
          No account: the token in the path is the credential. Frames `order` (`{order: {id, status,
          pickup, dropoff, eta}}`), `location` (`{location: {lat, lon, ts, speed, heading}}`) and `eta`
          carry the channel's `offset`; after a reconnect send `{"type": "subscribe", "channel":
          "order:<id>", "since": <offset>}` to replay what was missed. Unknown, expired or revoked
          token: closed with 4403 after the upgrade; a link revoked while open closes it with 4403. Over the
          per-address rate limit (`track_ip`): closed with 1013 (try again later).
        responses:
          101: {description: Switching to the websocket protocol.}
          400: {$ref: '#/components/responses/400'}
"""

    def initialize(self) -> None:
        super().initialize()
        self.order_channel = ""
        self._expiry: asyncio.TimerHandle | None = None

    async def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)
        metrics.WEBSOCKETS.labels(self.kind).inc()
        self.hub.sockets.add(self)
        self.outbox = Outbox(
            self._send, self._stuck, self.kind, stuck_after=self.settings.get("ws_stuck_after", STUCK_AFTER)
        )
        try:
            await self.services.tracking.limit(self.request.remote_ip or "")
            order = await self.services.tracking.order_of(self.path_kwargs["token"])
        except ApiError as exc:
            limited = exc.status == 429
            self.close(CLOSE_TRY_AGAIN if limited else CLOSE_FORBIDDEN, "rate_limited" if limited else "forbidden")
            return
        except UNAVAILABLE as exc:
            self._unavailable(exc)
            return
        self.order_channel = f"order:{order['_id']}"
        self._watch_expiry(order)
        self.channels.add(notice_channel(order["_id"]))
        await self.hub.subscribe(self, notice_channel(order["_id"]))
        await self._follow_public(self.get_query_argument("since", None))
        self.send_json({"type": "ready", "order_id": str(order["_id"])})

    async def _follow_public(self, since: str | None) -> None:
        assert self.outbox is not None
        self.channels.add(self.order_channel)
        await self.hub.follow(self, self.order_channel, since, PublicSink(self.outbox))

    def _watch_expiry(self, order: dict[str, Any]) -> None:
        ends = expires_at(order)
        if ends is not None and self._expiry is None:
            delay = max(0.0, (ends - utcnow()).total_seconds())
            self._expiry = asyncio.get_running_loop().call_later(delay, self.close, CLOSE_FORBIDDEN, "expired")

    async def _auth_frame(self, kind: str, frame: dict[str, Any]) -> None:
        await self.handle(kind, frame)  # nobody signs in here: every frame goes to `handle`

    async def handle(self, kind: str, frame: dict[str, Any]) -> None:
        if kind != "subscribe":
            raise FrameError("unknown_type", "This socket is read-only; send only `subscribe` with `since`.")
        channel, since = channel_of(frame), since_of(frame)
        if channel != self.order_channel:
            raise FrameError("forbidden", "This socket follows its order only.", channel=channel)
        self.channels.discard(channel)
        await self.hub.unsubscribe(self, [channel])
        await self._follow_public(since)

    def deliver(self, frame: Frame) -> None:
        if frame.type == REVOKED:
            self.close(CLOSE_FORBIDDEN, "revoked")
            return
        if frame.channel != self.order_channel or self.outbox is None:
            return
        shown = public_frame(frame)
        if shown is not None:
            self.outbox.put(shown)
        if frame.type == "order":
            self.hub.spawn(self._recheck_link())

    async def _recheck_link(self) -> None:
        """After a status change: the link may have ended (revoked elsewhere, or the order ended)."""
        try:
            order = await self.services.tracking.order_of(self.path_kwargs["token"])
        except ApiError:
            self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        self._watch_expiry(order)

    def on_gone(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()


default_handlers = [
    (r"/t/(?P<token>[^/]+)", TrackPageHandler),
    (r"/ws/track/(?P<token>[^/]+)", TrackSocket),
]
