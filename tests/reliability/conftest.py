"""Fixtures of the fault and shutdown tests: private services a test may kill and restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from dispatch.app import make_app
from dispatch.core.storage import ensure_indexes
from dispatch.services import Services
from tests.support.helpers import close_services
from tests.support.stack import Stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Private services for one test, stopped after it."""
    private = Stack(tmp_path).start()
    yield private
    private.stop()


@pytest.fixture
def stack_app(io_loop: Any, stack: Stack) -> Iterator[tornado.web.Application]:
    """An application object on the stack's stores, to make users and tokens (it serves nothing)."""
    settings = stack.settings
    assert settings is not None

    async def start() -> Services:
        opened = Services.open(settings)  # on the test's loop, which the clients then use
        await ensure_indexes(opened.db)
        return opened

    services = io_loop.run_sync(start)
    yield make_app(services)

    async def stop() -> None:
        await close_services(services)

    io_loop.run_sync(stop)
