"""Geofences: an organization's circles and polygons, and the enter/exit events of its vehicles.

Who: MANAGERs manage their organizations' geofences, ADMINs every one; an API key with `fleet:read`
reads its organization's (fences and events), and writes none.

How points are judged (SPEC section 10). A vehicle is inside a fence or not by its position alone,
so an event is a change between two consecutive points in GPS `ts` order. Per vehicle one state
(in Redis, dispatch/domain/fence_states.py: the newest judged `ts` and the fences it was inside) is moved forward by
compare-and-set on that `ts`; a process that loses the race reads the state again and judges its
points from there, so two processes receiving a truck's consecutive points never both judge from
the same state. Events carry the point's own `ts` as `at`; the unique index on (geofence, vehicle,
event, at) makes a resent point, or a window judged twice, raise nothing twice.

A late point (its `ts` at or before the newest judged one, e.g. an offline buffer flushed after a
live point) is judged with its neighbours from the stored GPS history: the window between the
judged points just before and just after it. For each fence, when the vehicle was on the same side
at both ends of the window, every crossing inside the window is raised (an excursion the live
stream missed: enter and exit, in order); when it was on different sides, that crossing was
already raised at the later judged point and stands — events already sent are never taken back,
and no fence gets two enters (or two exits) in a row from a late point. A fence created later
judges a vehicle from its next point on (a vehicle inside it then raises `enter`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import shapely
from bson import ObjectId
from numpy.typing import NDArray
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.errors import NotFound, ValidationFailed
from dispatch.core.events import Event, EventBus
from dispatch.core.geo import haversine_km_many
from dispatch.core.pagination import Page
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import Crossing, ShapeType, WebhookEvent
from dispatch.domain import scopes
from dispatch.domain.fence_states import FenceStates
from dispatch.domain.fleet import check_organization
from dispatch.domain.scopes import Resource
from models.geofences import GeofenceEventOut, Geofences
from models.vehicles import GPS_POINTS

FENCES_CACHE_SECONDS = 1.0  # another process's fence changes are seen within this long
WINDOW_CAP = 5000  # stored points re-judged around one late batch
STATE_RETRIES = 20
TOPIC = {Crossing.ENTER: WebhookEvent.GEOFENCE_ENTER, Crossing.EXIT: WebhookEvent.GEOFENCE_EXIT}
EVENT_OUT = GeofenceEventOut()


@dataclass(frozen=True)
class Stored:
    """A vehicle's points just stored, to be judged."""

    vehicle_id: ObjectId
    organization: ObjectId
    driver_id: ObjectId | None
    points: list[dict[str, Any]]


@dataclass(frozen=True)
class Fence:
    """A geofence ready to test points against, many at a time."""

    id: str
    contains_many: Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]]  # (lats, lons)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Fence:
        shape = doc["shape"]
        if shape["type"] == ShapeType.CIRCLE:
            lat0, lon0, km = shape["center"]["lat"], shape["center"]["lon"], shape["radius_m"] / 1000.0
            return cls(str(doc["_id"]), lambda lats, lons: haversine_km_many(lat0, lon0, lats, lons) <= km)
        polygon = shapely.Polygon([(lon, lat) for lat, lon in shape["points"]])
        shapely.prepare(polygon)
        return cls(str(doc["_id"]), lambda lats, lons: np.asarray(shapely.intersects_xy(polygon, lons, lats)))


def inside_many(fences: Iterable[Fence], points: list[dict[str, Any]]) -> list[set[str]]:
    """For each point, the ids of the fences it is in (on the boundary counts as in): one vectorised
    test per fence for all the points, so judging a drain costs per fence, not per point and fence."""
    found: list[set[str]] = [set() for _ in points]
    if not points:
        return found
    lats = np.fromiter((p["lat"] for p in points), dtype=np.float64, count=len(points))
    lons = np.fromiter((p["lon"] for p in points), dtype=np.float64, count=len(points))
    for fence in fences:
        for index in np.flatnonzero(fence.contains_many(lats, lons)).tolist():
            found[index].add(fence.id)
    return found


def inside(fences: Iterable[Fence], point: dict[str, Any]) -> set[str]:
    """The ids of the fences a point is in."""
    return inside_many(fences, [point])[0]


def crossings(
    fences: list[Fence], start: set[str], points: list[dict[str, Any]], insides: list[set[str]] | None = None
) -> tuple[list[tuple[str, Crossing, dict[str, Any]]], set[str]]:
    """The (fence, enter|exit, point) changes along points (in ts order) from `start`, and where it ends
    (`insides`: the points' fences when already known)."""
    known = {fence.id for fence in fences}
    now, changes = start & known, []
    for point, here in zip(points, inside_many(fences, points) if insides is None else insides, strict=True):
        changes += [(fid, Crossing.ENTER, point) for fid in sorted(here - now)]
        changes += [(fid, Crossing.EXIT, point) for fid in sorted(now - here)]
        now = here
    return changes, now


