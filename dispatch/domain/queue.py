"""Sending Celery tasks from the server without blocking its event loop.

The server sends tasks by name on a send-only Celery app: it never imports the worker's
task modules (`tasks/`). Both apps take their configuration from `celery_config`, so what
the server sends is what the worker reads (broker, serializer, routing).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from celery import Celery

from dispatch.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration the server and the worker share: JSON only, late acks, one task at a time."""
    return {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # Tasks a killed worker held (acked late, so still unacked) are handed out again after the
        # visibility timeout; workers look for such tasks every few seconds (kombu's default is ~100 s).
        "broker_transport_options": {
            "visibility_timeout": settings.task_visibility_timeout,
            "unacked_restore_interval": min(10, max(1, settings.task_visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
            # A worker killed during its own sweep leaves the sweep's lock behind;
            # kombu holds it for 300 s by default, stalling every other worker's sweep.
            "unacked_mutex_expire": max(5, min(60, settings.task_visibility_timeout)),
        },
        "timezone": "UTC",
        "enable_utc": True,
    }


def make_sender(settings: Settings) -> Celery:
    """A send-only Celery app on the configured broker (no task modules: tasks go by name)."""
    app = Celery("dispatch", broker=settings.effective_broker_url, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


class TaskQueue:
    """Publishes tasks by name to the Celery broker, off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.celery = make_sender(settings)

    async def send(self, name: str, *args: Any, **kwargs: Any) -> str:
        """Queue task `name` with JSON arguments; returns the task id."""
        publish = functools.partial(self.celery.send_task, name, args=args, kwargs=kwargs)
        result = await asyncio.get_running_loop().run_in_executor(None, publish)
        return str(result.id)

    def close(self) -> None:
        """Release the broker connections."""
        self.celery.close()
