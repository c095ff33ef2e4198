"""The manager console: one static page whose scripts talk to the REST API and `/ws/console`."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from dispatch.core.policy import public
from dispatch.settings import Settings
from handlers.base import BaseHandler

PAGE = Path(__file__).resolve().parent.parent / "dispatch" / "static" / "console" / "index.html"
# Scripts and styles only from this origin (no inline code at all); websockets to this host.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
# Read once at start-up: the pages are static files shipped with the package, never edited at run time.
PAGE_HTML = PAGE.read_bytes()
ADMIN_HTML = (PAGE.parent.parent / "admin" / "index.html").read_bytes()


def tile_origin(template: str) -> str:
    """The origin a tile URL template loads from, as a CSP source (`{s}` subdomains become `*.`)."""
    parts = urlsplit(template)
    host = parts.netloc.replace("{s}.", "*.") if parts.netloc.startswith("{s}.") else parts.netloc
    return f"{parts.scheme}://{host}"


def page_csp(settings: Settings) -> str:
    """The pages' policy: CONSOLE_CSP, with `img-src` allowing exactly the map tiles' origin when set."""
    if not settings.map_tile_url:
        return CONSOLE_CSP
    return CONSOLE_CSP.replace("img-src 'self' data:;", f"img-src 'self' data: {tile_origin(settings.map_tile_url)};")


@lru_cache(maxsize=16)
def with_map(page: bytes, tile_url: str, attribution: str) -> bytes:
    """A page whose `<html>` element tells the scripts the map's tiles (data attributes; no inline code)."""
    if not tile_url:
        return page
    marks = f' data-map-tiles="{html.escape(tile_url)}" data-map-attribution="{html.escape(attribution)}"'
    return page.replace(b"<html", b"<html" + marks.encode(), 1)


class PageHandler(BaseHandler):
    """An operators' HTML page under the strict policy, knowing the map's tile settings."""

    def send_page(self, page: bytes) -> None:
        settings = self.services.settings
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", page_csp(settings))
        self.set_header("X-Frame-Options", "DENY")
        self.finish(with_map(page, settings.map_tile_url, settings.map_attribution))


class ConsoleHandler(PageHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @public
    def get(self) -> None:
        """The manager console web page (the live fleet map, orders board and assignment).
        ---
        operationId: getConsolePage
        tags: [console]
        description: The page signs in through `/api/v1/auth/login` and follows `/ws/console`;
          its scripts and styles are under `/static/console/`.
        responses:
          200:
            description: An HTML page.
            content:
              text/html: {schema: {type: string}}
        """
        self.set_header("Cache-Control", "no-cache")
        self.send_page(PAGE_HTML)


class AdminPageHandler(PageHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @public
    def get(self) -> None:
        """The administrators' panel web page (users, organizations, orders, vehicles), ADMIN only.
        ---
        operationId: getAdminPage
        tags: [console]
        description: The page is public, the data is not — it signs in through `/api/v1/auth/login`, refuses
          anyone but an ADMIN, and uses the REST API alone; its scripts are under `/static/admin/` and
          `/static/console/`. The same content security policy as `/console`.
        responses:
          200:
            description: An HTML page.
            content:
              text/html: {schema: {type: string}}
        """
        self.set_header("Cache-Control", "no-cache")
        self.send_page(ADMIN_HTML)


default_handlers = [
    (r"/console", ConsoleHandler),
    (r"/admin", AdminPageHandler),
]
