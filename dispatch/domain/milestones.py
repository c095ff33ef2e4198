"""Milestone messages to an order's customer (SPEC section 11): when a truck is assigned (truck, ETA,
tracking link), when it is arriving at the pickup, and when the tow is completed (price, payment).

An EventBus listener records each message in `customer_messages` (models/milestones.py) under the
unique id `<order>:<milestone>` before its task is sent, then sends the task (`customer.send`, by
name); the worker marks it sent. The same milestone raised twice finds its message recorded and sends
nothing. A task lost with a killed worker or an emptied broker is re-sent by this module's sweep,
the pattern of the webhook outbox (dispatch/domain/webhooks.py).

Who is told: the client's account (its verified phone by SMS, else its email), or the order's
`customer` (phone, else email), in their `language`, else `DISPATCH_DEFAULT_LANGUAGE`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.events import Event
from dispatch.core.periodic import Periodic, first_this_interval
from dispatch.core.storage import UNAVAILABLE
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import Milestone, OrderStatus, WebhookEvent
from dispatch.domain.queue import TaskQueue
from dispatch.domain.tracking import ShareDesk
from dispatch.settings import Settings
from models.milestones import CustomerMessages, catalogue, message_id, new_message
from models.orders import Orders
from models.users import Users
from models.vehicles import Vehicles

log = logging.getLogger("dispatch.milestones")

TASK = "customer.send"
LOST_AFTER_SWEEPS = 3  # a pending message nobody claimed for this many sweep intervals: its task is lost
SWEEP_BATCH = 200


def milestone_of(event: Event) -> tuple[Milestone, str] | None:
    """The milestone an event is, with its order's id; None for every other event."""
    data = event.data
    order = data.get("order")
    if not isinstance(order, dict):
        return None
    if event.type == "order" and data.get("event") == "assigned" and data.get("to") == OrderStatus.ASSIGNED:
        return Milestone.ASSIGNED, str(order["id"])
    if event.type == "order" and data.get("to") == OrderStatus.COMPLETED:
        return Milestone.COMPLETED, str(order["id"])
    if event.topic == WebhookEvent.ORDER_ARRIVING and data.get("target") == "pickup":
        return Milestone.ARRIVING, str(order["id"])
    return None


def money(amount: float) -> str:
    """An amount as the messages show it."""
    return f"{amount:.2f}"


class MilestoneDesk:
    """Records and sends the customer's milestone messages; sweeps up those whose task was lost."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Any],
        redis: aioredis.Redis,
        tasks: TaskQueue,
        users: Users,
        tracking: ShareDesk,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.tasks = tasks
        self.users = users
        self.tracking = tracking
        self.messages = CustomerMessages(db)
        self.orders = Orders(db)
        self.vehicles = Vehicles(db)
        self._sweeper = Periodic("message-sweeper", settings.message_sweep_interval, self.sweep, log)

    async def on_event(self, event: Event) -> None:
        """EventBus listener: the message of a milestone, recorded once and sent."""
        found = milestone_of(event)
        if found is None:
            return
        milestone, order_id = found
        if not ObjectId.is_valid(order_id) or await self.messages.exists(message_id(order_id, milestone)):
            return
        order = await self.orders.get(ObjectId(order_id), {})
        if order is None:
            return
        doc = await self.compose(order, milestone)
        if doc is not None and await self.messages.record(doc):
            await self._send(doc["_id"])

    async def compose(self, order: dict[str, Any], milestone: Milestone) -> dict[str, Any] | None:
        """The message of a milestone to the order's customer; None when nobody can be reached."""
        recipient = await self._recipient(order)
        if recipient is None:
            return None
        channel, to, language = recipient
        words = catalogue(language)
        values = await self._values(order, milestone, words)
        template = words[milestone]
        return new_message(
            order["_id"],
            milestone,
            channel,
            to,
            template["subject"],
            template["text"].format(**values),
            language,
            utcnow(),
        )

    async def _recipient(self, order: dict[str, Any]) -> tuple[str, str, str] | None:
        """(`sms`|`email`, address, language) of the order's customer, or None."""
        client = await self.users.get(order["client_id"]) if order.get("client_id") else None
        person = order.get("customer") or {}
        if client is not None:
            phone = client.get("phone") if client.get("phone_verified") else None
            email, language = client.get("email"), client.get("language")
        else:
            phone, email, language = person.get("phone"), person.get("email"), person.get("language")
        language = language or self.settings.default_language
        if phone:
            return "sms", phone, language
        if email:
            return "email", email, language
        return None

    async def _values(self, order: dict[str, Any], milestone: Milestone, words: dict[str, Any]) -> dict[str, Any]:
        """What the milestone's template names."""
        vehicle = await self.vehicles.get(order["vehicle_id"]) if order.get("vehicle_id") else None
        driver = await self.users.get(order["driver_id"]) if order.get("driver_id") else None
        values: dict[str, Any] = {
            "plate": (vehicle or {}).get("plate", ""),
            "model": (vehicle or {}).get("model", ""),
            "driver": (driver or {}).get("first_name") or "",
            "address": order["pickup"]["address"],
            "price": money(order["price_estimate"]),
            "paid": money((order.get("paid_cents") or 0) / 100),
        }
        if milestone == Milestone.ASSIGNED:
            eta = order.get("eta")
            seconds = eta.get("seconds") if isinstance(eta, dict) else None
            minutes = None if seconds is None else max(1, round(seconds / 60))
            values["eta"] = words["eta_unknown"] if minutes is None else words["eta"].format(minutes=minutes)
            values["link"] = (await self.tracking.create(order, None))["url"]
        return values

    async def _send(self, msg_id: str) -> None:
        try:
            await self.tasks.send(TASK, self.settings.mongodb_db, msg_id)
        except UNAVAILABLE as exc:  # the broker is away: the sweep sends it later
            log.warning("customer message %s not queued now (%s); the sweep will", msg_id, exc)

    # --- the sweep ---------------------------------------------------------------------
    def start(self) -> None:
        """Start sweeping on the running loop (once per process)."""
        self._sweeper.start()

    async def close(self) -> None:
        """Stop sweeping."""
        await self._sweeper.stop()

    async def sweep(self) -> int:
        """Send a task again for pending messages whose task seems lost (one process per interval)."""
        interval = self.settings.message_sweep_interval
        if not await first_this_interval(self.redis, f"messages:sweep:{self.settings.mongodb_db}", interval):
            return 0
        now = utcnow()
        lost = await self.messages.lost(now, now - timedelta(seconds=interval * LOST_AFTER_SWEEPS), SWEEP_BATCH)
        for msg_id in lost:
            await self._send(msg_id)
        return len(lost)
