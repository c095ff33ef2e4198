"""The Celery application: background work (email, SMS, avatars, webhook deliveries, customer messages) on
the Redis broker.

`celery -A tasks worker` (or `python -m tasks`, or `dispatch worker`) runs a worker configured
from the environment. The server never imports this package: it sends tasks by name on a
send-only app (`dispatch.domain.queue`) with the same configuration.
"""

from __future__ import annotations

from celery import Celery

from dispatch.domain.queue import celery_config
from dispatch.settings import Settings

TASK_MODULES = ["tasks.email", "tasks.sms", "tasks.avatars", "tasks.webhooks", "tasks.customer"]


def make_celery(settings: Settings) -> Celery:
    """A Celery app on the configured broker: JSON only, late acks, one task at a time per process."""
    app = Celery("dispatch", broker=settings.effective_broker_url, include=TASK_MODULES, set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.dispatch_settings = settings
    return app


def settings_of(app: Celery) -> Settings:
    """The dispatch settings a Celery app was built with."""
    return app.conf.dispatch_settings


app: Celery  # built on first access, below


def __getattr__(name: str) -> Celery:
    # `celery -A tasks` looks up `tasks.app` (or `tasks.celery`); build it from the environment then.
    if name in ("app", "celery"):
        global app
        app = make_celery(Settings.from_env())
        app.set_current()
        return app
    raise AttributeError(name)
