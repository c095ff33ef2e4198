"""API keys: an organization's managers (and ADMINs) create, list and revoke its integrations' keys."""

from __future__ import annotations

from dispatch.core.policy import roles
from dispatch.core.vocabulary import Category
from handlers.base import BaseHandler
from models.api_keys import ApiKeyCreated, ApiKeyIn, ApiKeyOut
from models.common import parse_id

KEY_OUT = ApiKeyOut()
CREATED_OUT = ApiKeyCreated()


class ApiKeysHandler(BaseHandler):
    @roles(Category.MANAGER, Category.ADMIN)
    async def get(self, org_id: str) -> None:
        """The organization's API keys (ADMIN: any organization; MANAGER: their own), never the keys themselves.
        ---
        tags: [organizations]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Unrevoked keys, newest first, each with its `prefix` (first 8 characters) and `last_used_at`.
            content:
              application/json: {schema: ApiKeyList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        docs, total = await self.services.api_keys.page(self.current_user, parse_id(org_id), page)
        self.write_json(page.envelope(KEY_OUT.dump(docs, many=True), total))

    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self, org_id: str) -> None:
        """Create an API key for the organization; the answer shows the key, once and never again.
        ---
        tags: [organizations]
        description: |
          The key acts for this organization only, within its `scopes`: send it as the `X-API-Key` header.
          `orders:read` — list and read the organization's orders, their timelines and tracking;
          `orders:write` — create orders (`source: "api"`, with `external_ref` and `customer`) and cancel them;
          `fleet:read` — vehicles, live positions, nearby search, route replay, vehicle types;
          `webhooks` — manage the organization's webhooks. Only a hash of the key is stored: a lost key
          cannot be shown again; revoke it and create another.
        requestBody:
          required: true
          content:
            application/json: {schema: ApiKeyIn}
        responses:
          201:
            description: The new key, with `key` shown only in this answer.
            content:
              application/json: {schema: ApiKeyCreated}
          422: {$ref: '#/components/responses/422'}
        """
        org = await self.services.api_keys.organization(self.current_user, parse_id(org_id))  # 404 before 422
        created = await self.services.api_keys.create(self.current_user, org, self.load(ApiKeyIn()))
        self.write_json(CREATED_OUT.dump(created), 201)


class ApiKeyHandler(BaseHandler):
    @roles(Category.MANAGER, Category.ADMIN)
    async def delete(self, org_id: str, key_id: str) -> None:
        """Revoke an API key: every request made with it is refused (401) from now on.
        ---
        tags: [organizations]
        responses:
          204: {description: The key is revoked.}
        """
        await self.services.api_keys.revoke(self.current_user, parse_id(org_id), parse_id(key_id))
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


default_handlers = [
    (r"/organizations/(?P<org_id>[^/]+)/api-keys", ApiKeysHandler),
    (r"/organizations/(?P<org_id>[^/]+)/api-keys/(?P<key_id>[^/]+)", ApiKeyHandler),
]
