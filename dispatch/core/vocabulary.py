"""The words of the domain: user categories and every status set, each written once.

They are `StrEnum`s, so a member is its string: it compares equal to the stored and
sent value, and JSON, BSON and Redis carry it unchanged. Schemas validate with
`choices(...)`, which the OpenAPI document turns into its `enum`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Category(StrEnum):
    """What a user is (SPEC section 4); the access rules speak in these."""

    BASE = "BASE"  # a client
    DRIVER = "DRIVER"
    MANAGER = "MANAGER"
    ADMIN = "ADMIN"


# Who may sign up as what; ADMINs are made by the `create-admin` tool or by another ADMIN.
SELF_REGISTRATION = (Category.BASE, Category.DRIVER, Category.MANAGER)
# Who runs a fleet and so operates orders, tickets and organizations.
STAFF = frozenset({Category.MANAGER, Category.ADMIN})


class OrderStatus(StrEnum):
    """Where an order stands (SPEC section 5)."""

    NEW = "new"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class OrderEvent(StrEnum):
    """What happens to an order: the timeline entry types, and (all but `created`) the actions asked for."""

    CREATED = "created"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DECLINED = "declined"  # a driver hands an assigned order back: it becomes `new` again
    ARRIVING = "arriving"  # the truck came within the arrival radius of its target (raised, not asked for)


# An order in one of these has ended (its tracking links work 2 h more).
ENDED_STATUSES = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})
# What `POST /orders/{id}/status` accepts; `assigned` is asked for through `/assign`.
STATUS_REQUESTS = tuple(
    e for e in OrderEvent if e not in (OrderEvent.CREATED, OrderEvent.ASSIGNED, OrderEvent.ARRIVING)
)


class VehicleStatus(StrEnum):
    """A truck's availability."""

    OFFLINE = "offline"
    AVAILABLE = "available"
    BUSY = "busy"  # set by assignment only


SETTABLE_VEHICLE_STATUSES = (VehicleStatus.OFFLINE, VehicleStatus.AVAILABLE)


class WaybillStatus(StrEnum):
    """A trip sheet's stage; it only moves one step forward."""

    OPEN = "open"
    ON_ROUTE = "on_route"
    RETURNED = "returned"


class TicketStatus(StrEnum):
    """A support ticket's stage."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class InvitationStatus(StrEnum):
    """An invitation to an organization, as its invitee and its managers see it."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    EXPIRED = "expired"


class PaymentMethod(StrEnum):
    """How an order was paid."""

    CASH = "cash"
    CARD = "card"
    INVOICE = "invoice"


# What a driver takes on the spot; invoices are the office's.
DRIVER_PAYMENT_METHODS = (PaymentMethod.CASH, PaymentMethod.CARD)


class Principal(StrEnum):
    """Who acts on a request: a signed-in person, or an organization's API key (SPEC section 9).

    A key principal carries `Principal.API_KEY` where a user carries their `Category`, so the scope table
    (dispatch/domain/scopes.py) has a row for it; it is never a user and never stored among them.
    """

    USER = "user"
    API_KEY = "api_key"


class KeyScope(StrEnum):
    """What an API key may do (SPEC section 9); an access rule names the one that admits a key."""

    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"  # create orders for the key's organization, cancel them
    FLEET_READ = "fleet:read"  # vehicles, live positions, nearby, tracks, vehicle types
    WEBHOOKS = "webhooks"  # manage the organization's webhooks


class OrderSource(StrEnum):
    """Where an order came from: a person in an app or console, or an integration's API key."""

    APP = "app"
    API = "api"


class Language(StrEnum):
    """Languages the product writes to customers in."""

    EN = "en"
    RU = "ru"


class Milestone(StrEnum):
    """The moments of an order its customer is told about by SMS or email (SPEC section 11)."""

    ASSIGNED = "assigned"  # a truck is on it: plate, model, ETA, the tracking link
    ARRIVING = "arriving"  # the truck is about to reach the pickup
    COMPLETED = "completed"  # the tow is done: price and payment


class MessageStatus(StrEnum):
    """A milestone message's state: recorded and waiting (or being sent), or handed to the backend."""

    PENDING = "pending"
    SENT = "sent"


class AvatarStatus(StrEnum):
    """An uploaded avatar's state as the upload's answer reports it."""

    PROCESSING = "processing"


class EtaTarget(StrEnum):
    """Where an order's truck drives to: the pickup (accepted, en route) or the drop-off (in progress)."""

    PICKUP = "pickup"
    DROPOFF = "dropoff"


class EtaSource(StrEnum):
    """Whether an ETA came from the routing server or the straight-line estimate."""

    ROUTING = "routing"
    ESTIMATE = "estimate"


class ShapeType(StrEnum):
    """A geofence's shape."""

    CIRCLE = "circle"
    POLYGON = "polygon"


class Crossing(StrEnum):
    """A geofence event: a vehicle entered or left the fence."""

    ENTER = "enter"
    EXIT = "exit"


class WebhookEvent(StrEnum):
    """The public event types integrations subscribe to (SPEC section 9); each is a webhook delivery."""

    ORDER_CREATED = "order.created"
    ORDER_ASSIGNED = "order.assigned"
    ORDER_STATUS_CHANGED = "order.status_changed"
    ORDER_ETA = "order.eta"
    ORDER_ARRIVING = "order.arriving"
    GEOFENCE_ENTER = "geofence.enter"
    GEOFENCE_EXIT = "geofence.exit"
    WAYBILL_STATUS_CHANGED = "waybill.status_changed"
    PAYMENT_CREATED = "payment.created"
    RATING_CREATED = "rating.created"
    PING = "ping"  # `POST /webhooks/{id}/test`


class EventFilter(StrEnum):
    """What a webhook's `events` may list besides the event types."""

    ALL = "*"  # every event type, those added later included


WEBHOOK_EVENT_FILTERS = (EventFilter.ALL, *WebhookEvent)


class DeliveryStatus(StrEnum):
    """A webhook delivery's state: waiting (or being retried), delivered, or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# Every status set and its named subsets: the only enums the OpenAPI document may contain.
VOCABULARY: tuple[tuple[StrEnum, ...], ...] = (
    tuple(Category),
    SELF_REGISTRATION,
    tuple(OrderStatus),
    tuple(OrderEvent),
    STATUS_REQUESTS,
    tuple(VehicleStatus),
    SETTABLE_VEHICLE_STATUSES,
    tuple(WaybillStatus),
    tuple(TicketStatus),
    tuple(InvitationStatus),
    tuple(PaymentMethod),
    tuple(AvatarStatus),
    tuple(Principal),
    tuple(KeyScope),
    tuple(OrderSource),
    tuple(Language),
    tuple(WebhookEvent),
    WEBHOOK_EVENT_FILTERS,
    tuple(DeliveryStatus),
    tuple(EtaTarget),
    tuple(EtaSource),
    tuple(ShapeType),
    tuple(Crossing),
)


def choices(members: Iterable[StrEnum]) -> list[str]:
    """The plain string values, in order, for `validate.OneOf` (and so the document's `enum`)."""
    return [str(member) for member in members]
