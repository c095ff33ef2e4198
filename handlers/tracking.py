"""Tracking links (SPEC section 11): sharing an order, and the public view a link opens."""

from __future__ import annotations

from dispatch.core.policy import public, roles
from dispatch.core.vocabulary import Category, KeyScope
from handlers.base import BaseHandler
from models.common import parse_id
from models.tracking import ShareOut

SHARE_OUT = ShareOut()


class ShareHandler(BaseHandler):
    @roles(Category.BASE, Category.MANAGER, Category.ADMIN, key=KeyScope.ORDERS_WRITE)
    async def post(self, order_id: str) -> None:
        """Create a tracking link of an order for someone without an account.
        ---
        tags: [tracking]
        operationId: shareOrder
        description: |
          The order's client, its organization's managers, ADMINs and the organization's API key (scope
          `orders:write`) may share it. The token (256 random bits, stored only as its SHA-256) is shown
          in this answer only; `url` opens the tracking page. A link works until 2 h after the order
          ends (`completed` or `cancelled`): while the order is active `expires_at` is null; once it
          ended, the time the link stops. An order that ended more than 2 h ago → 409 `tracking_ended`.
        responses:
          201:
            description: The new link.
            content:
              application/json: {schema: ShareOut}
          409: {$ref: '#/components/responses/409'}
        """
        link = await self.services.tracking.share(self.current_user, parse_id(order_id))
        self.write_json(SHARE_OUT.dump(link), 201)

    @roles(Category.BASE, Category.MANAGER, Category.ADMIN, key=KeyScope.ORDERS_WRITE)
    async def delete(self, order_id: str) -> None:
        """Revoke every tracking link of an order: they answer 404 at once, open tracking sockets close 4403.
        ---
        tags: [tracking]
        operationId: stopSharingOrder
        responses:
          204: {description: Every link of the order stopped working.}
        """
        await self.services.tracking.revoke(self.current_user, parse_id(order_id))
        self.set_status(204)
        self.finish()


class TrackHandler(BaseHandler):
    @public
    async def get(self, token: str) -> None:
        """The public view of a tracked order: status, pickup, drop-off, ETA, the truck and driver's first name.
        ---
        tags: [tracking]
        operationId: getTracking
        description: |
          No account needed: the token is the credential. Only these fields are shown (no phone, email,
          user id, last name or organization). Rate-limited per client address (`track_ip`). Unknown,
          expired or revoked token → 404.
        responses:
          200:
            description: The public view.
            content:
              application/json: {schema: TrackView}
          429: {$ref: '#/components/responses/429'}
        """
        await self.services.tracking.limit(self.client_ip)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.write_json(await self.services.tracking.view(token))


default_handlers = [
    (r"/orders/(?P<order_id>[^/]+)/share", ShareHandler),
    (r"/track/(?P<token>[^/]+)", TrackHandler),
]
