"""Support tickets: who sees which ticket, who operates it, and who may read internal notes.

Clients and drivers see their own tickets and only the public messages on them. Operators are
the managers of a ticket's organization (its order's, else its creator's first) and admins; they
assign, change the status and post internal notes.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dispatch.core.pagination import Page
from dispatch.domain import scopes
from dispatch.domain.scopes import Resource, orgs_of
from models.orders import Orders
from models.support import SupportTickets, new_message, new_ticket
from models.users import Users


def is_operator(user: dict[str, Any], ticket: dict[str, Any]) -> bool:
    """Whether the user operates this ticket (and so may see and write internal notes)."""
    return scopes.admits(Resource.TICKETS_OPERATE, user, ticket)


class SupportDesk:
    """Tickets and messages on behalf of a caller."""

    def __init__(self, db: AsyncDatabase[Any], users: Users) -> None:
        self.users = users
        self.orders = Orders(db)
        self.store = SupportTickets(db)

    async def open(self, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new ticket; its organization is its order's, else the creator's first one."""
        organization = next(iter(orgs_of(user)), None)
        if data.get("order_id") is not None:
            order = await self.orders.get(data["order_id"], scopes.query(Resource.ORDERS, user))
            if order is None:
                raise ValidationFailed({"order_id": ["No such order of yours."]})
            organization = order.get("organization") or organization
        return await self.store.insert(new_ticket(data, user["_id"], organization))

    async def page(self, user: dict[str, Any], filters: dict[str, Any], page: Page) -> tuple[list[dict[str, Any]], int]:
        """A page of the tickets the caller may read, with optional filters."""
        scope = scopes.query(Resource.TICKETS, user)
        query = {"$and": [filters, scope]} if filters and scope else filters or scope
        return await self.store.find(query, page.offset, page.limit)

    async def get(self, user: dict[str, Any], ticket_id: ObjectId) -> dict[str, Any]:
        """One ticket the caller may read; 404 otherwise."""
        ticket = await self.store.find_one({"_id": ticket_id, **scopes.query(Resource.TICKETS, user)})
        if ticket is None:
            raise NotFound("No such ticket.")
        return ticket

    async def operate(self, user: dict[str, Any], ticket_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any]:
        """An operator's change of assignee and/or status."""
        ticket = await self.get(user, ticket_id)
        if not is_operator(user, ticket):
            raise ApiError(403, "forbidden", "Only the ticket's operators may change it.")
        if not changes:
            raise ValidationFailed({"_schema": ["Nothing to change."]})
        if changes.get("assignee_id") is not None:
            await self._check_assignee(changes["assignee_id"], ticket)
        updated = await self.store.update({"_id": ticket_id}, changes)
        if updated is None:
            raise NotFound("No such ticket.")
        return updated

    async def _check_assignee(self, assignee_id: ObjectId, ticket: dict[str, Any]) -> None:
        """An assignee is an active admin, or an active manager of the ticket's organization."""
        assignee = await self.users.get(assignee_id)
        if assignee is None or not assignee.get("is_active") or not is_operator(assignee, ticket):
            raise ValidationFailed({"assignee_id": ["Assign a manager of the ticket's organization or an admin."]})

    async def messages(self, user: dict[str, Any], ticket_id: ObjectId, page: Page) -> tuple[list[dict[str, Any]], int]:
        """A page of a ticket's messages; internal notes only for its operators."""
        ticket = await self.get(user, ticket_id)
        return await self.store.find_messages(ticket_id, is_operator(user, ticket), page.offset, page.limit)

    async def post(self, user: dict[str, Any], ticket_id: ObjectId, data: dict[str, Any]) -> dict[str, Any]:
        """Add a message; only operators may post internal notes; a closed ticket takes none."""
        ticket = await self.get(user, ticket_id)
        if data["internal"] and not is_operator(user, ticket):
            raise ApiError(403, "internal_notes_forbidden", "Only the ticket's operators may post internal notes.")
        message = new_message(ticket_id, user["_id"], data["body"], data["internal"])
        if await self.store.add_message(ticket, message) is None:
            raise Conflict("This ticket is closed; open a new one.", "ticket_closed")
        return message
