"""The app's own static files (`/static/...`: documentation and console assets), with the app's headers."""

from __future__ import annotations

from typing import Any

import tornado.web

from dispatch.core import jsonutil
from dispatch.core.errors import default_code, default_message


class AssetHandler(tornado.web.StaticFileHandler):
    """Tornado's static files, but `nosniff` on every answer and JSON errors (never an HTML page)."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            jsonutil.dumps(
                {"error": {"code": default_code(status_code), "message": default_message(status_code), "details": {}}}
            )
        )
