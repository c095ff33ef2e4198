"""End to end through a worker configured for real delivery: the activation email goes over SMTP
to a local SMTP server (aiosmtpd) and the SMS code over HTTP to a local gateway; the test then
uses the link and the code exactly as a person would."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from dispatch.tools import devservices
from tests.support.factories import PASSWORD
from tests.support.gateways import Gateway, Sink, gateway_running, smtp_running
from tests.support.helpers import Api
from tests.support.processes import redis_db_url

DELIVERY_BROKER_DB = 3  # this module's worker listens here, apart from the session's worker


@pytest.fixture(scope="module")
def sinks() -> Iterator[tuple[Sink, int, Gateway]]:
    with smtp_running() as (sink, port), gateway_running() as gateway:
        yield sink, port, gateway


@pytest.fixture(scope="module")
def delivery_worker(services: Any, sinks: tuple[Sink, int, Gateway], tmp_path_factory: Any) -> Iterator[str]:
    """A real worker whose email backend is SMTP and whose SMS backend is HTTP."""
    _, smtp_port, gateway = sinks
    broker = redis_db_url(services.redis_url, DELIVERY_BROKER_DB)
    env = {
        **os.environ,
        "DISPATCH_BROKER_URL": broker,
        "DISPATCH_REDIS_URL": redis_db_url(services.redis_url, 1),
        "DISPATCH_MONGODB_URL": services.mongodb_url,
        "DISPATCH_EMAIL_BACKEND": "smtp",
        "DISPATCH_SMTP_HOST": "127.0.0.1",
        "DISPATCH_SMTP_PORT": str(smtp_port),
        "DISPATCH_EMAIL_FROM": "no-reply@dispatch.test",
        "DISPATCH_SMS_BACKEND": "http",
        "DISPATCH_SMS_HTTP_URL": gateway.url,
        "DISPATCH_LOG_LEVEL": "WARNING",
    }
    worker = devservices.start_worker(env, tmp_path_factory.mktemp("delivery-worker"), concurrency=1)
    try:
        devservices.wait_worker_ready(broker)
        yield broker
    finally:
        worker.stop()


@pytest.fixture
def settings(services: Any, delivery_worker: str) -> Any:
    return services.settings(broker_url=delivery_worker)


async def until(found: Any, timeout: float = 30) -> Any:
    for _ in range(int(timeout * 10)):
        value = found()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("nothing was delivered in time")


@pytest.mark.gen_test(timeout=60)
async def test_activation_link_arrives_by_smtp_and_works(api: Api, sinks: tuple[Sink, int, Gateway]) -> None:
    sink = sinks[0]
    name = f"smtp{uuid.uuid4().hex[:8]}"
    email = f"{name}@example.com"
    registered = await api.post("/api/v1/auth/register", {"username": name, "email": email, "password": PASSWORD})
    assert registered.status == 201
    message = await until(lambda: next((m for m in sink.received if m["To"] == email), None))
    assert message["From"] == "no-reply@dispatch.test"
    link = re.search(r"http\S+/api/v1/auth/activate\?token=\S+", message.get_payload(decode=True).decode()).group(0)
    parts = urlsplit(link)
    assert (await api.get(f"{parts.path}?{parts.query}")).status == 200
    assert (await api.post("/api/v1/auth/login", {"login": email, "password": PASSWORD})).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_sms_code_arrives_at_the_http_gateway_and_logs_in(api: Api, sinks: tuple[Sink, int, Gateway]) -> None:
    gateway = sinks[2]
    phone = f"+7916{uuid.uuid4().int % 10**7:07d}"
    assert (await api.post("/api/v1/auth/sms/request", {"phone": phone})).status == 202
    body = await until(lambda: next((b for _, _, b in gateway.received if b["to"] == phone), None))
    code = re.search(r"\b(\d{6})\b", body["text"]).group(1)
    answer = await api.post("/api/v1/auth/sms/verify", {"phone": phone, "code": code})
    assert answer.status == 200 and answer.json["token_type"] == "Bearer"
    me = await api.get("/api/v1/users/me", token=answer.json["access_token"])
    assert me.json["phone"] == phone and me.json["category"] == "BASE"
