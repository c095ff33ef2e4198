"""Running the server: bind, fork, open the stores on each process's loop, serve until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import tornado.httpserver
import tornado.netutil
import tornado.process

from dispatch.app import close_app, make_app
from dispatch.settings import Settings
from dispatch.storage import ensure_indexes, open_stores

log = logging.getLogger("dispatch.server")
SHUTDOWN_GRACE = 8.0


def serve(settings: Settings) -> None:
    """Bind the port, fork `processes` children if asked, and serve in each until SIGTERM/SIGINT."""
    sockets = tornado.netutil.bind_sockets(settings.port, settings.bind, family=socket.AF_INET)
    if settings.processes != 1:
        tornado.process.fork_processes(settings.processes or None, max_restarts=100)
    asyncio.run(_serve(settings, sockets))


async def _serve(settings: Settings, sockets: list[socket.socket]) -> None:
    stores = open_stores(settings)
    await ensure_indexes(stores.mongo[settings.mongodb_db])
    app = make_app(settings, mongo=stores.mongo, redis=stores.redis, cache=stores.cache)
    server = tornado.httpserver.HTTPServer(app, xheaders=False,
                                          max_body_size=settings.max_body_bytes, idle_connection_timeout=60,
                                          body_timeout=60)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("dispatch serving on http://%s:%d (pid %d)", settings.bind, settings.port, _pid())
    await stop.wait()
    log.info("shutting down")
    server.stop()
    await asyncio.wait_for(server.close_all_connections(), SHUTDOWN_GRACE)
    await close_app(app)
    await stores.close()


def _pid() -> int:
    import os

    return os.getpid()
