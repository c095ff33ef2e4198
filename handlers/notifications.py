"""Notifications: the caller's own, newest first; marking them read."""

from __future__ import annotations

from dispatch.core.errors import NotFound
from dispatch.core.policy import authenticated
from handlers.base import BaseHandler
from handlers.vehicles import query_of
from models.common import parse_id
from models.notifications import NotificationFilters, Notifications, show, show_many


class NotificationBase(BaseHandler):
    @property
    def store(self) -> Notifications:
        """The notifications collection."""
        return Notifications(self.db)


class NotificationsHandler(NotificationBase):
    @authenticated
    async def get(self) -> None:
        """The caller's notifications, newest first, with the count of unread ones.
        ---
        tags: [notifications]
        parameters:
          - {in: query, schema: NotificationFilters}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Notifications.
            content:
              application/json: {schema: NotificationList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        unread_only = self.load(NotificationFilters(), query_of(self)).get("unread", False)
        docs, total = await self.store.find(self.user_id, unread_only, page.offset, page.limit)
        envelope = page.envelope(show_many(docs), total)
        envelope["unread"] = total if unread_only else await self.store.count_unread(self.user_id)
        self.write_json(envelope)


class NotificationReadHandler(NotificationBase):
    @authenticated
    async def post(self, notification_id: str) -> None:
        """Mark one of the caller's notifications read.
        ---
        tags: [notifications]
        responses:
          200:
            description: The notification, now read.
            content:
              application/json: {schema: NotificationOut}
        """
        doc = await self.store.mark_read(self.user_id, parse_id(notification_id))
        if doc is None:
            raise NotFound("No such notification.")
        self.write_json(show(doc))


class NotificationsReadAllHandler(NotificationBase):
    @authenticated
    async def post(self) -> None:
        """Mark every notification of the caller read.
        ---
        tags: [notifications]
        responses:
          200:
            description: How many were marked.
            content:
              application/json: {schema: NotificationsMarked}
        """
        self.write_json({"marked": await self.store.mark_all_read(self.user_id)})


default_handlers = [
    (r"/notifications", NotificationsHandler),
    (r"/notifications/read-all", NotificationsReadAllHandler),
    (r"/notifications/(?P<notification_id>[^/]+)/read", NotificationReadHandler),
]
