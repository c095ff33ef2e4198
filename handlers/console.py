"""The manager console: one static page whose scripts talk to the REST API and `/ws/console`."""

from __future__ import annotations

from pathlib import Path

from dispatch.core.policy import public
from handlers.base import BaseHandler

PAGE = Path(__file__).resolve().parent.parent / "dispatch" / "static" / "console" / "index.html"
# Scripts and styles only from this origin (no inline code at all); websockets to this host.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
# Read once at start-up: the page is a static file shipped with the package, never edited at run time.
PAGE_HTML = PAGE.read_bytes()


class ConsoleHandler(BaseHandler):
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
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CONSOLE_CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-cache")
        self.finish(PAGE_HTML)


default_handlers = [
    (r"/console", ConsoleHandler),
]
