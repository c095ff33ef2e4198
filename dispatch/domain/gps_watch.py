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
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import live
from dispatch.core.events import Event, EventBus
from dispatch.core.geo import haversine_km
from dispatch.core.storage import object_id
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
DRAIN_PERIOD = 0.1  # seconds between two drains of the notes: a drain judges all a fleet sent meanwhile
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
    "revision": 1,
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
            await self._orders(batch)
            await asyncio.sleep(DRAIN_PERIOD)  # the next drain takes what came meanwhile: one write per truck

    async def _fences(self, batch: dict[str, Moved]) -> None:
        """Judge every moved vehicle against its organization's geofences (a failure is logged, not raised)."""
        try:
            # Only the organizations that have geofences: most moved trucks usually have none to judge.
            organizations = {moved.organization for moved in batch.values() if moved.organization}
            fenced = {org for org in organizations if await self.geofences.fences_of(object_id(org))}
            stored = [
                Stored(object_id(vehicle_id), object_id(moved.organization), object_id(moved.driver_id), moved.points)
                for vehicle_id, moved in batch.items()
                if moved.organization in fenced
            ]
            await self.geofences.judge_many(stored)
        except Exception:  # a store outage: these points are not judged; the next ones judge from the state
            log.exception("judging %d vehicles' GPS points against geofences failed", len(batch))

    async def _orders(self, batch: dict[str, Moved]) -> None:
        """The ETAs and arrivals of the orders the moved trucks hold; the ETAs written in one round trip."""
        held = {vehicle_id: moved for vehicle_id, moved in batch.items() if moved.order_id}
        if not held:
            return
        try:
            orders = await self._active_orders([str(moved.order_id) for moved in held.values()])
            due = await asyncio.gather(
                *(
                    self._judge_order(order, moved.points)
                    for vehicle_id, moved in held.items()
                    if (order := orders.get(str(moved.order_id))) is not None
                    and str(order.get("vehicle_id")) == vehicle_id
                )
            )
            await self._write_etas([item for item in due if item is not None])
        except Exception:  # a store outage must not stop the watch: the next points try again
            log.exception("the ETAs of %d orders failed", len(held))

    async def _active_orders(self, order_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """The orders trucks hold, while they have a target (accepted, en route, in progress); else None.

        From this process's copies, at most ORDER_CACHE_SECONDS old (the others in one query), dropped
        at once when this process sees an order change; a copy gone stale by a change on another
        process only makes a conditional write miss (the status is in its filter), which drops it too."""
        now, found, missing = time.monotonic(), {}, []
        for order_id in dict.fromkeys(order_ids):
            cached = self._active.get(order_id)
            if cached is not None and cached[0] > now:
                found[order_id] = cached[1]
            else:
                missing.append(order_id)
        if missing:
            query = {"_id": {"$in": [ObjectId(i) for i in missing]}, "status": {"$in": list(TARGETS)}}
            read = {str(doc["_id"]): doc for doc in await self.orders.find(query, ACTIVE_ORDER_FIELDS).to_list()}
            if len(self._active) >= ORDER_CACHE_SIZE:  # old orders' copies go, a few reads are repeated
                self._active.clear()
            for order_id in missing:
                found[order_id] = read.get(order_id)
                self._active[order_id] = (now + ORDER_CACHE_SECONDS, found[order_id])
        return found

    # --- an order's truck moved ------------------------------------------------------------
    async def follow(self, order: dict[str, Any], points: list[dict[str, Any]]) -> None:
        """Check arrival along the points, then refresh the ETA from the newest one if due."""
        due = await self._judge_order(order, points)
        await self._write_etas([due] if due is not None else [])

    async def _judge_order(
        self, order: dict[str, Any], points: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Raise arrival along the points (ts order); the (order, new ETA) to write when one is due."""
        points = sorted(points, key=lambda p: p["ts"])
        status = order["status"]
        if status in ARRIVAL_STATUSES:
            target = ARRIVAL_STATUSES[status]
            place = order[target.value]
            near = next((p for p in points if self._within(p, place)), None)
            if near is not None and target.value not in (order.get("arrivals") or {}):
                await self._arriving(order, target, near["ts"])
        return await self._due_eta(order, points[-1]) if points else None

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

    async def _due_eta(
        self, order: dict[str, Any], point: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A new ETA from this point when the last one is old enough or far enough away; else None."""
        target = TARGETS.get(order["status"])
        if target is None:
            return None
        last = order.get("eta")
        if last is not None and last.get("target") == target.value:
            age = (utcnow() - last["computed_at"]).total_seconds()
            far = haversine_km(last["origin"]["lat"], last["origin"]["lon"], point["lat"], point["lon"])
            if age < self.interval and far < MOVED_KM:
                return None
        route = await self.router.route(point, order[target.value])
        eta = {
            "target": target.value,
            "seconds": round(route.seconds),
            "distance_km": round(route.distance_km, 2),
            "computed_at": utcnow(),
            "source": route.source,
            "origin": {"lat": point["lat"], "lon": point["lon"]},
        }
        return order, eta

    async def _write_etas(self, due: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Write new ETAs, each a compare-and-set on the one it replaces (and the order's status), in one
        round trip; publish those written (one another process wrote first, or of an order that moved
        on, is dropped with the order's copy)."""
        if not due:
            return
        writes = [
            UpdateOne(
                {
                    "_id": order["_id"],
                    "status": order["status"],
                    **({"eta.computed_at": order["eta"]["computed_at"]} if order.get("eta") else {"eta": None}),
                },
                {"$set": {"eta": eta}},
            )
            for order, eta in due
        ]
        result = await self.orders.bulk_write(writes, ordered=False)
        written = due
        if result.modified_count < len(due):  # which ones lost: read back whose ETA is ours
            ids = [order["_id"] for order, _ in due]
            now = {
                doc["_id"]: doc.get("eta")
                for doc in await self.orders.find({"_id": {"$in": ids}}, {"eta": 1}).to_list()
            }
            written = [(o, e) for o, e in due if (now.get(o["_id"]) or {}).get("computed_at") == e["computed_at"]]
        lost = {id(order) for order, _ in due} - {id(order) for order, _ in written}
        for order, _ in due:
            if id(order) in lost:
                self._active.pop(str(order["_id"]), None)
        for order, eta in written:
            order["eta"] = eta
            await self.events.publish(
                Event(
                    "eta",
                    _channels(order),
                    {"order_id": str(order["_id"]), **ETA_OUT.dump(eta)},
                    topic=WebhookEvent.ORDER_ETA,
                    organization=_text(order.get("organization")),
                    ordering=(f"order:{order['_id']}", int(order.get("revision") or 0)),
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
