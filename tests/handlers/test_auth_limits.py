"""Rate limits of log-in and password reset (tight limits set for this module)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.factories import PASSWORD, make_user
from tests.support.helpers import Api


@pytest.fixture
def settings(services: Any, request: pytest.FixtureRequest) -> Any:
    changes = getattr(request, "param", {})  # a test may add settings (indirect parametrization)
    return services.settings(rate_limits="login_account=3/600,login_ip=5/600,password_forgot_account=1/3600", **changes)


@pytest.mark.both_redis
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
        answer = await api.post(
            "/api/v1/auth/login",
            {"login": f"nobody{n}", "password": "x-x-x-x-x"},
            headers={"X-Forwarded-For": f"10.0.0.{n}"},
        )
        statuses.append(answer.status)
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    del user


@pytest.mark.gen_test
async def test_password_forgot_is_throttled_per_account(api: Api, app: Any) -> None:
    user = await make_user(app)
    assert (await api.post("/api/v1/auth/password/forgot", {"email": user["email"]})).status == 202
    again = await api.post("/api/v1/auth/password/forgot", {"email": user["email"]})
    assert again.status == 429 and "Retry-After" in again.headers


@pytest.mark.parametrize("settings", [{"trusted_proxies": "127.0.0.1"}], indirect=True)
@pytest.mark.gen_test
async def test_an_attacker_cannot_lock_the_owner_out(api: Api, app: Any) -> None:
    """Failures from one address lock that address out; the owner from another address still gets in."""
    user = await make_user(app)

    async def attempt(address: str, password: str) -> Any:
        return await api.post(
            "/api/v1/auth/login",
            {"login": user["username"], "password": password},
            headers={"X-Forwarded-For": address},
        )

    assert [(await attempt("203.0.113.7", "guess-guess")).status for _ in range(4)] == [401, 401, 401, 429]
    owner = await attempt("198.51.100.2", PASSWORD)
    assert owner.status == 200 and owner.json["access_token"]
    refused = await attempt("203.0.113.7", PASSWORD)  # even the right password, from the attacker's address
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    # a fresh address gets one try while the account is under attack; after a failure it is refused too
    assert (await attempt("192.0.2.9", "guess-guess")).status == 401
    assert (await attempt("192.0.2.9", PASSWORD)).status == 429
