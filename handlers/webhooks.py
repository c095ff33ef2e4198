"""Webhooks: an organization's endpoints for event deliveries, their delivery log, tests and redelivery.

MANAGERs and API keys with the `webhooks` scope manage their organizations' webhooks, ADMINs every
one; other callers get 403, and a webhook outside the caller's organizations is 404. The rules live
in dispatch/domain/webhooks.py.
"""

from __future__ import annotations

from dispatch.core.policy import roles
from dispatch.core.vocabulary import Category, KeyScope
from handlers.base import BaseHandler, documented
from models.common import parse_id
from models.webhooks import DeliveryOut, WebhookCreated, WebhookIn, WebhookOut, WebhookPatch, callbacks

WEBHOOK_OUT = WebhookOut()
WEBHOOK_CREATED = WebhookCreated()
DELIVERY_OUT = DeliveryOut()
STAFF = (Category.MANAGER, Category.ADMIN)


class WebhooksHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def get(self) -> None:
        """List the webhooks the caller manages (MANAGER: their organizations'; ADMIN: all), newest first.
        ---
        tags: [webhooks]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of webhooks (never their secrets).
            content:
              application/json: {schema: WebhookList}
        """
        page = self.page()
        docs, total = await self.services.webhooks.page(self.current_user, page)
        self.write_json(page.envelope(WEBHOOK_OUT.dump(docs, many=True), total))

    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    @documented(callbacks=callbacks())
    async def post(self) -> None:
        """Create a webhook: events of the organization are POSTed to its URL, signed with its secret.
        ---
        tags: [webhooks]
        description: |
          `secret` is in this answer only: keep it to check each delivery's `X-Dispatch-Signature`
          (`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`). Each event is recorded
          before any attempt and retried with exponential backoff until a 2xx answer; the deliveries of
          one order reach the URL in the order its events happened. The URL must be http(s); loopback
          and private addresses are refused unless the server allows them. The payload of each event
          type is documented under `callbacks`.
        requestBody:
          required: true
          content:
            application/json: {schema: WebhookIn}
        responses:
          201:
            description: The new webhook with its signing secret.
            content:
              application/json: {schema: WebhookCreated}
          409: {$ref: '#/components/responses/409'}
          422: {$ref: '#/components/responses/422'}
        """
        doc = await self.services.webhooks.create(self.current_user, self.load(WebhookIn()))
        self.write_json(WEBHOOK_CREATED.dump(doc), 201)


class WebhookHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def get(self, webhook_id: str) -> None:
        """One webhook (without its secret).
        ---
        tags: [webhooks]
        responses:
          200:
            description: The webhook.
            content:
              application/json: {schema: WebhookOut}
        """
        self.write_json(WEBHOOK_OUT.dump(await self.services.webhooks.get(self.current_user, parse_id(webhook_id))))

    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def patch(self, webhook_id: str) -> None:
        """Change a webhook's URL, events, description or `active` (re-activating clears its failure count).
        ---
        tags: [webhooks]
        requestBody:
          required: true
          content:
            application/json: {schema: WebhookPatch}
        responses:
          200:
            description: The updated webhook.
            content:
              application/json: {schema: WebhookOut}
          422: {$ref: '#/components/responses/422'}
        """
        changes = self.load(WebhookPatch())
        doc = await self.services.webhooks.update(self.current_user, parse_id(webhook_id), changes)
        self.write_json(WEBHOOK_OUT.dump(doc))

    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def delete(self, webhook_id: str) -> None:
        """Delete a webhook and its delivery log; nothing more is sent to it.
        ---
        tags: [webhooks]
        responses:
          204: {description: Deleted.}
        """
        await self.services.webhooks.delete(self.current_user, parse_id(webhook_id))
        self.set_status(204)
        self.finish()


class WebhookTestHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def post(self, webhook_id: str) -> None:
        """Send a `ping` event to the webhook's URL (an inactive webhook: 409).
        ---
        operationId: testWebhook
        tags: [webhooks]
        responses:
          202:
            description: The ping's delivery, queued; follow it in the delivery log.
            content:
              application/json: {schema: DeliveryOut}
          409: {$ref: '#/components/responses/409'}
        """
        delivery = await self.services.webhooks.test(self.current_user, parse_id(webhook_id))
        self.write_json(DELIVERY_OUT.dump(delivery), 202)


class WebhookDeliveriesHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def get(self, webhook_id: str) -> None:
        """A webhook's delivery log, newest first: each event sent, its status, attempts and last answer.
        ---
        tags: [webhooks]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of deliveries.
            content:
              application/json: {schema: DeliveryList}
        """
        page = self.page()
        docs, total = await self.services.webhooks.deliveries(self.current_user, parse_id(webhook_id), page)
        self.write_json(page.envelope(DELIVERY_OUT.dump(docs, many=True), total))


class WebhookRedeliverHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.WEBHOOKS)
    async def post(self, webhook_id: str, delivery_id: str) -> None:
        """Send a delivery's event again: the same body and event `id`, a new delivery (an inactive webhook: 409).
        ---
        operationId: redeliverWebhookDelivery
        tags: [webhooks]
        responses:
          202:
            description: The new delivery, queued.
            content:
              application/json: {schema: DeliveryOut}
          409: {$ref: '#/components/responses/409'}
        """
        delivery = await self.services.webhooks.redeliver(
            self.current_user, parse_id(webhook_id), parse_id(delivery_id)
        )
        self.write_json(DELIVERY_OUT.dump(delivery), 202)


default_handlers = [
    (r"/webhooks", WebhooksHandler),
    (r"/webhooks/(?P<webhook_id>[^/]+)", WebhookHandler),
    (r"/webhooks/(?P<webhook_id>[^/]+)/test", WebhookTestHandler),
    (r"/webhooks/(?P<webhook_id>[^/]+)/deliveries", WebhookDeliveriesHandler),
    (r"/webhooks/(?P<webhook_id>[^/]+)/deliveries/(?P<delivery_id>[^/]+)/redeliver", WebhookRedeliverHandler),
]
