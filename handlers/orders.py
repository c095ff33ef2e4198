"""Orders: creation with a price estimate, role-scoped lists, the state machine, assignment,
the timeline and live tracking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dispatch.core.policy import authenticated, roles
from dispatch.core.vocabulary import Category, KeyScope
from dispatch.domain import idempotency
from handlers.base import BaseHandler, query_of
from models.common import parse_id
from models.orders import AssignIn, OrderIn, OrderOut, OrderQuery, OrderTrack, StatusIn, TimelineEvent

ORDER_OUT = OrderOut()
EVENT_OUT = TimelineEvent()
TRACK_OUT = OrderTrack()


class OrdersBase(BaseHandler):
    """Gives order handlers the `Idempotency-Key` answer."""

    async def answer_once(self, operation: Callable[[], Awaitable[tuple[int, Any]]]) -> None:
        """Answer with the operation's (status, data); with an `Idempotency-Key`, only its first run counts."""
        key = self.request.headers.get(idempotency.HEADER)
        if key is None:
            status, data = await operation()
            self.write_json(data, status)
            return
        print_ = idempotency.fingerprint(self.request.method or "", self.request.path, self.body)
        answer = await self.services.idempotency.once(self.user_id, idempotency.check_key(key), print_, operation)
        if answer.replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.set_status(answer.status)
        self.finish(answer.body)


class OrdersHandler(OrdersBase):
    @authenticated(key=KeyScope.ORDERS_READ)
    async def get(self) -> None:
        """List orders: a client's own, a driver's assigned, a manager's organizations', or all (ADMIN).
        ---
        tags: [orders]
        parameters:
          - {in: query, schema: OrderQuery}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of orders, newest first.
            content:
              application/json: {schema: OrderList}
          422: {$ref: '#/components/responses/422'}
        """
        filters = self.load(OrderQuery(), query_of(self))
        page = self.page()
        docs, total = await self.services.orders.page(self.current_user, filters, page)
        self.write_json(page.envelope(ORDER_OUT.dump(docs, many=True), total))

    @roles(Category.BASE, Category.MANAGER, Category.ADMIN, key=KeyScope.ORDERS_WRITE)
    async def post(self) -> None:
        """Order a tow; answers with the price estimate. With `Idempotency-Key`, a retry gets the first answer.
        ---
        tags: [orders]
        description: |
          A client orders for themselves. A MANAGER (for one of their organizations) or an ADMIN orders for a
          client (`client_id`) or for a motorist without an account (`customer`). An organization's API key
          (scope `orders:write`) orders for its own organization (`organization` may be omitted), for a
          `customer` or nobody named; its orders carry `source: "api"` and `created_by` = the key's id.
          `external_ref` (API keys, MANAGERs, ADMINs) is the integrator's own id: unique per organization,
          a second order with it → 409 `duplicate_external_ref`; find the order with `GET /orders?external_ref=`.
        parameters:
          - name: Idempotency-Key
            in: header
            schema: {type: string, maxLength: 255}
            description: The same key and body within 24 h return the first answer; another body → 409.
        requestBody:
          required: true
          content:
            application/json: {schema: OrderIn}
        responses:
          201:
            description: The new order, with `price_estimate` and `distance_km`.
            content:
              application/json: {schema: OrderOut}
          409: {$ref: '#/components/responses/409'}
        """

        async def create() -> tuple[int, Any]:
            order = await self.services.orders.create(self.current_user, self.load(OrderIn()))
            return 201, ORDER_OUT.dump(order)

        await self.answer_once(create)


class OrderHandler(OrdersBase):
    @authenticated(key=KeyScope.ORDERS_READ)
    async def get(self, order_id: str) -> None:
        """One order (outside the caller's scope: 404).
        ---
        tags: [orders]
        description: The order's client also gets `truck` (plate, model, colour) and `driver` (first name,
          rating) while a truck serves it, to meet it at the roadside.
        responses:
          200:
            description: The order.
            content:
              application/json: {schema: OrderOut}
        """
        order = await self.services.orders.get(self.current_user, parse_id(order_id))
        if self.current_user.get("category") == Category.BASE:
            order = await self.services.orders.for_client(order)
        self.write_json(ORDER_OUT.dump(order))


