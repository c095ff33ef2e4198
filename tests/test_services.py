"""The process's services: built once, carried by the app alone, and the layer breaks they closed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from dispatch.core.events import Event
from dispatch.domain.queue import celery_config, make_sender
from dispatch.realtime.hub import stream_key
from dispatch.services import Services
from tasks import make_celery
from tests.support.factories import make_user
from tests.support.helpers import close_services

# What Tornado itself (and the app's own cached OpenAPI document) keeps in the application settings.
TORNADO_KEYS = {
    "transforms",
    "default_handler_class",
    "log_function",
    "websocket_ping_interval",
    "websocket_ping_timeout",
    "websocket_max_message_size",
    "compress_response",
}


def test_the_app_settings_carry_the_services_and_nothing_else_loose(app: Any) -> None:
    assert isinstance(app.settings["services"], Services)
    assert set(app.settings) - TORNADO_KEYS == {"services", "openapi", "openapi_json"}


def test_the_server_never_loads_the_worker_package() -> None:
    probe = (
        "import sys, dispatch.app, dispatch.server, dispatch.cli, dispatch.tools.seed, "
        "dispatch.tools.create_admin; print(sorted(m for m in sys.modules if m.split('.')[0] == 'tasks'))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_send_only_app_is_configured_as_the_worker(settings: Any) -> None:
    sender, worker = make_sender(settings), make_celery(settings)
    try:
        assert sender.conf.broker_url == worker.conf.broker_url == settings.effective_broker_url
        for name in celery_config(settings):
            assert sender.conf[name] == worker.conf[name], name
        assert "tasks.email" not in (sender.conf.include or ())
    finally:
        sender.close()
        worker.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_ended_session_is_a_live_only_event_kept_for_no_replay(app: Any) -> None:
    services: Services = app.settings["services"]
    seen: list[Event] = []

    async def listen(event: Event) -> None:
        seen.append(event)

    services.events.listen(listen)
    user = await make_user(app, "DRIVER")
    pair = await services.identity.open_session(user, "127.0.0.1", "tests")
    owner, _ = await services.identity.sessions.owner(pair["refresh_token"].partition(".")[0])
    assert owner == str(user["_id"])
    await services.identity.sessions.revoke_all(str(user["_id"]))
    assert [(e.type, e.channels, e.data, e.live_only) for e in seen] == [
        ("session_ended", (f"user:{user['_id']}",), {"session_id": "*"}, True)
    ]
    assert await services.redis.exists(stream_key(f"user:{user['_id']}")) == 0  # nothing a `since` could replay


@pytest.mark.gen_test(timeout=30)
async def test_only_a_serving_process_sweeps_a_tool_that_opens_the_services_does_not(settings: Any) -> None:
    """`create-admin` or a seed opens the services for one job and exits: it must not take a sweep's work."""
    sweeps = {"webhook-sweeper", "message-sweeper"}

    def running() -> set[str]:
        return {task.get_name() for task in asyncio.all_tasks() if not task.done()} & sweeps

    services = Services.open(settings)
    try:
        await asyncio.sleep(0.05)
        assert running() == set()
        services.start_sweeps()  # what the server does once it serves
        await asyncio.sleep(0.05)
        assert running() == sweeps
        await services.db.command("ping")
    finally:
        await close_services(services)
    assert running() == set()
