"""Graceful shutdown of a real `dispatch serve`: SIGTERM stops accepting, closes every websocket
with 1001 (going away), writes the GPS history it still holds, and exits within 10 s."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

import pytest

from tests.support.helpers import api_at
from tests.support.realtime_client import WsClient, fleet, point, ws_url
from tests.support.stack import Stack

GOING_AWAY = 1001


def refused(port: int) -> bool:
    """Whether nothing accepts connections on the port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_closes_sockets_with_1001_flushes_history_and_exits(stack: Stack, stack_app: Any) -> None:
    server = stack.serve()
    async with api_at(server.url) as api:
        team = await fleet(stack_app, api)
    crew = team["drivers"][0]
    console = await WsClient.connect(ws_url(server.url, "/ws/console"), team["manager_token"])
    await console.send({"type": "subscribe", "channel": f"fleet:{team['org']['_id']}"})
    await console.recv_type("subscribed")
    driver = await WsClient.connect(ws_url(server.url, "/ws/driver"), crew["token"])
    await driver.recv_type("ready")
    anonymous = await WsClient.connect(ws_url(server.url, "/ws/console"))  # not authenticated yet

    # MongoDB stops answering: the server holds points it has taken but not yet written (none acked).
    os.kill(stack.mongo.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        for first in (1, 201):
            await driver.send({"type": "locations", "points": [point(n) for n in range(first, first + 200)]})
            await driver.send({"type": "probe"})  # answered once the batch before it was handed to the writer
            assert (await driver.recv_type("error"))["code"] == "unknown_type"
        assert not [f for f in driver.seen if f["type"] == "ack"]

        server.service.process.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        for client in (console, driver, anonymous):
            assert await client.closed() == GOING_AWAY
        assert refused(server.port) and server.service.process.poll() is None  # still flushing, not accepting
    finally:
        os.kill(stack.mongo.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
    assert server.service.process.wait(max(0.1, 10 - (time.monotonic() - asked))) == 0

    db = stack.sync_db()
    try:
        assert db["gps_points"].count_documents({"driver_id": crew["user"]["_id"]}) == 400
    finally:
        db.client.close()
    log = server.log()
    assert "shut down (3 websockets closed with 1001)" in log
    assert "Traceback" not in log and "tornado.application" not in log


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_to_the_parent_of_forked_servers_stops_every_child_gracefully(
    stack: Stack, stack_app: Any
) -> None:
    server = stack.serve(processes=2)
    async with api_at(server.url) as api:
        team = await fleet(stack_app, api)
    clients = []
    for _ in range(6):  # the kernel hands each to one of the children
        client = await WsClient.connect(ws_url(server.url, "/ws/console"), team["manager_token"])
        await client.recv_type("ready")
        clients.append(client)

    os.kill(server.service.process.pid, signal.SIGTERM)  # the parent alone, as a container runtime does
    asked = time.monotonic()
    assert [await client.closed() for client in clients] == [GOING_AWAY] * 6
    assert server.service.process.wait(max(0.1, 10 - (time.monotonic() - asked))) == 0
    log = server.log()
    assert log.count("exited normally") == 2, log[-2000:]  # both children (one may not have been serving yet)
    assert "Traceback" not in log and "restarting" not in log