class OrderStatusHandler(OrdersBase):
    @authenticated(key=KeyScope.ORDERS_WRITE)
    async def post(self, order_id: str) -> None:
        """Move an order along the state machine (a driver's `declined` returns it to `new`).
        ---
        operationId: changeOrderStatus
        tags: [orders]
        description: |
          new → assigned → accepted → en_route → arrived → in_progress → completed; `cancelled` from
          new, assigned, accepted or en_route; `declined` from assigned (back to new).
          A client may cancel their own order; a driver moves their assigned order forward or declines it;
          managers (their organizations) and ADMINs make any valid move. An API key (scope `orders:write`)
          may only cancel its organization's orders (any other status → 403 `transition_forbidden`);
          its timeline entry has `actor_id` = the key's id and `actor_type: "api_key"`.
        requestBody:
          required: true
          content:
            application/json: {schema: StatusIn}
        responses:
          200:
            description: The order in its new status.
            content:
              application/json: {schema: OrderOut}
          403: {$ref: '#/components/responses/403'}
          409: {$ref: '#/components/responses/409'}
        """
        data = self.load(StatusIn())
        order = await self.services.orders.change_status(
            self.current_user, parse_id(order_id), data["status"], data.get("reason")
        )
        self.write_json(ORDER_OUT.dump(order))


class OrderAssignHandler(OrdersBase):
    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self, order_id: str) -> None:
        """Assign a new order to a truck, or `{auto: true}` to the nearest available one of its organization.
        ---
        operationId: assignOrder
        tags: [orders]
        requestBody:
          required: true
          content:
            application/json: {schema: AssignIn}
        responses:
          200:
            description: The assigned order (its truck is now busy).
            content:
              application/json: {schema: OrderOut}
          409: {$ref: '#/components/responses/409'}
        """
        data = self.load(AssignIn())
        order = await self.services.orders.assign(self.current_user, parse_id(order_id), data.get("vehicle_id"))
        self.write_json(ORDER_OUT.dump(order))


class OrderEventsHandler(OrdersBase):
    @authenticated(key=KeyScope.ORDERS_READ)
    async def get(self, order_id: str) -> None:
        """An order's timeline: who did what, when (oldest first).
        ---
        tags: [orders]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of timeline events.
            content:
              application/json: {schema: OrderEventList}
        """
        page = self.page()
        events = await self.services.orders.timeline(self.current_user, parse_id(order_id))
        shown = EVENT_OUT.dump(events[page.offset : page.offset + page.limit], many=True)
        self.write_json(page.envelope(shown, len(events)))


class OrderTrackHandler(OrdersBase):
    @authenticated(key=KeyScope.ORDERS_READ)
    async def get(self, order_id: str) -> None:
        """The assigned truck's live position and its distance to the pickup.
        ---
        tags: [orders]
        responses:
          200:
            description: Where the truck is (null while no truck serves the order or it never reported).
            content:
              application/json: {schema: OrderTrack}
        """
        self.write_json(TRACK_OUT.dump(await self.services.orders.track(self.current_user, parse_id(order_id))))


default_handlers = [
    (r"/orders", OrdersHandler),
    (r"/orders/(?P<order_id>[^/]+)", OrderHandler),
    (r"/orders/(?P<order_id>[^/]+)/status", OrderStatusHandler),
    (r"/orders/(?P<order_id>[^/]+)/assign", OrderAssignHandler),
    (r"/orders/(?P<order_id>[^/]+)/events", OrderEventsHandler),
    (r"/orders/(?P<order_id>[^/]+)/track", OrderTrackHandler),
]
