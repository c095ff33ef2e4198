"""Payments and ratings of orders.

Payments (SPEC section 13): the fleet records what was paid (amount, method) on a completed order
— its organization's managers, its driver (cash or card taken on the spot) and ADMINs; clients
read them. Nothing is charged here. The payments of an order never sum to more than its price:
the order keeps the running total (`paid_cents`), and each payment first makes room for itself
with one conditional increment, so of two concurrent payments that together would exceed the
price at most one is recorded. Ratings: the client rates the driver once, after
completion; the driver's average (`rating`) and `rating_count` are kept on their user document.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dispatch.core.events import Event, EventBus
from dispatch.core.pagination import Page
from dispatch.core.vocabulary import DRIVER_PAYMENT_METHODS, Category, OrderStatus, WebhookEvent
from dispatch.domain import scopes
from dispatch.domain.scopes import Resource
from models.orders import Orders
from models.payments import PaymentOut, Payments, RatingOut, Ratings
from models.users import Users

AVERAGE_RETRIES = 50
PAYMENT_OUT = PaymentOut()
RATING_OUT = RatingOut()


class Billing:
    """Payments and ratings on behalf of callers."""

    def __init__(self, db: AsyncDatabase[Any], users: Users, events: EventBus) -> None:
        self.orders = Orders(db)
        self.payments = Payments(db)
        self.ratings = Ratings(db)
        self.users = users
        self.events = events

    async def _order(self, user: dict[str, Any], order_id: ObjectId) -> dict[str, Any]:
        order = await self.orders.get(order_id, scopes.query(Resource.ORDERS, user))
        if order is None:
            raise NotFound("No such order.")
        return order

    async def pay(self, user: dict[str, Any], order_id: ObjectId, data: dict[str, Any]) -> dict[str, Any]:
        """Record a payment of a completed order the caller serves; never above the order's price (422)."""
        order = await self._order(user, order_id)
        if user.get("category") == Category.DRIVER and data["method"] not in DRIVER_PAYMENT_METHODS:
            raise ApiError(
                403, "method_forbidden", "Drivers record cash or card taken on the spot.", {"method": data["method"]}
            )
        _check_completed(order)
        if "paid_cents" not in order:
            await self.orders.start_paid_total(order_id, await self.payments.total_cents(order_id))
        cents, price = round(data["amount"] * 100), round(order["price_estimate"] * 100)
        if not await self.orders.add_paid(order_id, cents, OrderStatus.COMPLETED, price):
            raise await self._refusal(order_id, price)
        try:
            payment = await self.payments.insert(order_id, data, user["_id"])
        except Exception:  # not stored: give the room back (a cancelled request keeps it, the safe side)
            await self.orders.take_back_paid(order_id, cents)
            raise
        await self._publish(order, "payment", WebhookEvent.PAYMENT_CREATED, PAYMENT_OUT.dump(payment))
        return payment

    async def _refusal(self, order_id: ObjectId, price: int) -> ApiError:
        """Why a payment found no room: the order is gone or no longer completed, or the price is reached."""
        order = await self.orders.get(order_id, {})
        if order is None:
            return NotFound("No such order.")
        _check_completed(order)
        left = max(price - int(order.get("paid_cents") or 0), 0) / 100
        return ValidationFailed(
            {
                "amount": [
                    f"The payments would exceed the order's price ({price / 100:.2f}); "
                    f"at most {left:.2f} is left to pay."
                ]
            }
        )

    async def payments_of(
        self, user: dict[str, Any], order_id: ObjectId, page: Page
    ) -> tuple[list[dict[str, Any]], int]:
        """The payments of an order the caller may read."""
        await self._order(user, order_id)
        return await self.payments.of_order(order_id, page)

    async def rate(self, user: dict[str, Any], order_id: ObjectId, data: dict[str, Any]) -> dict[str, Any]:
        """The client's one rating of a completed order; updates the driver's average."""
        order = await self._order(user, order_id)
        if order["client_id"] != user["_id"]:
            raise NotFound("No such order.")
        if order["status"] != OrderStatus.COMPLETED or order.get("driver_id") is None:
            raise Conflict("Only a completed order can be rated.", "order_not_completed", {"status": order["status"]})
        rating = await self.ratings.insert(order, data)
        await self._add_to_average(order["driver_id"], data["score"])
        await self._publish(order, "rating", WebhookEvent.RATING_CREATED, RATING_OUT.dump(rating))
        return rating

    async def _publish(self, order: dict[str, Any], kind: str, topic: WebhookEvent, shown: dict[str, Any]) -> None:
        """A public event of a payment or rating: for the order's organization's webhooks (no socket frame)."""
        organization = order.get("organization")
        await self.events.publish(
            Event(
                kind, (), {kind: shown}, topic=topic, organization=None if organization is None else str(organization)
            )
        )

    async def _add_to_average(self, driver_id: ObjectId, score: int) -> None:
        """Compare-and-set on `rating_count`, so concurrent ratings of one driver all count."""
        for _ in range(AVERAGE_RETRIES):
            driver = await self.users.get(driver_id)
            if driver is None:
                return
            count, total = int(driver.get("rating_count") or 0), float(driver.get("rating_sum") or 0)
            changes = {
                "rating_sum": total + score,
                "rating_count": count + 1,
                "rating": round((total + score) / (count + 1), 2),
            }
            expect = {"rating_count": count if count else {"$in": [None, 0]}}
            if await self.users.update(driver_id, changes, expect=expect) is not None:
                return
        raise Conflict("The driver's rating is busy; try again.", "rating_busy")


def _check_completed(order: dict[str, Any]) -> None:
    """409 unless the order is completed (only a finished tow is paid for)."""
    if order["status"] != OrderStatus.COMPLETED:
        raise Conflict("Only a completed order takes payments.", "order_not_completed", {"status": order["status"]})
