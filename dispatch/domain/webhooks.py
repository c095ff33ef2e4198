"""Webhooks (SPEC section 9): who manages which endpoints, the outbox every public event is written
to before any attempt, the retry policy, and the sweeper that re-sends what a lost task left behind.

The path of one event:

1. A domain module publishes an `Event` with a `topic` (`order.assigned`) and an `organization`.
2. `WebhookDesk.on_event` (an EventBus listener, awaited inside `publish`) writes one delivery per
   matching active webhook of that organization into `webhook_deliveries`, so the outbox holds it
   before the API answers; their task message follows off the request's path (one message for the
   deliveries of BATCH_WINDOW, which the worker turns into one task per delivery).
3. The worker (`tasks/webhooks.py`) claims the delivery, POSTs it signed, and records the outcome.
4. The sweeper re-sends tasks for retries that fell due and for deliveries whose task was lost
   (a Redis restarted without its data, a worker killed), so nothing recorded is ever dropped.

Why the sweeper runs in the server and not in the worker: the server is the process that knows its
database and writes the outbox, and it is always running whenever events can happen (`make run`,
`docker compose` and the test fixtures all start it with nothing more to do). Workers stay stateless
(each task names its database, as the avatar tasks do) and any number of them may run. With N server
processes a Redis lock (`SET NX PX`, one sweep interval long) lets one of them sweep per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import time
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import jsonutil
from dispatch.core.errors import Conflict, NotFound, ValidationFailed
from dispatch.core.events import Event
from dispatch.core.netguard import UnsafeUrl, default_port, first_refusal, literal_address, parse_url
from dispatch.core.pagination import Page
from dispatch.core.periodic import Periodic, first_this_interval
from dispatch.core.storage import UNAVAILABLE
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.core.vocabulary import EventFilter, WebhookEvent
from dispatch.domain import scopes
from dispatch.domain.fleet import check_organization
from dispatch.domain.notifications import Notifier
from dispatch.domain.queue import TaskQueue
from dispatch.domain.scopes import Resource
from dispatch.settings import Settings
from models.webhooks import MAX_WEBHOOKS_PER_ORG, Webhooks, new_delivery, new_secret, order_key

log = logging.getLogger("dispatch.webhooks")

TASK = "webhooks.deliver"  # one delivery
BATCH_TASK = "webhooks.deliver_many"  # the worker turns it into one `webhooks.deliver` per delivery
BATCH_WINDOW = 0.02  # seconds new deliveries wait to share one task message (a message costs ~1 ms of CPU)
HOOKS_CACHE_SECONDS = 2.0  # how long a process trusts its copy of an organization's webhooks
RESOLVE_TIMEOUT = 5.0  # seconds a webhook URL's host name may take to resolve when it is checked
LOST_AFTER_SWEEPS = 6  # a queued delivery nobody claimed for this many sweep intervals: its task is lost
SWEEP_BATCH = 500
PING_MESSAGE = "Test delivery from dispatch."


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base × 2^(attempts-1), the upper
    half of it jittered, so receivers coming back are not hit by every sender at once."""
    ceiling = base * 2 ** max(attempts - 1, 0)
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))  # spreading load, not a secret


def listens(webhook: dict[str, Any], topic: str) -> bool:
    """Whether a webhook takes events of this type."""
    events = webhook.get("events") or []
    return EventFilter.ALL in events or topic in events


def payload_data(event: Event) -> dict[str, Any]:
    """The `data` of an event's delivery body: an order event's order with from, to, action and actor;
    any other event's own data."""
    if event.type != "order":
        return dict(event.data)
    data = event.data
    shown = {
        "order": data["order"],
        "from": data.get("from"),
        "to": data.get("to"),
        "action": str(data.get("action") or data.get("event")),
        "actor": {"type": "user", "id": data.get("actor_id")},
    }
    if data.get("reason"):
        shown["reason"] = data["reason"]
    return shown


def event_body(event_id: str, topic: str, organization: str, data: dict[str, Any], at: Any) -> str:
    """A delivery's JSON body, as text: what is signed and sent, the same on every attempt."""
    body = {"id": event_id, "type": topic, "created_at": isoformat(at), "organization": organization, "data": data}
    return jsonutil.dumps(body).decode()


