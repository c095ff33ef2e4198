"""Support tickets and their messages: schemas of the API and the data access of both collections.

Operators' internal notes are stored beside public messages with `internal: true`; every read
meant for a client or driver filters them out here, and the ticket keeps separate public
counters so not even a count or a time gives an internal note away.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from marshmallow import EXCLUDE, Schema, fields, validate
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.storage import index
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import TicketStatus, choices
from models.common import Id, JsonBoolean, UtcDateTime, list_of, visible_text

TICKETS = "support_tickets"
MESSAGES = "support_messages"

index(TICKETS, [("created_by", 1), ("created_at", DESCENDING)], name="creator_created")
index(TICKETS, [("organization", 1), ("created_at", DESCENDING)], name="organization_created")
index(TICKETS, "assignee_id", name="assignee")
index(MESSAGES, [("ticket_id", 1), ("created_at", 1)], name="ticket_created")

SUBJECT = validate.And(validate.Length(min=1, max=200), visible_text)
TEXT = validate.Length(min=1, max=10_000)


class SupportTicketOut(Schema):
    """A ticket; counts and times cover only the messages the caller may read."""

    id = Id(attribute="_id", required=True)
    subject = fields.String(required=True)
    description = fields.String(required=True)
    order_id = Id(allow_none=True, required=True)
    organization = Id(allow_none=True, required=True)
    created_by = Id(required=True)
    assignee_id = Id(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(choices(TicketStatus)))
    message_count = fields.Integer(required=True)
    last_message_at = UtcDateTime(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


SupportTicketList = list_of(SupportTicketOut, "SupportTicketList")


class SupportTicketIn(Schema):
    subject = fields.String(required=True, validate=SUBJECT)
    description = fields.String(required=True, validate=TEXT)
    order_id = Id(allow_none=True, load_default=None, metadata={"description": "An order the caller may read"})


class SupportTicketPatch(Schema):
    """What operators change on a ticket."""

    assignee_id = Id(
        allow_none=True, metadata={"description": "A manager of the ticket's organization or an admin; null unassigns"}
    )
    status = fields.String(validate=validate.OneOf(choices(TicketStatus)))


class SupportTicketFilters(Schema):
    class Meta:
        unknown = EXCLUDE  # the query string also carries limit and offset

    status = fields.String(validate=validate.OneOf(choices(TicketStatus)))
    assignee_id = Id()
    order_id = Id()


class SupportMessageOut(Schema):
    id = Id(attribute="_id", required=True)
    ticket_id = Id(required=True)
    author_id = Id(required=True)
    body = fields.String(required=True)
    internal = fields.Boolean(required=True, metadata={"description": "An operators' note (never shown to clients)"})
    created_at = UtcDateTime(required=True)


SupportMessageList = list_of(SupportMessageOut, "SupportMessageList")


class SupportMessageIn(Schema):
    body = fields.String(required=True, validate=TEXT)
    internal = JsonBoolean(
        load_default=False,
        metadata={"description": "Operators only: a note other operators see and the client never does"},
    )


def new_ticket(data: dict[str, Any], author_id: ObjectId, organization: ObjectId | None) -> dict[str, Any]:
    """A ticket document ready to insert (its description becomes the first message)."""
    now = utcnow()
    return {
        "subject": data["subject"],
        "description": data["description"],
        "order_id": data.get("order_id"),
        "organization": organization,
        "created_by": author_id,
        "assignee_id": None,
        "status": TicketStatus.OPEN,
        "message_count": 0,
        "public_message_count": 0,
        "last_message_at": now,
        "last_public_message_at": now,
        "created_at": now,
        "updated_at": now,
    }


def new_message(ticket_id: ObjectId, author_id: ObjectId, body: str, internal: bool) -> dict[str, Any]:
    """A message document ready to insert."""
    return {"ticket_id": ticket_id, "author_id": author_id, "body": body, "internal": internal, "created_at": utcnow()}


class SupportTickets:
    """Data access of `support_tickets` and `support_messages`."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.tickets = db[TICKETS]
        self.messages = db[MESSAGES]

    async def insert(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """Store a new ticket and its description as the first (public) message."""
        result = await self.tickets.insert_one(ticket)
        ticket["_id"] = result.inserted_id
        first = new_message(ticket["_id"], ticket["created_by"], ticket["description"], False)
        first["created_at"] = ticket["created_at"]
        return await self.add_message(ticket, first) or ticket

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        """The ticket matching a query (id plus the caller's scope), or None."""
        return await self.tickets.find_one(query)

    async def find(self, query: dict[str, Any], offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of tickets, newest first, and the total."""
        total = await self.tickets.count_documents(query)
        cursor = self.tickets.find(query).sort([("created_at", -1), ("_id", -1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total

    async def update(self, query: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply operator changes to the ticket matching the query."""
        return await self.tickets.find_one_and_update(
            query, {"$set": {**changes, "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER
        )

    async def add_message(self, ticket: dict[str, Any], message: dict[str, Any]) -> dict[str, Any] | None:
        """Count a message on its ticket unless the ticket is closed, then store it; None when closed."""
        counters = {"message_count": 1} if message["internal"] else {"message_count": 1, "public_message_count": 1}
        times = {"last_message_at": message["created_at"]}
        if not message["internal"]:
            times["last_public_message_at"] = message["created_at"]
        updated = await self.tickets.find_one_and_update(
            {"_id": ticket["_id"], "status": {"$ne": TicketStatus.CLOSED}},
            {"$inc": counters, "$set": times},
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            result = await self.messages.insert_one(message)
            message["_id"] = result.inserted_id
        return updated

    async def find_messages(
        self, ticket_id: ObjectId, with_internal: bool, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a ticket's messages, oldest first; internal notes only when asked for."""
        query: dict[str, Any] = {"ticket_id": ticket_id, **({} if with_internal else {"internal": False})}
        total = await self.messages.count_documents(query)
        cursor = self.messages.find(query).sort([("created_at", 1), ("_id", 1)]).skip(offset).limit(limit)
        return await cursor.to_list(), total


def show_ticket(doc: dict[str, Any], operator: bool) -> dict[str, Any]:
    """A ticket as the API shows it to an operator, or to its client (public messages only)."""
    shown = dict(doc)
    if not operator:
        shown["message_count"] = doc.get("public_message_count", 0)
        shown["last_message_at"] = doc.get("last_public_message_at", doc["created_at"])
    return TICKET_OUT.dump(shown)


def show_message(doc: dict[str, Any]) -> dict[str, Any]:
    """A ticket message as the API shows it."""
    return MESSAGE_OUT.dump(doc)


TICKET_OUT = SupportTicketOut()
MESSAGE_OUT = SupportMessageOut()
