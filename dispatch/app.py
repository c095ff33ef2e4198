"""The application factory used by the CLI and the tests alike."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import tornado.web
from pymongo import AsyncMongoClient

import handlers
from dispatch.core import jsonutil, metrics
from dispatch.domain import notifications
from dispatch.core.events import EventBus
from dispatch.domain.identity import Identity
from dispatch.openapi import build_spec
from dispatch.domain.orders import status_mover
from dispatch.core.policy import check_handlers
from dispatch.domain.queue import TaskQueue
from dispatch.realtime.hub import Hub
from dispatch.realtime.ingest import Ingest
from dispatch.core.requestid import RequestIdTransform, request_id
from dispatch.settings import Settings
from handlers.assets import AssetHandler
from handlers.base import NotFoundHandler
from models import auth as _auth_schemas  # noqa: F401  (schemas resolved by name in docstrings)
from models.common import SCHEMAS

access_log = logging.getLogger("dispatch.access")
STATIC_DIR = Path(__file__).parent / "static"
SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|access_token|refresh_token|code|password)=)[^&]*", re.I)


def make_app(settings: Settings, *, mongo: AsyncMongoClient, redis: aioredis.Redis,
             cache: aioredis.Redis | None = None, **extra: Any) -> tornado.web.Application:
    """Build the Tornado application on already-created storage clients."""
    routes = handlers.all_routes()
    check_handlers(handler for _, handler in routes)
    for pattern, handler in routes:
        handler.route = pattern  # the metrics label
    spec = build_spec(routes, SCHEMAS)
    tasks = extra.pop("tasks", None) or TaskQueue(settings)
    db = mongo[settings.mongodb_db]
    cache = cache if cache is not None else redis
    hub = Hub(redis)
    identity = Identity(settings, db, redis, cache, tasks)
    events = extra.pop("events", None) or EventBus()
    events.listen(notifications.listener(db, events))
    events.listen(hub.publish_event)
    url_specs: list[Any] = [tornado.web.url(pattern, handler) for pattern, handler in routes]
    url_specs.append((r"/static/(.*)", AssetHandler, {"path": str(STATIC_DIR)}))
    return tornado.web.Application(
        url_specs,
        transforms=[RequestIdTransform],
        default_handler_class=NotFoundHandler,
        config=settings,
        db=db,
        mongo=mongo,
        redis=redis,
        cache=cache,
        tasks=tasks,
        identity=identity,
        order_status_mover=status_mover(db, redis, events, identity.users),
        events=events,
        hub=hub,
        ingest=Ingest(db, redis, hub),
        openapi=spec,
        openapi_json=jsonutil.dumps(spec),
        log_function=log_request,
        websocket_ping_interval=20,
        websocket_ping_timeout=20,
        websocket_max_message_size=64 * 1024,
        compress_response=False,
        **extra,
    )


async def close_app(app: tornado.web.Application) -> None:
    """Release what the application holds: flush GPS, stop the fan-out reader, close the task queue."""
    await app.settings["ingest"].close()
    await app.settings["hub"].close()
    app.settings["tasks"].close()


def redact(uri: str) -> str:
    """The request URI with secrets in its query string replaced by `***`."""
    return SECRET_QUERY.sub(r"\1***", uri)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log line and metrics for every answered request."""
    status = handler.get_status()
    seconds = handler.request.request_time()
    route = getattr(handler, "route", "") or ("static" if isinstance(handler, tornado.web.StaticFileHandler)
                                              else "unmatched")
    metrics.observe_request(handler.request.method or "", route, status, seconds)
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s %.1fms id=%s ip=%s", status, handler.request.method,
                   redact(handler.request.uri or ""), seconds * 1000,
                   request_id(handler.request), handler.request.remote_ip)
