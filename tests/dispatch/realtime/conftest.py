"""The real stores alone (no web app) for unit tests of dispatch/realtime: the test's own database,
the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.core.storage import Stores, ensure_indexes, open_stores
from dispatch.settings import Settings


@pytest.fixture
def stores(io_loop: Any, settings: Settings) -> Iterator[Stores]:
    async def start() -> Stores:
        opened = open_stores(settings)
        await ensure_indexes(opened.mongo[settings.mongodb_db])
        return opened

    opened = io_loop.run_sync(start)
    yield opened

    async def stop() -> None:
        await opened.mongo.drop_database(settings.mongodb_db)
        await opened.close()

    io_loop.run_sync(stop)
