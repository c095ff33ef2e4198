"""Payments and ratings of orders.

Payments: the order's client, its organization's managers and ADMINs record what was paid
(amount, method); nothing is charged here. Ratings: the client rates the driver once, after
completion; the driver's average (`rating`) and `rating_count` are kept on their user document.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.errors import Conflict, NotFound
from dispatch.orders import order_scope
from dispatch.pagination import Page
from models.orders import Orders
from models.payments import Payments, Ratings
from models.users import Users

AVERAGE_RETRIES = 50


class Billing:
    """Payments and ratings on behalf of callers."""

    def __init__(self, db: AsyncDatabase, users: Users) -> None:
        self.orders = Orders(db)
        self.payments = Payments(db)
        self.ratings = Ratings(db)
        self.users = users

    async def _order(self, user: dict[str, Any], order_id: ObjectId) -> dict[str, Any]:
        order = await self.orders.get(order_id, order_scope(user))
        if order is None:
            raise NotFound("No such order.")
        return order

    async def pay(self, user: dict[str, Any], order_id: ObjectId, data: dict[str, Any]) -> dict[str, Any]:
        """Record a payment of an order the caller may read; a cancelled order takes none (409)."""
        order = await self._order(user, order_id)
        if order["status"] == "cancelled":
            raise Conflict("This order is cancelled.", "order_cancelled")
        return await self.payments.insert(order_id, data, user["_id"])

    async def payments_of(self, user: dict[str, Any], order_id: ObjectId,
                          page: Page) -> tuple[list[dict[str, Any]], int]:
        """The payments of an order the caller may read."""
        await self._order(user, order_id)
        return await self.payments.of_order(order_id, page)

    async def rate(self, user: dict[str, Any], order_id: ObjectId, data: dict[str, Any]) -> dict[str, Any]:
        """The client's one rating of a completed order; updates the driver's average."""
        order = await self._order(user, order_id)
        if order["client_id"] != user["_id"]:
            raise NotFound("No such order.")
        if order["status"] != "completed" or order.get("driver_id") is None:
            raise Conflict("Only a completed order can be rated.", "order_not_completed",
                           {"status": order["status"]})
        rating = await self.ratings.insert(order, data)
        await self._add_to_average(order["driver_id"], data["score"])
        return rating

    async def _add_to_average(self, driver_id: ObjectId, score: int) -> None:
        """Compare-and-set on `rating_count`, so concurrent ratings of one driver all count."""
        for _ in range(AVERAGE_RETRIES):
            driver = await self.users.get(driver_id)
            if driver is None:
                return
            count, total = int(driver.get("rating_count") or 0), float(driver.get("rating_sum") or 0)
            changes = {"rating_sum": total + score, "rating_count": count + 1,
                       "rating": round((total + score) / (count + 1), 2)}
            expect = {"rating_count": count if count else {"$in": [None, 0]}}
            if await self.users.update(driver_id, changes, expect=expect) is not None:
                return
        raise Conflict("The driver's rating is busy; try again.", "rating_busy")