def insides_by_fences(groups: list[tuple[list[Fence], list[dict[str, Any]]]]) -> list[list[set[str]]]:
    """`inside_many` over several (fences, points) pairs: one pass per distinct fence list (an
    organization's), over the points of every vehicle of that organization at once."""
    found: list[list[set[str]]] = [[] for _ in groups]
    shared: dict[int, list[int]] = {}
    for index, (fences, _) in enumerate(groups):
        shared.setdefault(id(fences), []).append(index)
    for indexes in shared.values():
        sets = inside_many(groups[indexes[0]][0], [p for i in indexes for p in groups[i][1]])
        start = 0
        for i in indexes:
            found[i], start = sets[start : start + len(groups[i][1])], start + len(groups[i][1])
    return found


class GeofenceDesk:
    """Geofences on behalf of callers, and the judge of the GPS stream against them."""

    def __init__(self, db: AsyncDatabase[Any], redis: aioredis.Redis, events: EventBus) -> None:
        self.db = db
        self.events = events
        self.store = Geofences(db)
        self.states = FenceStates(redis)
        self.points = db[GPS_POINTS]
        self._fences: dict[ObjectId, tuple[float, list[Fence]]] = {}

    # --- managing geofences ------------------------------------------------------------
    async def create(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new geofence of an organization the caller runs."""
        await check_organization(self.db, user, data["organization"])
        now = utcnow()
        doc = {**data, "created_by": user["_id"], "created_at": now, "updated_at": now}
        self._fences.pop(data["organization"], None)
        return await self.store.insert(doc)

    async def page(self, user: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """The geofences the caller may read, newest first."""
        return await self.store.page(scopes.query(Resource.GEOFENCES, user), page)

    async def get(self, user: dict[str, Any], geofence_id: ObjectId) -> dict[str, Any]:
        """A geofence the caller may read; 404 otherwise."""
        doc = await self.store.get(geofence_id, scopes.query(Resource.GEOFENCES, user))
        if doc is None:
            raise NotFound("No such geofence.")
        return doc

    async def update(self, user: dict[str, Any], geofence_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any]:
        """Rename a geofence or give it a new shape."""
        if not changes:
            raise ValidationFailed({"_schema": ["Nothing to change."]})
        scope = scopes.query(Resource.GEOFENCES_EDIT, user)
        updated = await self.store.update(geofence_id, scope, {**changes, "updated_at": utcnow()})
        if updated is None:
            raise NotFound("No such geofence.")
        self._fences.pop(updated["organization"], None)
        return updated

    async def delete(self, user: dict[str, Any], geofence_id: ObjectId) -> None:
        """Delete a geofence and its events."""
        current = await self.get(user, geofence_id)
        if not await self.store.delete(geofence_id, scopes.query(Resource.GEOFENCES_EDIT, user)):
            raise NotFound("No such geofence.")
        self._fences.pop(current["organization"], None)

    async def event_page(
        self, user: dict[str, Any], geofence_id: ObjectId, page: Page
    ) -> tuple[list[dict[str, Any]], int]:
        """A geofence's enter/exit events, newest first."""
        await self.get(user, geofence_id)
        return await self.store.event_page(geofence_id, page)

    async def fences_of(self, organization: ObjectId) -> list[Fence]:
        """An organization's fences, from a copy at most FENCES_CACHE_SECONDS old."""
        cached = self._fences.get(organization)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        fences = [Fence.of(doc) for doc in await self.store.of_organization(organization)]
        self._fences[organization] = (time.monotonic() + FENCES_CACHE_SECONDS, fences)
        return fences

    # --- judging the stream ----------------------------------------------------------------
    async def judge(
        self, vehicle_id: ObjectId, organization: ObjectId, driver_id: ObjectId | None, points: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Judge a vehicle's newly stored points (any order); publish and return the events raised."""
        return await self.judge_many([Stored(vehicle_id, organization, driver_id, points)])

    async def judge_many(self, batch: list[Stored]) -> list[dict[str, Any]]:
        """Judge several vehicles' newly stored points: their states read and moved in one round trip each
        (a vehicle that lost a race to another process is judged again on its own); publish the events."""
        work = []
        for item in batch:
            fences = await self.fences_of(item.organization)
            if fences and item.points:
                work.append((item, fences, sorted(item.points, key=lambda p: p["ts"])))
        if not work:
            return []
        states = await self.states.states_of([item.vehicle_id for item, _, _ in work])
        freshes = [
            [p for p in points if (state := states.get(item.vehicle_id)) is None or p["ts"] > state["ts"]]
            for item, _, points in work
        ]
        insides = insides_by_fences([(fences, fresh) for (_, fences, _), fresh in zip(work, freshes, strict=True)])
        planned = []
        for (item, fences, points), fresh, fresh_insides in zip(work, freshes, insides, strict=True):
            state = states.get(item.vehicle_id)
            start = set(state["inside"]) if state else set()
            found, now = crossings(fences, start, fresh, fresh_insides) if fresh else ([], set())
            planned.append((item, fences, points, state, fresh, found, now))
        moves = [(item.vehicle_id, s["ts"] if s else None, fresh[-1]["ts"], sorted(now))
                 for item, _, _, s, fresh, _, now in planned if fresh]  # fmt: skip
        moved = await self.states.advance_many(moves)
        raised = []
        for item, fences, points, _, fresh, found, _ in planned:
            if fresh and item.vehicle_id not in moved:  # another process judged this truck meanwhile
                changes = await self._judge_alone(item.vehicle_id, fences, points)
            else:
                changes = found + (await self._late(item.vehicle_id, fences, points[: len(points) - len(fresh)]))
            raised += await self._raise(item.vehicle_id, item.organization, item.driver_id, changes)
        return raised

    async def _judge_alone(
        self, vehicle_id: ObjectId, fences: list[Fence], points: list[dict[str, Any]]
    ) -> list[tuple[str, Crossing, dict[str, Any]]]:
        """Judge one vehicle's points (ts order) from its state, retrying the compare-and-set until it holds."""
        changes: list[tuple[str, Crossing, dict[str, Any]]] = []
        for _ in range(STATE_RETRIES):
            state = await self.states.state(vehicle_id)
            seen = None if state is None else state["ts"]
            fresh = [p for p in points if seen is None or p["ts"] > seen]
            if not fresh:
                break
            found, now = crossings(fences, set(state["inside"]) if state else set(), fresh)
            if await self.states.advance(vehicle_id, seen, fresh[-1]["ts"], sorted(now)):
                changes += found
                points = [p for p in points if p not in fresh]
                break
        if points:  # late: at or before the newest judged point
            changes += await self._late(vehicle_id, fences, points)
        return changes

    async def _late(
        self, vehicle_id: ObjectId, fences: list[Fence], late: list[dict[str, Any]]
    ) -> list[tuple[str, Crossing, dict[str, Any]]]:
        """The crossings late points add (see the module's docstring): excursions between judged points."""
        state = await self.states.state(vehicle_id)
        if state is None:
            return []
        if not late:
            return []
        late_ts = {p["ts"] for p in late}
        window = await self._window(vehicle_id, late[0]["ts"], late[-1]["ts"], state["ts"])
        judged = [i for i, p in enumerate(window) if p["ts"] not in late_ts]
        changes: list[tuple[str, Crossing, dict[str, Any]]] = []
        for left, right in itertools.pairwise(judged):
            if right - left < 2:
                continue
            gap = window[left : right + 1]
            before, after = inside(fences, gap[0]), inside(fences, gap[-1])
            steady = [fence for fence in fences if (fence.id in before) == (fence.id in after)]
            found, _ = crossings(steady, before, gap[1:])
            changes += found
        return changes

    async def _window(
        self, vehicle_id: ObjectId, first: datetime, last: datetime, newest: datetime
    ) -> list[dict[str, Any]]:
        """Stored points from the one before `first` to the one after `last` (not past `newest`), ts order."""
        fields = {"_id": 0, "lat": 1, "lon": 1, "ts": 1}
        before = await self.points.find_one({"vehicle_id": vehicle_id, "ts": {"$lt": first}}, fields, sort=[("ts", -1)])
        after = await self.points.find_one(
            {"vehicle_id": vehicle_id, "ts": {"$gt": last, "$lte": newest}}, fields, sort=[("ts", 1)]
        )
        if after is None or before is None:  # no judged point on one side: nothing to judge against
            return []
        cursor = self.points.find(
            {"vehicle_id": vehicle_id, "ts": {"$gte": before["ts"], "$lte": after["ts"]}}, fields, sort=[("ts", 1)]
        )
        window = await cursor.limit(WINDOW_CAP).to_list()
        unique = {p["ts"]: p for p in window}  # a point stored twice under two seqs counts once
        return [unique[ts] for ts in sorted(unique)]

    async def _raise(
        self,
        vehicle_id: ObjectId,
        organization: ObjectId,
        driver_id: ObjectId | None,
        changes: list[tuple[str, Crossing, dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """Record the events (each identity once) and publish those that were new, in ts order."""
        now = utcnow()
        docs = [
            {
                "geofence_id": ObjectId(fence_id),
                "organization": organization,
                "event": kind.value,
                "vehicle_id": vehicle_id,
                "driver_id": driver_id,
                "at": point["ts"],
                "lat": point["lat"],
                "lon": point["lon"],
                "created_at": now,
            }
            for fence_id, kind, point in sorted(changes, key=lambda c: (c[2]["ts"], c[1] == Crossing.ENTER))
        ]
        recorded = await self.store.record(docs)
        for doc in recorded:
            shown = EVENT_OUT.dump(doc)
            shown.pop("id")
            await self.events.publish(
                Event(
                    "geofence",
                    (f"fleet:{organization}",),
                    shown,
                    topic=TOPIC[Crossing(doc["event"])],
                    organization=str(organization),
                )
            )
        return recorded
