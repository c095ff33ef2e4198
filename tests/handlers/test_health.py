"""Liveness, readiness (really pinging MongoDB and Redis) and metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import tornado.httpserver
import tornado.testing

from dispatch.app import make_app
from dispatch.services import Services
from dispatch.tools import devservices
from tests.support.helpers import Api


@pytest.mark.gen_test
async def test_healthz(api: Api) -> None:
    answer = await api.get("/healthz")
    assert answer.status == 200 and answer.json == {"status": "ok"}


@pytest.mark.gen_test
async def test_readyz_when_both_stores_answer(api: Api) -> None:
    answer = await api.get("/readyz")
    assert answer.status == 200
    assert answer.json == {"status": "ok", "checks": {"mongodb": "ok", "redis": "ok"}}


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    """A redis-server of this test's own, so stopping it disturbs no other test."""
    port = devservices.free_port()
    service = devservices.start_redis(port, tmp_path / "redis", tmp_path / "log")
    yield port, service
    service.stop()


@pytest.mark.gen_test(timeout=60)
async def test_readyz_is_503_while_redis_is_down_and_200_when_back(
    own_redis: Any, settings: Any, tmp_path: Path
) -> None:
    port, service = own_redis
    settings = settings.replace(redis_url=f"redis://127.0.0.1:{port}/0")
    services = Services.open(settings)
    app = make_app(services)
    sock, http_port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_socket(sock)
    api = Api(httpx.AsyncClient(trust_env=False), f"http://127.0.0.1:{http_port}")
    restarted: list[Any] = []
    try:
        assert (await api.get("/readyz")).status == 200
        service.stop()
        down = await api.get("/readyz")
        assert down.status == 503
        assert down.error_code == "not_ready"
        assert down.json["error"]["details"]["checks"]["mongodb"] == "ok"
        assert down.json["error"]["details"]["checks"]["redis"].startswith("down")
        assert (await api.get("/healthz")).status == 200  # alive, just not ready
        restarted.append(devservices.start_redis(port, tmp_path / "redis", tmp_path / "log2"))
        for _ in range(50):
            if (await api.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.1)
        assert (await api.get("/readyz")).json["checks"] == {"mongodb": "ok", "redis": "ok"}
    finally:
        await api.client.aclose()
        server.stop()
        await services.close()
        for again in restarted:
            again.stop()


@pytest.mark.gen_test
async def test_metrics_count_requests_by_route(api: Api) -> None:
    await api.get("/healthz")
    await api.get("/api/v1/missing")
    answer = await api.get("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    text = answer.body.decode()
    assert 'dispatch_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="unmatched",status="404"' in text or 'status="404"' in text
    assert "dispatch_http_request_duration_seconds_bucket" in text
    assert "dispatch_websockets_open" in text or "# HELP dispatch_websockets_open" in text
