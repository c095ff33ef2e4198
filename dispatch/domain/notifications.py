"""Notifications: turn order events into notifications for the people concerned, and push them live.

The notifier listens on the event bus (attached once when the process's services are built). It reads
`order` events only and publishes only `notification` events, so it can never feed itself or the order
code a loop.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.events import Event, EventBus
from dispatch.core.vocabulary import OrderEvent, OrderStatus
from models.notifications import Notifications, new_notification, show

# What a client or driver is told when an order reaches a status (`declined`: the driver gave it back).
STATUS_TEXT: dict[str, tuple[str, str]] = {
    OrderStatus.NEW: ("Your order is waiting for a truck again", "We are finding another truck for you."),
    OrderEvent.DECLINED: ("Your order is waiting for a truck again", "We are finding another truck for you."),
    OrderEvent.ASSIGNED: ("A truck is assigned", "A tow truck has been assigned to the order."),
    OrderEvent.ACCEPTED: ("The driver accepted the order", "The driver will set off shortly."),
    OrderEvent.EN_ROUTE: ("The truck is on its way", "The tow truck is driving to the pickup point."),
    OrderEvent.ARRIVED: ("The truck has arrived", "The tow truck is at the pickup point."),
    OrderEvent.IN_PROGRESS: ("The tow is under way", "Your vehicle is being towed."),
    OrderEvent.COMPLETED: ("The order is completed", "The vehicle has been delivered."),
    OrderEvent.CANCELLED: ("The order is cancelled", "The order was cancelled."),
}


def _oid(value: Any) -> ObjectId | None:
    """An id of an event body (dumped as text) as an ObjectId; None when absent or malformed."""
    if isinstance(value, ObjectId):
        return value
    return ObjectId(value) if isinstance(value, str) and ObjectId.is_valid(value) else None


class Notifier:
    """Creates the notifications of each order event and publishes each one on `user:<id>`."""

    def __init__(self, db: AsyncDatabase[Any], events: EventBus) -> None:
        self.store = Notifications(db)
        self.events = events

    async def on_event(self, event: Event) -> None:
        """The bus listener: order events become notifications; everything else is ignored."""
        if event.type != "order" or not isinstance(event.data.get("order"), dict):
            return
        docs = await self.store.insert_many(await self.compose(event.data))
        for doc in docs:
            await self.events.publish(Event("notification", (f"user:{doc['user_id']}",), {"notification": show(doc)}))

    async def webhook_disabled(self, webhook: dict[str, Any]) -> None:
        """Tell the organization's managers that a webhook was set inactive after failing again and again."""
        title = "A webhook was turned off"
        body = (
            f"Deliveries to {webhook['url']} failed {webhook.get('consecutive_failures', 0)} times in a row, so "
            "the webhook is now inactive. Fix the receiver, then re-activate it."
        )
        facts = {"webhook_id": str(webhook["_id"]), "url": webhook["url"]}
        docs = [
            new_notification(manager, "webhook", "webhook_disabled", title, body, None, facts)
            for manager in await self.store.managers_of(webhook["organization"])
        ]
        for doc in await self.store.insert_many(docs):
            await self.events.publish(Event("notification", (f"user:{doc['user_id']}",), {"notification": show(doc)}))

    async def compose(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The notifications one order event gives: client and driver, and managers for a new order."""
        order, kind = data["order"], str(data.get("event") or "")
        order_id = _oid(order.get("id"))
        facts = {"status": order.get("status"), "from": data.get("from"), "to": data.get("to")}
        texts = self._texts(kind, order, data)
        if texts is None:
            return []
        people = {_oid(order.get("client_id")): texts["client"], _oid(order.get("driver_id")): texts["driver"]}
        if kind == "created" or _action(data) == OrderEvent.DECLINED:
            org_id = _oid(order.get("organization"))
            for manager in await self.store.managers_of(org_id) if org_id else []:
                people.setdefault(manager, texts["manager"])
        people.pop(None, None)
        people.pop(_actor(data), None)  # nobody is told about what they did themselves
        return [
            new_notification(user_id, "order", kind, title, body, order_id, facts)
            for user_id, (title, body) in people.items()
            if user_id is not None
        ]

    @staticmethod
    def _texts(kind: Any, order: dict[str, Any], data: dict[str, Any]) -> dict[str, tuple[str, str]] | None:
        """Title and body for each kind of recipient, or None for an event kind we do not know."""
        where = (order.get("pickup") or {}).get("address") or "the pickup point"
        if kind == "created":
            return {
                "client": ("Your order is received", "We are finding a tow truck for you."),
                "driver": ("New order", f"An order from {where}."),
                "manager": ("New order", f"A new order from {where} is waiting for a truck."),
            }
        if kind == "assigned":
            return {
                "client": STATUS_TEXT[OrderEvent.ASSIGNED],
                "driver": ("New assignment", f"You are assigned an order from {where}."),
                "manager": STATUS_TEXT[OrderEvent.ASSIGNED],
            }
        if kind == "status_changed":
            status = str(_action(data) or order.get("status"))
            title, body = STATUS_TEXT.get(status, (f"Order status: {status}", f"The order is now {status}."))
            manager = ("A driver declined an order", f"The order from {where} needs another truck.")
            return {"client": (title, body), "driver": (f"Order status: {status}", body), "manager": manager}
        return None


def _action(data: dict[str, Any]) -> Any:
    """What a status change did: its `action` (a decline moves the order to `new`), else its target."""
    return data.get("action") or data.get("to")


def _actor(data: dict[str, Any]) -> ObjectId | None:
    """Who caused an event, when the event says so."""
    actor = data.get("actor_id")
    if actor is None and isinstance(data.get("actor"), dict):
        actor = data["actor"].get("id")
    return _oid(actor)
