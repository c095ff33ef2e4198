"""The Celery application: background work (email, SMS, avatars) on the Redis broker.

`celery -A tasks worker` (or `dispatch worker`) runs a worker configured from the
environment; the server builds its own instance with `make_celery(settings)` to send.
"""

from __future__ import annotations

from celery import Celery

from dispatch.settings import Settings

TASK_MODULES = ["tasks.email", "tasks.sms", "tasks.avatars"]


def make_celery(settings: Settings) -> Celery:
    """A Celery app on the configured broker: JSON only, late acks, one task at a time per process."""
    app = Celery("dispatch", broker=settings.effective_broker_url, include=TASK_MODULES, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # Tasks a killed worker held (acked late, so still unacked) are handed out again after the
        # visibility timeout; workers look for such tasks every few seconds (kombu's default is ~100 s).
        broker_transport_options={"visibility_timeout": settings.task_visibility_timeout,
                                  "unacked_restore_interval": min(10, max(1, settings.task_visibility_timeout // 4)),
                                  "unacked_restore_throttle": 1,
                                  # A worker killed during its own sweep leaves the sweep's lock behind;
                                  # kombu holds it for 300 s by default, stalling every other worker's sweep.
                                  "unacked_mutex_expire": max(5, min(60, settings.task_visibility_timeout))},
        timezone="UTC",
        enable_utc=True,
    )
    app.conf.dispatch_settings = settings
    return app


def settings_of(app: Celery) -> Settings:
    """The dispatch settings a Celery app was built with."""
    return app.conf.dispatch_settings


def __getattr__(name: str) -> Celery:
    # `celery -A tasks` looks up `tasks.app` (or `tasks.celery`); build it from the environment then.
    if name in ("app", "celery"):
        global app
        app = make_celery(Settings.from_env())
        app.set_current()
        return app
    raise AttributeError(name)
