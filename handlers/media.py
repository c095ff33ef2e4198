"""Uploaded media: the avatar files the worker made (nothing else under DISPATCH_MEDIA_DIR is served)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from dispatch.core import jsonutil
from dispatch.core.errors import default_code
from dispatch.core.policy import public
from dispatch.domain.avatars import AVATARS_DIR
from dispatch.services import Services

# Avatar names are random and never reused, so a file may be cached for good.
CACHE_SECONDS = 365 * 24 * 3600


class AvatarFileHandler(tornado.web.StaticFileHandler):
    """Serves `DISPATCH_MEDIA_DIR/avatars/` only; the incoming uploads stay private."""

    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @property
    def services(self) -> Services:
        """The process's services (dispatch.services)."""
        services: Services = self.settings["services"]
        return services

    def initialize(self) -> None:  # type: ignore[override]
        super().initialize(path=str(Path(self.services.settings.media_dir) / AVATARS_DIR))

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    @public
    async def get(self, name: str, include_body: bool = True) -> None:
        """An avatar image.
        ---
        operationId: getAvatarFile
        tags: [users]
        responses:
          200:
            description: The image (cacheable for a year; names are never reused).
            content:
              image/jpeg: {schema: {type: string, format: binary}}
              image/png: {schema: {type: string, format: binary}}
          404: {$ref: '#/components/responses/404'}
        """
        await super().get(name, include_body)

    @public
    async def head(self, name: str) -> None:
        await self.get(name, include_body=False)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return CACHE_SECONDS

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", f"public, max-age={CACHE_SECONDS}, immutable")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # The JSON error envelope, like every other answer of the app (never an HTML page).
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if status_code == 405:  # RFC 9110: a 405 names the methods the resource has
            self.set_header("Allow", "GET, HEAD")
        message = "No such avatar." if status_code == 404 else "The file cannot be served."
        self.finish(jsonutil.dumps({"error": {"code": default_code(status_code), "message": message, "details": {}}}))


default_handlers = [
    (r"/media/avatars/(?P<name>[A-Za-z0-9]+\.[a-z]+)", AvatarFileHandler),
]
