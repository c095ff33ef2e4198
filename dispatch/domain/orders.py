"""Orders: the state machine (one table), scope, creation with a price estimate, assignment,
and the domain events every change publishes.

Every transition is one compare-and-set on the order document: the filter holds the status
the caller saw, the update sets the new one and appends the timeline entry in the same
write. Assignment first claims the truck atomically (available → busy), then moves the
order; if the order moved meanwhile, the truck is released again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core import live
from dispatch.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dispatch.core.events import Event, EventBus, scope_changed
from dispatch.core.geo import distance_km
from dispatch.core.pagination import Page
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import (
    ENDED_STATUSES,
    STAFF,
    STATUS_REQUESTS,
    Category,
    OrderEvent,
    OrderSource,
    OrderStatus,
    Principal,
    WebhookEvent,
)
from dispatch.domain import scopes
from dispatch.domain.routing import Router
from dispatch.domain.scopes import ORG_BOUND, Resource, is_api_key, orgs_of
from models.common import parse_id
from models.orders import OrderOut, Orders, timeline_event
from models.users import Users
from models.vehicles import Vehicles, VehicleTypes, organization_exists

DRIVING: frozenset[str] = STAFF | {Category.DRIVER}
# An organization's API key (scope `orders:write`) may cancel the organization's orders, and make no other move.
CANCELLING: frozenset[str] = STAFF | {Category.BASE, Principal.API_KEY}


@dataclass(frozen=True)
class Move:
    """One row of the state machine: asking for `action` moves an order from one of `sources` to `target`."""

    action: OrderEvent
    sources: frozenset[OrderStatus]
    target: OrderStatus
    roles: frozenset[str]  # user categories, and `Principal.API_KEY` where a key may ask for the move
    frees_vehicle: bool = False


# The state machine, the one table (SPEC section 5). `assigned` is asked for through
# POST /orders/{id}/assign, every other action through POST /orders/{id}/status.
# Scope narrows each role further: BASE acts on own orders, DRIVER on orders assigned to
# them, MANAGER (and an API key) on their organizations' orders, ADMIN on all.
E, S = OrderEvent, OrderStatus
MOVES: dict[str, Move] = {
    move.action: move
    for move in (
        Move(E.ASSIGNED, frozenset({S.NEW}), S.ASSIGNED, STAFF),
        Move(E.ACCEPTED, frozenset({S.ASSIGNED}), S.ACCEPTED, DRIVING),
        Move(E.EN_ROUTE, frozenset({S.ACCEPTED}), S.EN_ROUTE, DRIVING),
        Move(E.ARRIVED, frozenset({S.EN_ROUTE}), S.ARRIVED, DRIVING),
        Move(E.IN_PROGRESS, frozenset({S.ARRIVED}), S.IN_PROGRESS, DRIVING),
        Move(E.COMPLETED, frozenset({S.IN_PROGRESS}), S.COMPLETED, DRIVING, frees_vehicle=True),
        Move(E.DECLINED, frozenset({S.ASSIGNED}), S.NEW, DRIVING, frees_vehicle=True),
        Move(
            E.CANCELLED,
            frozenset({S.NEW, S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE}),
            S.CANCELLED,
            CANCELLING,
            frees_vehicle=True,
        ),
    )
}
# While in these statuses an order holds its truck (its live position is the order's to show).
HOLDS_VEHICLE = frozenset({S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE, S.ARRIVED, S.IN_PROGRESS})

ROUTING_RADIUS_KM = 50.0  # a client's order goes to the fleet of the nearest available truck this close
AUTO_RADIUS_KM = 20_000.0  # auto-assignment ranks every positioned truck of the fleet (half the Earth)
AUTO_CANDIDATES = 200
ROUTED_CANDIDATES = 5  # auto-assignment asks the routing server about this many trucks nearest in a straight line
ORDER_OUT = OrderOut()
# The one answer to every client id a manager may not order for (unknown, not a client, not theirs).
NOT_A_CUSTOMER = "No client you may order for has this id."
# What a client may not set on their own order: the integrator's id and a motorist without an account.
STAFF_AND_KEYS_ONLY = ("external_ref", "customer")


def actor_type(caller: dict[str, Any]) -> str | None:
    """What a timeline entry and an event add about who acted: `api_key` for a key, nothing for a person."""
    return Principal.API_KEY.value if is_api_key(caller) else None


# The public event type of each kind of order event (what webhooks hear).
TOPICS = {
    "created": WebhookEvent.ORDER_CREATED,
    "assigned": WebhookEvent.ORDER_ASSIGNED,
    "status_changed": WebhookEvent.ORDER_STATUS_CHANGED,
}


def decide(category: str, status: str, action: str) -> Move:
    """The move a role asks for from a status: 403 if the role never may, 409 if not from this status."""
    move = MOVES.get(action)
    if move is None or category not in move.roles:
        raise ApiError(
            403, "transition_forbidden", f"Your account may not set orders to {str(action)!r}.", {"status": action}
        )
    if status not in move.sources:
        raise invalid_transition(status, action)
    return move


def invalid_transition(status: str, action: str) -> Conflict:
    """409 for a move the order's current status does not allow."""
    allowed = sorted(m.action for m in MOVES.values() if status in m.sources)
    return Conflict(
        f"An order that is {str(status)!r} cannot become {str(action)!r}.",
        "invalid_transition",
        {"current": status, "requested": action, "allowed": allowed},
    )