class WebhookDesk:
    """Webhooks on behalf of callers, the outbox listener on the event bus, and the sweeper."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Any],
        redis: aioredis.Redis,
        tasks: TaskQueue,
        notifier: Notifier,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.tasks = tasks
        self.notifier = notifier
        self.store = Webhooks(db)
        self._hooks: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._outgoing: list[ObjectId] = []  # recorded, their task message not sent yet
        self._flusher: asyncio.Task[None] | None = None
        self._sweeper = Periodic("webhook-sweeper", settings.webhook_sweep_interval, self.sweep, log)

    # --- managing webhooks ------------------------------------------------------------
    async def create(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new webhook of an organization the caller runs; answered with its secret (shown this once)."""
        organization = data["organization"]
        await check_organization(self.db, user, organization)
        await self.check_url(data["url"])
        if await self.store.count(organization) >= MAX_WEBHOOKS_PER_ORG:
            raise Conflict(f"An organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks.", "too_many_webhooks")
        now = utcnow()
        doc = await self.store.insert(
            {
                "organization": organization,
                "url": data["url"],
                "events": list(dict.fromkeys(data["events"])),
                "description": data.get("description", ""),
                "active": True,
                "secret": new_secret(secrets.token_urlsafe(32)),
                "consecutive_failures": 0,
                "disabled_notice": False,
                "created_by": user["_id"],
                "created_at": now,
                "updated_at": now,
            }
        )
        self._forget(organization)
        return doc

    async def page(self, user: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """The webhooks the caller manages, newest first."""
        return await self.store.page(scopes.query(Resource.WEBHOOKS, user), page)

    async def get(self, user: dict[str, Any], webhook_id: ObjectId) -> dict[str, Any]:
        """A webhook the caller manages; 404 otherwise."""
        doc = await self.store.get(webhook_id, scopes.query(Resource.WEBHOOKS, user))
        if doc is None:
            raise NotFound("No such webhook.")
        return doc

    async def update(self, user: dict[str, Any], webhook_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a webhook's URL, events, description or `active`; re-activating clears its failure count."""
        if not changes:
            raise ValidationFailed({"_schema": ["Nothing to change."]})
        current = await self.get(user, webhook_id)
        if "url" in changes:
            await self.check_url(changes["url"])
        if "events" in changes:
            changes["events"] = list(dict.fromkeys(changes["events"]))
        if changes.get("active") is True and not current["active"]:
            changes.update(consecutive_failures=0, disabled_notice=False)
        updated = await self.store.update(
            webhook_id, scopes.query(Resource.WEBHOOKS, user), {**changes, "updated_at": utcnow()}
        )
        if updated is None:
            raise NotFound("No such webhook.")
        self._forget(updated["organization"])
        return updated

    async def delete(self, user: dict[str, Any], webhook_id: ObjectId) -> None:
        """Delete a webhook and its delivery log; nothing more is sent to it."""
        current = await self.get(user, webhook_id)
        if not await self.store.delete(webhook_id, scopes.query(Resource.WEBHOOKS, user)):
            raise NotFound("No such webhook.")
        self._forget(current["organization"])

    async def check_url(self, url: str) -> None:
        """422 unless the URL is http(s) and (unless private addresses are allowed) reaches public ones only.

        A host name is resolved off the event loop (asyncio's getaddrinfo runs in an executor).
        """
        try:
            parts = parse_url(url)
        except UnsafeUrl as exc:
            raise ValidationFailed({"url": [str(exc)]}) from None
        if self.settings.webhooks_may_reach_private:
            return
        host = parts.hostname or ""
        literal = literal_address(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(host, default_port(parts), type=socket.SOCK_STREAM),
                    RESOLVE_TIMEOUT,
                )
            except (OSError, TimeoutError):
                raise ValidationFailed({"url": [f"The host name {host!r} does not resolve."]}) from None
            addresses = [str(info[4][0]) for info in infos]
        reason = first_refusal(addresses)
        if reason is not None:
            raise ValidationFailed({"url": [f"Webhooks go to public addresses only: {reason}"]})

    # --- deliveries the caller asks for -------------------------------------------------
    async def deliveries(
        self, user: dict[str, Any], webhook_id: ObjectId, page: Page
    ) -> tuple[list[dict[str, Any]], int]:
        """A webhook's delivery log, newest first."""
        await self.get(user, webhook_id)
        return await self.store.deliveries_of(webhook_id, page)

    async def test(self, user: dict[str, Any], webhook_id: ObjectId) -> dict[str, Any]:
        """Queue a `ping` delivery to the webhook (an inactive one: 409)."""
        webhook = await self.get(user, webhook_id)
        if not webhook["active"]:
            raise Conflict("The webhook is inactive: re-activate it first.", "webhook_inactive")
        now, event_id = utcnow(), str(ObjectId())
        data = {"webhook_id": str(webhook_id), "message": PING_MESSAGE}
        body = event_body(event_id, WebhookEvent.PING, str(webhook["organization"]), data, now)
        delivery = new_delivery(webhook_id, webhook["organization"], event_id, WebhookEvent.PING, body, now)
        return await self._record_and_send([delivery], wait=True)

    async def redeliver(self, user: dict[str, Any], webhook_id: ObjectId, delivery_id: ObjectId) -> dict[str, Any]:
        """Send one delivery's event again as a new delivery: the same body (and event `id`), a new delivery id."""
        webhook = await self.get(user, webhook_id)
        if not webhook["active"]:
            raise Conflict("The webhook is inactive: re-activate it first.", "webhook_inactive")
        original = await self.store.delivery(webhook_id, delivery_id)
        if original is None:
            raise NotFound("No such delivery.")
        again = new_delivery(
            webhook_id,
            webhook["organization"],
            original["event_id"],
            original["event_type"],
            original["body"],
            utcnow(),
        )
        again["redelivery_of"] = delivery_id
        return await self._record_and_send([again], wait=True)

    # --- the outbox -----------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        """EventBus listener: record a delivery of a public event for each webhook that takes it."""
        if event.topic is None or event.organization is None:
            return
        hooks = [hook for hook in await self._hooks_of(event.organization) if listens(hook, event.topic)]
        if not hooks:
            return
        now, event_id = utcnow(), str(ObjectId())
        body = event_body(event_id, event.topic, event.organization, payload_data(event), now)
        subject, seq = event.ordering or (None, 0)
        docs = [
            new_delivery(
                hook["_id"],
                hook["organization"],
                event_id,
                event.topic,
                body,
                now,
                key=order_key(hook["_id"], subject) if subject else None,
                seq=seq,
            )
            for hook in hooks
        ]
        await self._record_and_send(docs, wait=False)

    async def _hooks_of(self, organization: str) -> list[dict[str, Any]]:
        """An organization's active webhooks, from a copy at most HOOKS_CACHE_SECONDS old (so an
        organization without webhooks costs no query per event). Changes made through this process
        are seen at once; those made through another process within the cache's age."""
        cached = self._hooks.get(organization)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        hooks = await self.store.of_organization(ObjectId(organization))
        self._hooks[organization] = (time.monotonic() + HOOKS_CACHE_SECONDS, hooks)
        return hooks

    def _forget(self, organization: Any) -> None:
        self._hooks.pop(str(organization), None)

    async def _record_and_send(self, docs: list[dict[str, Any]], *, wait: bool) -> dict[str, Any]:
        """Write the deliveries (awaited: they are in MongoDB before the caller goes on), then queue their
        tasks: at once when asked, else batched with the deliveries of the next BATCH_WINDOW seconds into
        one message, off the caller's path (a lost message is the sweeper's to repair)."""
        await self.store.record(docs)
        ids = [doc["_id"] for doc in docs]
        if wait:
            await self._send(ids)
        else:
            self._outgoing += ids
            if self._flusher is None:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())
        return docs[0]

    async def _flush_soon(self) -> None:
        await asyncio.sleep(BATCH_WINDOW)
        await self._flush()

    async def _flush(self) -> None:
        ids, self._outgoing, self._flusher = self._outgoing, [], None
        await self._send(ids)

    async def _send(self, delivery_ids: list[ObjectId]) -> None:
        """One task message for these deliveries."""
        db, ids = self.settings.mongodb_db, [str(delivery_id) for delivery_id in delivery_ids]
        try:
            if len(ids) == 1:
                await self.tasks.send(TASK, db, ids[0])
            elif ids:
                await self.tasks.send(BATCH_TASK, db, ids)
        except UNAVAILABLE as exc:  # the broker is away: the sweeper sends them later
            log.warning("%d webhook deliveries not queued now (%s); the sweeper will", len(ids), exc)

    # --- the sweeper ------------------------------------------------------------------------
    def start(self) -> None:
        """Start sweeping on the running loop (once per process)."""
        self._sweeper.start()

    async def close(self) -> None:
        """Stop sweeping; send the task message of deliveries still waiting for one."""
        await self._sweeper.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            with contextlib.suppress(TimeoutError):  # left unsent, they wait for a sweep
                await asyncio.wait_for(self._flush(), 2)

    async def sweep(self) -> int:
        """One sweep, if this process holds the interval's lock: tell managers of webhooks the worker
        disabled, and send tasks for due deliveries; returns how many were sent."""
        interval = self.settings.webhook_sweep_interval
        if not await first_this_interval(self.redis, f"webhooks:sweep:{self.settings.mongodb_db}", interval):
            return 0
        while (webhook := await self.store.take_disabled_notice()) is not None:
            await self.notifier.webhook_disabled(webhook)
        now = utcnow()
        lost_before = now - timedelta(seconds=interval * LOST_AFTER_SWEEPS)
        ready = await self._heads(await self.store.due(now, lost_before, SWEEP_BATCH))
        if ready:
            await self.store.mark_queued(ready, now)
            await self._send(ready)
        return len(ready)

    async def _heads(self, candidates: list[dict[str, Any]]) -> list[ObjectId]:
        """Of due deliveries, those free to go: unordered ones, and for each key the lowest seq when no
        earlier delivery of that key is still pending."""
        ready = [doc["_id"] for doc in candidates if doc.get("key") is None]
        heads: dict[str, dict[str, Any]] = {}
        for doc in candidates:
            if doc.get("key") is not None and (doc["key"] not in heads or doc["seq"] < heads[doc["key"]]["seq"]):
                heads[doc["key"]] = doc
        for doc in heads.values():
            if not await self.store.waits_for_earlier(doc):
                ready.append(doc["_id"])
        return ready
