"""Support tickets: clients' and drivers' own tickets, operated by their organization's managers."""

from __future__ import annotations

from dispatch.core.policy import authenticated, roles
from dispatch.core.vocabulary import Category
from dispatch.domain.support import is_operator
from handlers.base import BaseHandler, query_of
from models.common import parse_id
from models.support import (
    SupportMessageIn,
    SupportTicketFilters,
    SupportTicketIn,
    SupportTicketPatch,
    show_message,
    show_ticket,
)


class TicketsHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """Tickets the caller may read: own ones; a manager's organizations' too; all for an admin.
        ---
        tags: [support]
        parameters:
          - {in: query, schema: SupportTicketFilters}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Tickets, newest first.
            content:
              application/json: {schema: SupportTicketList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        filters = self.load(SupportTicketFilters(), query_of(self))
        docs, total = await self.services.support.page(self.current_user, filters, page)
        items = [show_ticket(doc, is_operator(self.current_user, doc)) for doc in docs]
        self.write_json(page.envelope(items, total))

    @authenticated
    async def post(self) -> None:
        """Open a ticket; its description becomes the first message.
        ---
        tags: [support]
        requestBody:
          required: true
          content:
            application/json: {schema: SupportTicketIn}
        responses:
          201:
            description: The new ticket, status `open`.
            content:
              application/json: {schema: SupportTicketOut}
        """
        ticket = await self.services.support.open(self.current_user, self.load(SupportTicketIn()))
        self.write_json(show_ticket(ticket, is_operator(self.current_user, ticket)), 201)


class TicketHandler(BaseHandler):
    @authenticated
    async def get(self, ticket_id: str) -> None:
        """One ticket the caller may read.
        ---
        tags: [support]
        responses:
          200:
            description: The ticket.
            content:
              application/json: {schema: SupportTicketOut}
        """
        ticket = await self.services.support.get(self.current_user, parse_id(ticket_id))
        self.write_json(show_ticket(ticket, is_operator(self.current_user, ticket)))

    @roles(Category.MANAGER, Category.ADMIN)
    async def patch(self, ticket_id: str) -> None:
        """Assign a ticket or change its status (operators: its organization's managers, admins).
        ---
        tags: [support]
        requestBody:
          required: true
          content:
            application/json: {schema: SupportTicketPatch}
        responses:
          200:
            description: The updated ticket.
            content:
              application/json: {schema: SupportTicketOut}
        """
        target = parse_id(ticket_id)
        ticket = await self.services.support.operate(self.current_user, target, self.load(SupportTicketPatch()))
        self.write_json(show_ticket(ticket, True))


class TicketMessagesHandler(BaseHandler):
    @authenticated
    async def get(self, ticket_id: str) -> None:
        """A ticket's messages, oldest first; internal notes only for its operators.
        ---
        tags: [support]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Messages.
            content:
              application/json: {schema: SupportMessageList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        docs, total = await self.services.support.messages(self.current_user, parse_id(ticket_id), page)
        self.write_json(page.envelope([show_message(doc) for doc in docs], total))

    @authenticated
    async def post(self, ticket_id: str) -> None:
        """Post a message on a ticket; `internal: true` (a note clients never see) is for operators only (403).
        ---
        tags: [support]
        requestBody:
          required: true
          content:
            application/json: {schema: SupportMessageIn}
        responses:
          201:
            description: The new message.
            content:
              application/json: {schema: SupportMessageOut}
          403:
            description: "`internal_notes_forbidden`: only the ticket's operators post internal notes."
            content:
              application/json: {schema: Error}
          409:
            description: "`ticket_closed`: a closed ticket takes no more messages."
            content:
              application/json: {schema: Error}
        """
        target = parse_id(ticket_id)
        message = await self.services.support.post(self.current_user, target, self.load(SupportMessageIn()))
        self.write_json(show_message(message), 201)


default_handlers = [
    (r"/support/tickets", TicketsHandler),
    (r"/support/tickets/(?P<ticket_id>[^/]+)", TicketHandler),
    (r"/support/tickets/(?P<ticket_id>[^/]+)/messages", TicketMessagesHandler),
]
