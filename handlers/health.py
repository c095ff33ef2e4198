"""Service endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from dispatch.core import metrics
from dispatch.core.errors import ApiError
from dispatch.core.policy import public
from dispatch.core.storage import check_redis
from handlers.base import BaseHandler

PING_TIMEOUT = 2.0


class HealthHandler(BaseHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @public
    def get(self) -> None:
        """Liveness: the process answers.
        ---
        operationId: getHealth
        tags: [service]
        summary: Liveness probe
        responses:
          200:
            description: The process is alive.
            content:
              application/json:
                schema: {$ref: '#/components/schemas/Health'}
        """
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    @public
    async def get(self) -> None:
        """Readiness: MongoDB answers a ping, and Redis one too (a Redis Cluster: its state is `ok`).
        ---
        operationId: getReadiness
        tags: [service]
        summary: Readiness probe
        responses:
          200:
            description: Both stores are reachable.
            content:
              application/json:
                schema: {$ref: '#/components/schemas/Ready'}
          503:
            description: A store is down; the error's `details.checks` says which.
            content:
              application/json:
                schema: {$ref: '#/components/schemas/Error'}
        """
        mongo, redis = await asyncio.gather(
            self._ping(self.services.db.command("ping")), self._ping(check_redis(self.services.redis))
        )
        checks = {"mongodb": mongo, "redis": redis}
        down = [name for name, state in checks.items() if state != "ok"]
        if down:
            raise ApiError(503, "not_ready", f"Not ready: {' and '.join(down)} unreachable.", {"checks": checks})
        self.write_json({"status": "ok", "checks": checks})

    @staticmethod
    async def _ping(call: object) -> str:
        try:
            await asyncio.wait_for(call, PING_TIMEOUT)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; say which kind
            return f"down: {type(exc).__name__}"
        return "ok"


class MetricsHandler(BaseHandler):
    store_free = True  # answers without MongoDB or Redis: no 503 to document

    @public
    def get(self) -> None:
        """Prometheus metrics of this process.
        ---
        operationId: getMetrics
        tags: [service]
        summary: Prometheus metrics
        responses:
          200:
            description: Metrics in the Prometheus text format.
            content:
              text/plain: {schema: {type: string}}
        """
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.finish(metrics.exposition())


default_handlers = [
    (r"/healthz", HealthHandler),
    (r"/readyz", ReadyHandler),
    (r"/metrics", MetricsHandler),
]
