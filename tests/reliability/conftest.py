"""Fixtures of the fault and shutdown tests: private services a test may kill and restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import tornado.web

from dispatch.app import close_app, make_app
from dispatch.core.storage import ensure_indexes, open_stores
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

    async def start() -> Any:
        opened = open_stores(settings)  # on the test's loop, which the clients then use
        await ensure_indexes(opened.mongo[settings.mongodb_db])
        return opened

    stores = io_loop.run_sync(start)
    application = make_app(settings, mongo=stores.mongo, redis=stores.redis, cache=stores.cache)
    yield application

    async def stop() -> None:
        await close_app(application)
        await stores.close()

    io_loop.run_sync(stop)