def price_of(vehicle_type: dict[str, Any], km: float) -> float:
    """The estimate: base price plus price per km × distance, in currency units (2 decimals)."""
    return cast(float, round(vehicle_type["base_price"] + vehicle_type["price_per_km"] * km, 2))


class OrderDesk:
    """Orders on behalf of callers; publishes an event for every change."""

    def __init__(
        self, db: AsyncDatabase[Any], redis: aioredis.Redis, events: EventBus, users: Users, router: Router
    ) -> None:
        self.db = db
        self.router = router
        self.redis = redis
        self.events = events
        self.users = users
        self.orders = Orders(db)
        self.vehicles = Vehicles(db)

    # --- reads ----------------------------------------------------------------------
    async def get(self, user: dict[str, Any], order_id: ObjectId) -> dict[str, Any]:
        """An order the user may read; 404 otherwise."""
        order = await self.orders.get(order_id, scopes.query(Resource.ORDERS, user))
        if order is None:
            raise NotFound("No such order.")
        return order

    async def page(self, user: dict[str, Any], filters: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """The orders a user may read, filtered, newest first."""
        query = _filter_query(filters)
        scope = scopes.query(Resource.ORDERS, user)
        if scope:
            query = {"$and": [query, scope]} if query else scope
        return await self.orders.page(query, page)

    async def for_client(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order with what its client needs to meet the truck: `truck` (plate, model, colour) and `driver`
        (first name, rating), while a truck serves it; clients read neither vehicles nor users."""
        truck = driver = None
        if order.get("vehicle_id") is not None and order["status"] in HOLDS_VEHICLE:
            truck = await self.vehicles.get(order["vehicle_id"])
            driver = await self.users.get(order["driver_id"]) if order.get("driver_id") else None
        shown_truck = (  # vehicles made before colours were kept have none: null, as for a truck without one
            None
            if truck is None
            else {"plate": truck["plate"], "model": truck.get("model", ""), "color": truck.get("color")}
        )
        shown_driver = (
            None if driver is None else {"first_name": driver.get("first_name", ""), "rating": driver.get("rating")}
        )
        return {**order, "truck": shown_truck, "driver": shown_driver}

    async def timeline(self, user: dict[str, Any], order_id: ObjectId) -> list[dict[str, Any]]:
        """An order's timeline, oldest first."""
        events = await self.orders.timeline(order_id, scopes.query(Resource.ORDERS, user))
        if events is None:
            raise NotFound("No such order.")
        return events

    async def track(self, user: dict[str, Any], order_id: ObjectId) -> dict[str, Any]:
        """Where the order's truck is, and how far from the pickup (null while none serves it)."""
        order = await self.get(user, order_id)
        location = None
        if order.get("vehicle_id") is not None and order["status"] in HOLDS_VEHICLE:
            location = (await live.positions(self.redis, [order["vehicle_id"]]))[str(order["vehicle_id"])]
        distance = round(distance_km(location, order["pickup"]), 3) if location else None
        return {
            "order_id": order["_id"],
            "status": order["status"],
            "vehicle_id": order.get("vehicle_id"),
            "location": location,
            "distance_to_pickup_km": distance,
        }

    # --- creation ---------------------------------------------------------------------
    async def create(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new order with its price estimate, for the caller (BASE), a client or a `customer` without an
        account (MANAGER/ADMIN), or an API key's organization (`source: api`, for a `customer` or nobody named).

        The price comes from the order's organization's price list or the shared catalogue; a client
        naming no organization and a type of an organization's list orders from that organization.
        """
        types_seen = scopes.query(Resource.VEHICLE_TYPES, user)
        vehicle_type = await VehicleTypes(self.db).get(data["vehicle"]["type_id"], types_seen)
        if vehicle_type is None:
            raise ValidationFailed({"vehicle.type_id": ["No such vehicle type."]})
        organization = await self._organization_for(user, data, vehicle_type.get("organization"))
        if vehicle_type.get("organization") not in (None, organization):
            raise ValidationFailed(
                {"vehicle.type_id": ["Not a type of the order's organization's price list or of the shared catalogue."]}
            )
        client_id = await self._client_of(user, data, organization)
        km = (await self.router.route(data["pickup"], data["dropoff"])).distance_km
        now = utcnow()
        doc = {
            "client_id": client_id,
            "created_by": user["_id"],
            "source": OrderSource.API if is_api_key(user) else OrderSource.APP,
            "external_ref": data.get("external_ref"),
            "customer": data.get("customer"),
            "organization": organization,
            "pickup": data["pickup"],
            "dropoff": data["dropoff"],
            "vehicle": {**data["vehicle"], "type_name": vehicle_type["name"]},
            "notes": data.get("notes", ""),
            "distance_km": round(km, 2),
            "price_estimate": price_of(vehicle_type, km),
            "status": S.NEW,
            "vehicle_id": None,
            "driver_id": None,
            "eta": None,
            "created_at": now,
            "updated_at": now,
            "revision": 0,
            "timeline": [timeline_event(E.CREATED, None, S.NEW, user["_id"], actor_type=actor_type(user))],
        }
        order = await self.orders.insert(doc)
        order.pop("timeline")
        await self._publish(order, "created", user["_id"], None, S.NEW, actor_type=actor_type(user))
        return order

    async def _client_of(
        self, user: dict[str, Any], data: dict[str, Any], organization: ObjectId | None
    ) -> ObjectId | None:
        """The order's client: the caller (BASE), or a client an ADMIN names, or a customer of the
        manager's organization; none for an API key's order or a `customer` without an account.
        Every refused id gets the same answer, so none tells who is a client."""
        client_id = data.get("client_id")
        if user["category"] == Category.BASE:
            if client_id not in (None, user["_id"]):
                raise ValidationFailed({"client_id": ["Clients order for themselves."]})
            given = [name for name in STAFF_AND_KEYS_ONLY if data.get(name) is not None]
            if given:
                raise ValidationFailed({name: ["Set by integrations and the fleet's staff only."] for name in given})
            return cast(ObjectId, user["_id"])
        if is_api_key(user):
            if client_id is not None:
                raise ValidationFailed({"client_id": ["An API key orders for a `customer`, not for an account."]})
            return None
        if client_id is None:
            if data.get("customer") is not None:
                return None
            raise ValidationFailed({"client_id": ["Name the client you order for, or give `customer`."]})
        if data.get("customer") is not None:
            raise ValidationFailed({"customer": ["Give `client_id` or `customer`, not both."]})
        client = await self.users.get(client_id)
        linked = (
            client is not None
            and client.get("category") == Category.BASE
            and (user["category"] == Category.ADMIN or await self._is_customer(client, organization))
        )
        if not linked:
            raise ValidationFailed({"client_id": [NOT_A_CUSTOMER]})
        return cast(ObjectId, client_id)

    async def _is_customer(self, client: dict[str, Any], organization: ObjectId | None) -> bool:
        """Whether a client is the organization's: a member of it, or with an order of it before."""
        if organization is None:
            return False
        if organization in orgs_of(client):
            return True
        return await self.orders.exists({"client_id": client["_id"], "organization": organization})

    async def _organization_for(
        self, user: dict[str, Any], data: dict[str, Any], type_organization: ObjectId | None
    ) -> ObjectId | None:
        organization = data.get("organization")
        if user["category"] in ORG_BOUND:
            if organization is None and is_api_key(user):  # a key's order is its organization's
                return orgs_of(user)[0]
            if organization not in orgs_of(user):
                raise ValidationFailed({"organization": ["Give one of your organizations."]})
            return cast(ObjectId, organization)
        if organization is None:
            organization = type_organization
        if organization is not None:
            if not await organization_exists(self.db, organization):
                raise ValidationFailed({"organization": ["No such organization."]})
            return organization
        return await self._nearest_fleet(data["pickup"]) if user["category"] == Category.BASE else None

    async def _nearest_fleet(self, pickup: dict[str, Any]) -> ObjectId | None:
        """The organization of the nearest available truck within the routing radius, if any."""
        ranked = await live.nearby(self.redis, pickup["lat"], pickup["lon"], ROUTING_RADIUS_KM, AUTO_CANDIDATES)
        ids = [ObjectId(member) for member, _ in ranked if ObjectId.is_valid(member)]
        available = {doc["_id"]: doc for doc in await self.vehicles.available({}, among=ids)} if ids else {}
        nearest = next((available[vid] for vid in ids if vid in available), None)
        return nearest["organization"] if nearest else None

    # --- transitions -------------------------------------------------------------------
    async def change_status(
        self, user: dict[str, Any], order_id: ObjectId, action: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Move an order along the state machine (POST /orders/{id}/status)."""
        order = await self.get(user, order_id)
        move = decide(user["category"], order["status"], action)
        changes: dict[str, Any] = {"status": move.target, "eta": None}  # a new status, a new target (or none)
        if action == E.DECLINED:
            changes.update(vehicle_id=None, driver_id=None)
        event = timeline_event(
            action, order["status"], move.target, user["_id"], reason=reason, actor_type=actor_type(user)
        )
        if move.target in ENDED_STATUSES:  # tracking links work until 2 h after this
            changes["ended_at"] = event["at"]
        # The truck is part of the expected state: a decline and a new assignment in between
        # (same status again, another truck) must not let this move release the wrong truck.
        expect = {"status": order["status"], "vehicle_id": order.get("vehicle_id")}
        updated = await self.orders.move(order_id, expect, changes, event)
        if updated is None:
            raise await self._lost_race(order_id, action)
        if move.frees_vehicle and order.get("vehicle_id") is not None:
            await self.vehicles.release(order["vehicle_id"], order_id)
        await self._publish(
            updated,
            "status_changed",
            user["_id"],
            order["status"],
            move.target,
            action=action,
            reason=reason,
            actor_type=actor_type(user),
        )
        if move.frees_vehicle and order.get("driver_id") is not None:  # the truck stops streaming to the order
            await self.events.publish(scope_changed(order["driver_id"]))
        return updated

    async def change_status_unchecked(
        self, user: dict[str, Any], order_id: str, status: Any, reason: Any = None
    ) -> dict[str, Any]:
        """The same move as POST /orders/{id}/status from unchecked input (a driver socket's `status`
        frame), checked as the REST call checks it; answered as the order's API form."""
        if status not in STATUS_REQUESTS:
            raise ValidationFailed({"status": [f"One of: {', '.join(STATUS_REQUESTS)}."]})
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise ValidationFailed({"reason": ["Text of at most 500 characters."]})
        return cast(dict[str, Any], ORDER_OUT.dump(await self.change_status(user, parse_id(order_id), status, reason)))

    async def assign(self, user: dict[str, Any], order_id: ObjectId, vehicle_id: ObjectId | None) -> dict[str, Any]:
        """Give an order a truck: this one, or (None) the nearest available one of its organization."""
        order = await self.get(user, order_id)
        decide(user["category"], order["status"], E.ASSIGNED)
        if vehicle_id is None:
            vehicle = await self._claim_nearest(order)
        else:
            vehicle = await self._claim(user, order, vehicle_id)
        event = timeline_event(E.ASSIGNED, order["status"], S.ASSIGNED, user["_id"], vehicle_id=vehicle["_id"])
        changes = {
            "status": S.ASSIGNED,
            "vehicle_id": vehicle["_id"],
            "driver_id": vehicle["driver_id"],
            "organization": vehicle["organization"],
        }
        expect = {"status": order["status"], "organization": order.get("organization")}
        updated = await self.orders.move(order_id, expect, changes, event)
        if updated is None:
            await self.vehicles.release(vehicle["_id"], order_id)
            raise await self._lost_race(order_id, E.ASSIGNED)
        await self._publish(updated, "assigned", user["_id"], order["status"], S.ASSIGNED, action=E.ASSIGNED)
        return updated

    async def _claim(self, user: dict[str, Any], order: dict[str, Any], vehicle_id: ObjectId) -> dict[str, Any]:
        vehicle = await self.vehicles.get(vehicle_id, scopes.query(Resource.VEHICLES, user))
        if vehicle is None:
            raise ValidationFailed({"vehicle_id": ["No such vehicle."]})
        if order.get("organization") not in (None, vehicle["organization"]):
            raise ValidationFailed({"vehicle_id": ["Not a vehicle of the order's organization."]})
        claimed = await self.vehicles.claim(vehicle_id, order["_id"], order.get("organization"))
        if claimed is None:
            raise Conflict(
                "This vehicle is not available (busy, offline or without a driver).",
                "vehicle_not_available",
                {"vehicle_id": str(vehicle_id)},
            )
        return claimed

    async def _claim_nearest(self, order: dict[str, Any]) -> dict[str, Any]:
        """Claim the nearest available truck of the order's organization; the next one if another order took it."""
        for candidate in await self._candidates(order):
            claimed = await self.vehicles.claim(candidate, order["_id"], order.get("organization"))
            if claimed is not None:
                return claimed
        raise Conflict("No vehicle of the organization is available.", "no_vehicle_available")

    async def _candidates(self, order: dict[str, Any]) -> list[ObjectId]:
        """Available trucks for an order: those with a live position nearest the pickup first, then the others."""
        organization = order.get("organization")
        key = live.geo_org(organization) if organization else live.GEO_ALL
        scope = {"organization": organization} if organization else {}
        pickup = order["pickup"]
        ranked = await live.nearby(self.redis, pickup["lat"], pickup["lon"], AUTO_RADIUS_KM, AUTO_CANDIDATES, key)
        distance = dict(ranked)
        available = await self.vehicles.available(scope)
        available.sort(key=lambda doc: (distance.get(str(doc["_id"]), math.inf), str(doc["_id"])))
        routed = await self._by_drive(available, ranked, pickup)
        return list(dict.fromkeys(routed + [doc["_id"] for doc in available]))

    async def _by_drive(
        self, available: list[dict[str, Any]], ranked: list[tuple[str, float]], pickup: dict[str, Any]
    ) -> list[ObjectId]:
        """The few nearest available trucks (in a straight line) ranked by drive distance to the pickup."""
        if not self.router.url:
            return []
        nearest = [doc["_id"] for doc in available[:ROUTED_CANDIDATES] if str(doc["_id"]) in dict(ranked)]
        spots = await live.positions(self.redis, nearest)
        drives = []
        for vehicle_id in nearest:
            spot = spots.get(str(vehicle_id))
            if spot is not None:
                drives.append(((await self.router.route(spot, pickup)).distance_km, str(vehicle_id), vehicle_id))
        return [vehicle_id for _, _, vehicle_id in sorted(drives)]

    async def _lost_race(self, order_id: ObjectId, action: str) -> ApiError:
        """The 409 for a compare-and-set that found the order changed."""
        now = await self.orders.get(order_id, {})
        if now is None:
            return NotFound("No such order.")
        return invalid_transition(now["status"], action)

    # --- events --------------------------------------------------------------------------
    async def _publish(
        self, order: dict[str, Any], kind: str, actor_id: ObjectId, before: str | None, after: str, **extra: Any
    ) -> None:
        """The one place order events are published (and assignments pushed to the driver)."""
        shown = ORDER_OUT.dump(order)
        channels = [f"order:{order['_id']}"]
        if order.get("organization") is not None:
            channels.append(f"fleet:{order['organization']}")
        data = {
            "event": kind,
            "order": shown,
            "actor_id": str(actor_id),
            "from": before,
            "to": after,
            **{k: v for k, v in extra.items() if v is not None},
        }
        organization = order.get("organization")
        await self.events.publish(
            Event(
                "order",
                tuple(channels),
                data,
                topic=TOPICS[kind],
                organization=None if organization is None else str(organization),
                ordering=(f"order:{order['_id']}", int(order.get("revision") or 0)),
            )
        )
        if kind == "assigned":
            await self.events.publish(Event("assignment", (f"user:{order['driver_id']}",), {"order": shown}))


def _filter_query(filters: dict[str, Any]) -> dict[str, Any]:
    """The Mongo query of the list filters (status, driver, organization, client, external_ref, from/to)."""
    query: dict[str, Any] = {}
    for name, field in (
        ("status", "status"),
        ("driver", "driver_id"),
        ("organization", "organization"),
        ("client", "client_id"),
        ("external_ref", "external_ref"),
    ):
        if name in filters:
            query[field] = filters[name]
    created: dict[str, Any] = {}
    if "start" in filters:
        created["$gte"] = filters["start"]
    if "end" in filters:
        created["$lte"] = filters["end"]
    if created:
        query["created_at"] = created
    return query
