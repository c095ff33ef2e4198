"""What the GPS stream tells, judged off the ingest's hot path: live ETAs, arrivals and geofence events.

The ingest only notes, once a batch is stored, which vehicles moved and their new points (`note`, a
dict update and no I/O). One background task of the process (`GpsWatch`) drains those notes and, per
vehicle, judges the points against the organization's geofences (dispatch/domain/geofences.py) and
refreshes the ETA of the order the truck serves and checks its arrival. Routing calls and the writes
happen there, so a slow routing server never delays an ack or a location frame.

ETA (SPEC section 10): while an order is `accepted`/`en_route` (target: the pickup) or `in_progress`
(the drop-off), its `eta` is refreshed when `DISPATCH_ETA_INTERVAL` seconds passed since the last one
or the truck moved 200 m from where it was computed; written with a compare-and-set on the one it
replaces (and the order's status), published as an `eta` frame on `order:<id>` and `fleet:<org>` and
the `order.eta` event. A move into one of those statuses computes one at once from the live position.

Arrival: the first point within `DISPATCH_ARRIVAL_RADIUS_M` of the pickup while `en_route`, or of the
drop-off while `in_progress`, raises `order.arriving` once per order and target: a conditional update
(`arrivals.<target>` not yet set) adds the timeline entry, so two processes never both raise it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import live
from dispatch.core.events import Event, EventBus
from dispatch.core.geo import haversine_km
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.core.vocabulary import EtaTarget, OrderEvent, OrderStatus, WebhookEvent
from dispatch.domain.geofences import GeofenceDesk, Stored
from dispatch.domain.routing import Router
from dispatch.settings import Settings
from models.orders import EtaOut, OrderOut, timeline_event

log = logging.getLogger("dispatch.tracking")

# The target of each status that has one; `en_route` and `in_progress` also watch for arrival.
TARGETS = {
    OrderStatus.ACCEPTED: EtaTarget.PICKUP,
    OrderStatus.EN_ROUTE: EtaTarget.PICKUP,
    OrderStatus.IN_PROGRESS: EtaTarget.DROPOFF,
}
ARRIVAL_STATUSES = {OrderStatus.EN_ROUTE: EtaTarget.PICKUP, OrderStatus.IN_PROGRESS: EtaTarget.DROPOFF}
MOVED_KM = 0.2  # an ETA is refreshed sooner after this much movement
ORDER_CACHE_SECONDS = 5.0  # how long an order is taken from this process's copy
ORDER_CACHE_SIZE = 10_000
ORDER_OUT = OrderOut()
ETA_OUT = EtaOut()
CLOSE_GRACE = 2.0  # seconds close() lets the judging under way finish
ACTIVE_ORDER_FIELDS = {
    "status": 1,
    "pickup": 1,
    "dropoff": 1,
    "eta": 1,
    "organization": 1,
    "arrivals": 1,
    "vehicle_id": 1,
    "driver_id": 1,
}


@dataclass
class Moved:
    """A vehicle's points stored since the watch last looked at it."""

    organization: str | None
    driver_id: str
    order_id: str | None  # the order the truck holds, if any (only then is there an ETA to refresh)
    points: list[dict[str, Any]] = field(default_factory=list)


