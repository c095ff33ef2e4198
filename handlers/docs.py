"""API documentation: the OpenAPI document and the offline Swagger UI and ReDoc pages."""

from __future__ import annotations

import yaml

from dispatch.core import jsonutil
from dispatch.core.policy import public
from handlers.base import BaseHandler

DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dispatch API — Swagger UI</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
<link rel="icon" href="/static/vendor/swagger-ui/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs/swagger-init.js"></script></body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dispatch API — ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/api/openapi.json"></redoc>
<script src="/static/vendor/redoc/redoc.standalone.js"></script></body></html>
"""


class OpenApiJsonHandler(BaseHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @public
    def get(self) -> None:
        """The OpenAPI 3 document as JSON.
        ---
        operationId: getOpenApiJson
        tags: [docs]
        responses:
          200:
            description: The OpenAPI document.
            content:
              application/json: {schema: {type: object}}
        """
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.settings["openapi_json"])


class OpenApiYamlHandler(BaseHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @public
    def get(self) -> None:
        """The OpenAPI 3 document as YAML.
        ---
        operationId: getOpenApiYaml
        tags: [docs]
        responses:
          200:
            description: The OpenAPI document.
            content:
              application/yaml: {schema: {type: object}}
        """
        self.set_header("Content-Type", "application/yaml; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(yaml.safe_dump(jsonutil.loads(self.settings["openapi_json"]), sort_keys=False))


class _PageHandler(BaseHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    page_html = ""

    def _page(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", DOCS_CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.page_html)


class SwaggerHandler(_PageHandler):
    page_html = SWAGGER_PAGE

    @public
    def get(self) -> None:
        """Swagger UI for the API (works offline).
        ---
        operationId: getSwaggerUi
        tags: [docs]
        responses:
          200:
            description: An HTML page.
            content:
              text/html: {schema: {type: string}}
        """
        self._page()


class RedocHandler(_PageHandler):
    page_html = REDOC_PAGE

    @public
    def get(self) -> None:
        """ReDoc for the API (works offline).
        ---
        operationId: getRedoc
        tags: [docs]
        responses:
          200:
            description: An HTML page.
            content:
              text/html: {schema: {type: string}}
        """
        self._page()


default_handlers = [
    (r"/api/openapi\.json", OpenApiJsonHandler),
    (r"/api/openapi\.yaml", OpenApiYamlHandler),
    (r"/docs", SwaggerHandler),
    (r"/redoc", RedocHandler),
]
