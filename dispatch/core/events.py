"""The one internal interface for domain events (order created / assigned / status changed,
waybill status changed, notification created, ...).

Handlers and domain code call `publish`; listeners (the real-time fan-out, metrics, ...) are
attached once at start-up, so no handler needs to know who listens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dispatch.events")


@dataclass(frozen=True)
class Event:
    """One domain event.

    `type` is the websocket frame type it becomes (`order`, `assignment`, `waybill`,
    `notification`, `presence`, ...); `channels` are where it goes (`fleet:<org_id>`,
    `order:<id>`, `vehicle:<id>`, `user:<id>`); `data` is its JSON-ready body. A `live_only`
    event reaches the sockets open now and is kept for no replay (a notice, not a fact).

    An event with a `topic` (a `WebhookEvent`, such as `order.assigned`) is also public: the
    webhooks of its `organization` that listen for the topic are told. `ordering` names what the
    event is about and its revision (`("order:<id>", 3)`): one subject's events reach each
    endpoint in that order.
    """

    type: str
    channels: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)
    live_only: bool = False
    topic: str | None = None
    organization: str | None = None
    ordering: tuple[str, int] | None = None


Listener = Callable[[Event], Awaitable[None]]


class EventBus:
    """Delivers each published event to every listener; a failing listener never fails the caller.

    Listeners run one after another, in the order they were attached, except those attached
    `alongside`: each of these runs concurrently with that chain (it shares nothing with the
    others, such as the webhook outbox's write), and `publish` returns once all are done.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._alongside: list[Listener] = []

    def listen(self, listener: Listener, *, alongside: bool = False) -> None:
        """Attach a listener (at start-up)."""
        (self._alongside if alongside else self._listeners).append(listener)

    async def publish(self, event: Event) -> None:
        """Hand an event to every listener."""
        if not self._alongside:
            await self._chain(event)
            return
        await asyncio.gather(self._chain(event), *(self._one(listener, event) for listener in self._alongside))

    async def _chain(self, event: Event) -> None:
        for listener in self._listeners:
            await self._one(listener, event)

    @staticmethod
    async def _one(listener: Listener, event: Event) -> None:
        try:
            await listener(event)
        except Exception:  # the domain write already happened; log and go on
            log.exception("event listener failed for %s on %s", event.type, event.channels)


def session_ended(user_id: Any, session_id: str) -> Event:
    """The notice that closes a user's sockets of one session (`*`: of every session)."""
    return Event("session_ended", (f"user:{user_id}",), {"session_id": session_id}, live_only=True)


def scope_changed(*user_ids: Any) -> Event:
    """The notice that what these users may see changed (membership, an order): their sockets re-check."""
    return Event("scope_changed", tuple(f"user:{user_id}" for user_id in user_ids), live_only=True)
