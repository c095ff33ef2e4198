"""Sending Celery tasks from the server without blocking its event loop."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from celery import Celery

from dispatch.settings import Settings


class TaskQueue:
    """Publishes tasks by name to the Celery broker, off the event loop."""

    def __init__(self, settings: Settings) -> None:
        from tasks import make_celery

        self.celery: Celery = make_celery(settings)

    async def send(self, name: str, *args: Any, **kwargs: Any) -> str:
        """Queue task `name` with JSON arguments; returns the task id."""
        publish = functools.partial(self.celery.send_task, name, args=args, kwargs=kwargs)
        result = await asyncio.get_running_loop().run_in_executor(None, publish)
        return result.id

    def close(self) -> None:
        """Release the broker connections."""
        self.celery.close()
