"""Rate limits of log-in and password reset (tight limits set for this module)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASSWORD, make_user
from tests.helpers import Api


@pytest.fixture
def settings(services: Any) -> Any:
    return services.settings(rate_limits="login_account=3/600,login_ip=5/600,password_forgot_account=1/3600")


@pytest.mark.gen_test
async def test_login_brute_force_is_429_with_retry_after(api: Api, app: Any) -> None:
    user = await make_user(app)
    for _ in range(3):
        wrong = await api.post("/api/v1/auth/login", {"login": user["username"], "password": "guess-guess"})
        assert wrong.status == 401
    blocked = await api.post("/api/v1/auth/login", {"login": user["username"], "password": PASSWORD})
    assert blocked.status == 429 and blocked.error_code == "rate_limited"
    assert 0 < int(blocked.headers["Retry-After"]) <= 600
    # the per-IP limit also holds across accounts
    other = await make_user(app)
    await api.post("/api/v1/auth/login", {"login": other["username"], "password": PASSWORD})
    assert (await api.post("/api/v1/auth/login", {"login": other["username"], "password": PASSWORD})).status == 429


@pytest.mark.gen_test
async def test_forwarded_for_is_ignored_without_trusted_proxies(api: Api, app: Any) -> None:
    user = await make_user(app)
    statuses = []
    for n in range(6):
        answer = await api.post("/api/v1/auth/login", {"login": f"nobody{n}", "password": "x-x-x-x-x"},
                                headers={"X-Forwarded-For": f"10.0.0.{n}"})
        statuses.append(answer.status)
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    del user


@pytest.mark.gen_test
async def test_password_forgot_is_throttled_per_account(api: Api, app: Any) -> None:
    user = await make_user(app)
    assert (await api.post("/api/v1/auth/password/forgot", {"email": user["email"]})).status == 202
    again = await api.post("/api/v1/auth/password/forgot", {"email": user["email"]})
    assert again.status == 429 and "Retry-After" in again.headers
