"""Tracking links (SPEC section 11): shared by the order's client, its managers or its integration, they
let anyone holding one follow the order without an account, until 2 h after it ends or until revoked.

A token is 32 random bytes (`secrets`), URL-safe; only its SHA-256 is stored, so the database alone
opens no link. Revoking deletes every link of the order and sends a live notice on `track:<order_id>`,
which closes the tracking sockets open on any server process (4403).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import live, ratelimit
from dispatch.core.errors import Conflict, NotFound
from dispatch.core.events import Event, EventBus
from dispatch.core.timeutil import utcnow
from dispatch.domain.orders import HOLDS_VEHICLE, OrderDesk
from dispatch.settings import Settings
from models.orders import Orders
from models.tracking import ShareLinks, expires_at, token_hash, track_view
from models.users import Users
from models.vehicles import Vehicles

TOKEN_BYTES = 32  # 256 bits
REVOKED = "share_revoked"  # the live notice that closes an order's tracking sockets
RATE_LIMIT = "track_ip"


def notice_channel(order_id: Any) -> str:
    """Where an order's tracking sockets hear that its links were revoked."""
    return f"track:{order_id}"


class ShareDesk:
    """Creates and revokes an order's links; resolves a token to its order and the public view."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Any],
        redis: aioredis.Redis,
        events: EventBus,
        orders: OrderDesk,
        users: Users,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.events = events
        self.desk = orders
        self.links = ShareLinks(db)
        self.orders = Orders(db)
        self.vehicles = Vehicles(db)
        self.users = users

    async def share(self, user: dict[str, Any], order_id: ObjectId) -> dict[str, Any]:
        """A new link of an order the caller may read (its client, managers, ADMIN, its key): `{token, url,
        expires_at}`; an order whose links already expired → 409."""
        return await self.create(await self.desk.get(user, order_id), user["_id"])

    async def create(self, order: dict[str, Any], created_by: Any) -> dict[str, Any]:
        """A new link of this order (also made for the customer's `assigned` message)."""
        ends = expires_at(order)
        now = utcnow()
        if ends is not None and ends <= now:
            raise Conflict("The order ended more than 2 hours ago: it can no longer be tracked.", "tracking_ended")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        await self.links.insert(order["_id"], token_hash(token), created_by, now)
        return {"token": token, "url": self.url(token), "expires_at": ends}

    def url(self, token: str) -> str:
        """The tracking page of a token."""
        return f"{self.settings.public_url.rstrip('/')}/t/{token}"

    async def revoke(self, user: dict[str, Any], order_id: ObjectId) -> None:
        """Stop every link of an order the caller may read, and close its open tracking sockets."""
        order = await self.desk.get(user, order_id)
        await self.links.revoke(order["_id"])
        await self.events.publish(Event(REVOKED, (notice_channel(order["_id"]),), live_only=True))

    async def limit(self, ip: str) -> None:
        """Count one public request of this address (429 beyond the `track_ip` limit)."""
        await ratelimit.hit(self.redis, self.settings.rate_limit_table, RATE_LIMIT, ip)

    async def order_of(self, token: str, now: datetime | None = None) -> dict[str, Any]:
        """The order a live link is for; unknown, revoked or expired → 404."""
        order_id = await self.links.order_of(token_hash(token)) if token else None
        order = None if order_id is None else await self.orders.get(order_id, {})
        ends = None if order is None else expires_at(order)
        if order is None or (ends is not None and ends <= (now or utcnow())):
            raise NotFound("No such tracking link (it may have expired or been revoked).")
        return order

    async def view(self, token: str) -> dict[str, Any]:
        """The public view of a link's order: the order, its truck (live position) and driver's first name."""
        order = await self.order_of(token)
        vehicle = driver = location = None
        if order.get("vehicle_id") is not None and order["status"] in HOLDS_VEHICLE:
            vehicle = await self.vehicles.get(order["vehicle_id"])
            location = (await live.positions(self.redis, [order["vehicle_id"]]))[str(order["vehicle_id"])]
        if order.get("driver_id") is not None and order["status"] in HOLDS_VEHICLE:
            driver = await self.users.get(order["driver_id"])
        return track_view(order, vehicle, driver, location)
