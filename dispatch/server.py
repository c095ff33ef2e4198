"""Running the server: bind, fork, then per process settings → services → app → server until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

import tornado.httpserver
import tornado.netutil
import tornado.process

from dispatch.app import make_app
from dispatch.core.storage import ensure_indexes
from dispatch.services import Services
from dispatch.settings import Settings

log = logging.getLogger("dispatch.server")
# Shutdown deadlines, seconds: sockets, then HTTP requests; then Ingest.close (FLUSH_TIMEOUT, 4 s) and the
# hub's follow-up work (1 s) — about 8 s in all, inside the 10 s a supervisor usually grants after SIGTERM.
SOCKETS_GRACE = 1.5
HTTP_GRACE = 1.5


def serve(settings: Settings) -> None:
    """Bind the port, fork `processes` children if asked, and serve in each until SIGTERM/SIGINT."""
    sockets = tornado.netutil.bind_sockets(settings.port, settings.bind, family=socket.AF_INET)
    if settings.processes != 1:
        _forward_stop_signals()
        tornado.process.fork_processes(settings.processes or None, max_restarts=100)
    asyncio.run(_serve(settings, sockets))


def _forward_stop_signals() -> None:
    """Let the parent of forked servers pass SIGTERM/SIGINT on to its children, which share its
    process group (a supervisor such as Docker signals the parent alone), so each shuts down
    gracefully and the parent exits once they have."""
    forwarded = False

    def forward(signum: int, frame: object) -> None:
        nonlocal forwarded
        if tornado.process.task_id() is not None:
            raise SystemExit(0)  # a child stopped before its own handler is installed: do not restart it
        if not forwarded:  # the parent receives its own forwarded signal too
            forwarded = True
            os.killpg(os.getpgrp(), signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)


async def _serve(settings: Settings, sockets: list[socket.socket]) -> None:
    services = Services.open(settings)
    await ensure_indexes(services.db)
    services.start_sweeps()
    app = make_app(services)
    server = tornado.httpserver.HTTPServer(
        app,
        xheaders=False,
        max_body_size=settings.max_body_bytes,
        idle_connection_timeout=settings.idle_timeout,
        body_timeout=settings.idle_timeout,
    )
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("dispatch serving on http://%s:%d (pid %d)", settings.bind, settings.port, os.getpid())
    await stop.wait()
    await _shut_down(server, services)


async def _shut_down(server: tornado.httpserver.HTTPServer, services: Services) -> None:
    """Stop accepting, close every websocket with 1001 and the HTTP connections, flush GPS history.

    Each step has its own deadline so the whole ends within about 8 s (clients of a closed
    socket reconnect elsewhere and resend what was not acked).
    """
    log.info("shutting down")
    server.stop()
    closed = await services.hub.close_sockets(1001, "going away", timeout=SOCKETS_GRACE)
    try:
        await asyncio.wait_for(server.close_all_connections(), HTTP_GRACE)
    except TimeoutError:
        log.warning("shutdown: HTTP connections still open after %.0f s", HTTP_GRACE)
    await services.close()
    log.info("shut down (%d websockets closed with 1001)", closed)
