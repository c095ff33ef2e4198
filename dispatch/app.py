"""The application factory used by the CLI and the tests alike."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import tornado.web

import handlers
from dispatch.core import jsonutil, metrics
from dispatch.core.policy import check_handlers
from dispatch.core.requestid import RequestIdTransform, request_id
from dispatch.openapi import build_spec
from dispatch.services import Services
from handlers.assets import AssetHandler
from handlers.base import NotFoundHandler
from models import auth as _auth_schemas  # noqa: F401  (schemas resolved by name in docstrings)
from models.common import SCHEMAS

access_log = logging.getLogger("dispatch.access")
STATIC_DIR = Path(__file__).parent / "static"
SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|access_token|refresh_token|code|password)=)[^&]*", re.I)
# Tracking links carry their token in the path: `/t/<token>`, `/api/v1/track/<token>`, `/ws/track/<token>`.
SECRET_PATH = re.compile(r"^((?:/api/v1|/ws)?/t(?:rack)?/)[^/?]+")


def make_app(services: Services) -> tornado.web.Application:
    """Build the Tornado application on the process's services (see `dispatch.services`)."""
    routes = handlers.all_routes()
    check_handlers(handler for _, handler in routes)
    for pattern, handler in routes:
        handler.route = pattern  # type: ignore[attr-defined]  # the metrics label, on any handler class
    spec = build_spec(routes, SCHEMAS, services.settings.public_url)
    url_specs: list[Any] = [tornado.web.url(pattern, handler) for pattern, handler in routes]
    url_specs.append((r"/static/(.*)", AssetHandler, {"path": str(STATIC_DIR)}))
    return tornado.web.Application(
        url_specs,
        transforms=[RequestIdTransform],
        default_handler_class=NotFoundHandler,
        services=services,
        openapi=spec,
        openapi_json=jsonutil.dumps(spec),
        log_function=log_request,
        websocket_ping_interval=20,
        websocket_ping_timeout=20,
        websocket_max_message_size=64 * 1024,
        compress_response=False,
    )


def redact(uri: str) -> str:
    """The request URI with secrets in its query string (and a tracking token in its path) replaced by `***`."""
    return SECRET_QUERY.sub(r"\1***", SECRET_PATH.sub(r"\1***", uri))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log line and metrics for every answered request."""
    status = handler.get_status()
    seconds = handler.request.request_time()
    route = getattr(handler, "route", "") or (
        "static" if isinstance(handler, tornado.web.StaticFileHandler) else "unmatched"
    )
    metrics.observe_request(handler.request.method or "", route, status, seconds)
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(
        level,
        "%d %s %s %.1fms id=%s ip=%s",
        status,
        handler.request.method,
        redact(handler.request.uri or ""),
        seconds * 1000,
        request_id(handler.request),
        handler.request.remote_ip,
    )
