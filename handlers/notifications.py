"""Notifications: the caller's own, newest first; marking them read."""

from __future__ import annotations

from dispatch.core.errors import NotFound
from dispatch.core.policy import authenticated
from handlers.base import BaseHandler, query_of
from models.common import parse_id
from models.notifications import NotificationFilters, show, show_many


class NotificationsHandler(BaseHandler):
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
        docs, total = await self.services.notifications.find(self.user_id, unread_only, page.offset, page.limit)
        envelope = page.envelope(show_many(docs), total)
        envelope["unread"] = total if unread_only else await self.services.notifications.count_unread(self.user_id)
        self.write_json(envelope)


class NotificationReadHandler(BaseHandler):
    @authenticated
    async def post(self, notification_id: str) -> None:
        """Mark one of the caller's notifications read.
        ---
        operationId: markNotificationRead
        tags: [notifications]
        responses:
          200:
            description: The notification, now read.
            content:
              application/json: {schema: NotificationOut}
        """
        doc = await self.services.notifications.mark_read(self.user_id, parse_id(notification_id))
        if doc is None:
            raise NotFound("No such notification.")
        self.write_json(show(doc))


class NotificationsReadAllHandler(BaseHandler):
    @authenticated
    async def post(self) -> None:
        """Mark every notification of the caller read.
        ---
        operationId: markAllNotificationsRead
        tags: [notifications]
        responses:
          200:
            description: How many were marked.
            content:
              application/json: {schema: NotificationsMarked}
        """
        self.write_json({"marked": await self.services.notifications.mark_all_read(self.user_id)})


default_handlers = [
    (r"/notifications", NotificationsHandler),
    (r"/notifications/read-all", NotificationsReadAllHandler),
    (r"/notifications/(?P<notification_id>[^/]+)/read", NotificationReadHandler),
]