class GpsWatch:
    """The background judge of one process's stored GPS points."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Any],
        redis: aioredis.Redis,
        events: EventBus,
        router: Router,
        geofences: GeofenceDesk,
    ) -> None:
        self.interval = settings.eta_interval
        self.radius_km = settings.arrival_radius_m / 1000.0
        self.orders = db["orders"]
        self.redis = redis
        self.events = events
        self.router = router
        self.geofences = geofences
        self._moved: dict[str, Moved] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[None]] = set()
        self._active: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._closing = False

    # --- notes from the ingest (hot path: no I/O) -----------------------------------------
    def note(
        self,
        vehicle_id: str,
        organization: str | None,
        driver_id: str,
        order_id: str | None,
        points: list[dict[str, Any]],
    ) -> None:
        """Note a vehicle's newly stored points; the background task judges them soon after."""
        moved = self._moved.get(vehicle_id)
        if moved is None:
            moved = self._moved[vehicle_id] = Moved(organization, driver_id, order_id)
        moved.organization, moved.driver_id, moved.order_id = organization, driver_id, order_id
        moved.points += points
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gps-watch")

    async def _run(self) -> None:
        while not self._closing:
            if not self._moved:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._moved = self._moved, {}
            await self._fences(batch)
            await asyncio.gather(*(self._order_of(vehicle_id, moved) for vehicle_id, moved in batch.items()))

    async def _fences(self, batch: dict[str, Moved]) -> None:
        """Judge every moved vehicle against its organization's geofences (a failure is logged, not raised)."""
        stored = [
            Stored(ObjectId(vehicle_id), ObjectId(moved.organization), ObjectId(moved.driver_id), moved.points)
            for vehicle_id, moved in batch.items()
            if moved.organization
        ]
        try:
            await self.geofences.judge_many(stored)
        except Exception:  # a store outage: these points are not judged; the next ones judge from the state
            log.exception("judging %d vehicles' GPS points against geofences failed", len(stored))

    async def _order_of(self, vehicle_id: str, moved: Moved) -> None:
        """The ETA and arrival of the order the truck holds; a failure is logged, not raised."""
        try:
            order = await self._active_order(moved.order_id) if moved.order_id else None
            if order is not None and str(order.get("vehicle_id")) == vehicle_id:
                await self.follow(order, moved.points)
        except Exception:  # one vehicle's failure (a store outage) must not stop the watch
            log.exception("the ETA of the order of vehicle %s failed", vehicle_id)

    async def _active_order(self, order_id: str) -> dict[str, Any] | None:
        """The order a truck holds, while it has a target (accepted, en route, in progress); else None.

        From this process's copy, at most ORDER_CACHE_SECONDS old, dropped at once when this process
        sees the order change; a copy gone stale by a change on another process only makes a
        conditional write miss (the status is in its filter), which drops it too."""
        cached = self._active.get(order_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        order = await self.orders.find_one(
            {"_id": ObjectId(order_id), "status": {"$in": list(TARGETS)}}, ACTIVE_ORDER_FIELDS
        )
        if len(self._active) >= ORDER_CACHE_SIZE:  # old orders' copies go, a few reads are repeated
            self._active.clear()
        self._active[order_id] = (time.monotonic() + ORDER_CACHE_SECONDS, order)
        return order

    # --- an order's truck moved ------------------------------------------------------------
    async def follow(self, order: dict[str, Any], points: list[dict[str, Any]]) -> None:
        """Check arrival along the points (ts order), then refresh the ETA from the newest one if due."""
        points = sorted(points, key=lambda p: p["ts"])
        status = order["status"]
        if status in ARRIVAL_STATUSES:
            target = ARRIVAL_STATUSES[status]
            place = order[target.value]
            near = next((p for p in points if self._within(p, place)), None)
            if near is not None and target.value not in (order.get("arrivals") or {}):
                await self._arriving(order, target, near["ts"])
        if points:
            await self._refresh_eta(order, points[-1])

    def _within(self, point: dict[str, Any], place: dict[str, Any]) -> bool:
        return haversine_km(point["lat"], point["lon"], place["lat"], place["lon"]) <= self.radius_km

    async def _arriving(self, order: dict[str, Any], target: EtaTarget, at: datetime) -> None:
        """Raise `order.arriving` once per order and target (the conditional update decides who raises it)."""
        # the truck's driver is the actor: their truck's stream raised it
        entry = timeline_event(OrderEvent.ARRIVING, order["status"], order["status"], order["driver_id"], target=target)
        updated = await self.orders.find_one_and_update(
            {"_id": order["_id"], "status": order["status"], f"arrivals.{target.value}": {"$exists": False}},
            {"$set": {f"arrivals.{target.value}": at}, "$push": {"timeline": entry}, "$inc": {"revision": 1}},
            projection={"timeline": 0},
            return_document=ReturnDocument.AFTER,
        )
        self._active.pop(str(order["_id"]), None)
        if updated is None:
            return
        shown = ORDER_OUT.dump(updated)
        await self.events.publish(
            Event(
                "arriving",
                _channels(updated),
                {"order": shown, "target": target.value, "at": isoformat(at)},
                topic=WebhookEvent.ORDER_ARRIVING,
                organization=_text(updated.get("organization")),
                ordering=(f"order:{updated['_id']}", int(updated.get("revision") or 0)),
            )
        )

    async def _refresh_eta(self, order: dict[str, Any], point: dict[str, Any], *, force: bool = False) -> None:
        """A new ETA from this point when the last one is old enough or far enough away (or `force`)."""
        target = TARGETS.get(order["status"])
        if target is None:
            return
        last = order.get("eta")
        if not force and last is not None and last.get("target") == target.value:
            age = (utcnow() - last["computed_at"]).total_seconds()
            far = haversine_km(last["origin"]["lat"], last["origin"]["lon"], point["lat"], point["lon"])
            if age < self.interval and far < MOVED_KM:
                return
        route = await self.router.route(point, order[target.value])
        eta = {
            "target": target.value,
            "seconds": round(route.seconds),
            "distance_km": round(route.distance_km, 2),
            "computed_at": utcnow(),
            "source": route.source,
            "origin": {"lat": point["lat"], "lon": point["lon"]},
        }
        expect = {"eta.computed_at": last["computed_at"]} if last is not None else {"eta": None}
        updated = await self.orders.find_one_and_update(
            {"_id": order["_id"], "status": order["status"], **expect},
            {"$set": {"eta": eta}},
            projection={"revision": 1, "organization": 1},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:  # another process refreshed it first, or the order moved on
            self._active.pop(str(order["_id"]), None)
            return
        order["eta"] = eta
        shown = {"order_id": str(order["_id"]), **ETA_OUT.dump(eta)}
        await self.events.publish(
            Event(
                "eta",
                _channels(updated),
                shown,
                topic=WebhookEvent.ORDER_ETA,
                organization=_text(updated.get("organization")),
                ordering=(f"order:{order['_id']}", int(updated.get("revision") or 0)),
            )
        )

    # --- status changes ----------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        """EventBus listener: an order that changed is read again when its truck moves next; one that just got
        a target gets an ETA (and an arrival check) from the truck's live position, in the background."""
        if event.type != "order":
            return
        order = event.data.get("order") or {}
        self._active.pop(str(order.get("id")), None)
        if event.data.get("to") in TARGETS and order.get("vehicle_id"):
            task = asyncio.get_running_loop().create_task(self._started(ObjectId(order["id"])))
            self._side.add(task)
            task.add_done_callback(self._side.discard)

    async def _started(self, order_id: ObjectId) -> None:
        try:
            order = await self.orders.find_one({"_id": order_id}, ACTIVE_ORDER_FIELDS)
            if order is None or order["status"] not in TARGETS or order.get("vehicle_id") is None:
                return
            position = (await live.positions(self.redis, [order["vehicle_id"]]))[str(order["vehicle_id"])]
            if position is not None:
                await self.follow(order, [{**position, "ts": _parse(position["ts"])}])
        except Exception:  # an ETA is a nicety of the status change, never its failure
            log.exception("the first ETA of order %s failed", order_id)

    async def close(self) -> None:
        """Stop the watch (points noted and not judged yet are left: the stream goes on after a restart)."""
        self._closing = True
        self._wake.set()
        tasks = [t for t in (self._task, *self._side) if t is not None]
        if tasks:  # let a batch under way finish: its state moved forward, its events are due
            await asyncio.wait(tasks, timeout=CLOSE_GRACE)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.router.close()


def _channels(order: dict[str, Any]) -> tuple[str, ...]:
    channels = [f"order:{order['_id']}"]
    if order.get("organization") is not None:
        channels.append(f"fleet:{order['organization']}")
    return tuple(channels)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
