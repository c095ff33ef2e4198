"""Waybills: the driver's daily trip sheet, locked once the driver is back."""

from __future__ import annotations

from dispatch.core.policy import roles
from dispatch.core.vocabulary import Category
from handlers.base import BaseHandler, query_of
from models.common import parse_id
from models.waybills import WaybillFilters, WaybillIn, WaybillPatch, show


class WaybillsHandler(BaseHandler):
    @roles(Category.DRIVER, Category.MANAGER, Category.ADMIN)
    async def get(self) -> None:
        """Waybills the caller may read: a driver's own, a manager's organizations', all for an admin.
        ---
        tags: [waybills]
        parameters:
          - {in: query, schema: WaybillFilters}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Waybills, newest working day first.
            content:
              application/json: {schema: WaybillList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        filters = self.load(WaybillFilters(), query_of(self))
        docs, total = await self.services.waybills.page(self.current_user, filters, page)
        self.write_json(page.envelope([show(doc) for doc in docs], total))

    @roles(Category.DRIVER)
    async def post(self) -> None:
        """Open a new waybill for the vehicle the calling driver drives.
        ---
        tags: [waybills]
        requestBody:
          required: true
          content:
            application/json: {schema: WaybillIn}
        responses:
          201:
            description: The new waybill, status `open`.
            content:
              application/json: {schema: WaybillOut}
        """
        data = self.load(WaybillIn())
        self.write_json(show(await self.services.waybills.create(self.current_user, data)), 201)


class WaybillHandler(BaseHandler):
    @roles(Category.DRIVER, Category.MANAGER, Category.ADMIN)
    async def get(self, waybill_id: str) -> None:
        """One waybill the caller may read.
        ---
        tags: [waybills]
        responses:
          200:
            description: The waybill.
            content:
              application/json: {schema: WaybillOut}
        """
        self.write_json(show(await self.services.waybills.get(self.current_user, parse_id(waybill_id))))

    @roles(Category.DRIVER, Category.ADMIN)
    async def patch(self, waybill_id: str) -> None:
        """Fill in or edit a waybill, or move its status one step (open → on_route → returned).
        ---
        tags: [waybills]
        description: >
          Moving to `on_route` stamps `departed_at`, to `returned` stamps `returned_at` (unless given or
          already set). Any other status change, the current status included, is 409 `invalid_transition`.
          Once returned, every edit by anyone answers 409 `waybill_locked`; managers only read (403).
        requestBody:
          required: true
          content:
            application/json: {schema: WaybillPatch}
        responses:
          200:
            description: The updated waybill.
            content:
              application/json: {schema: WaybillOut}
          409:
            description: "`waybill_locked` (already returned) or `invalid_transition` (not one step forward)."
            content:
              application/json: {schema: Error}
        """
        target = parse_id(waybill_id)
        doc = await self.services.waybills.edit(self.current_user, target, self.load(WaybillPatch()))
        self.write_json(show(doc))


default_handlers = [
    (r"/waybills", WaybillsHandler),
    (r"/waybills/(?P<waybill_id>[^/]+)", WaybillHandler),
]
