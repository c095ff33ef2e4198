"""Registration, activation, log-in, tokens and sessions, through the real app, worker and stores."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.factories import PASSWORD, login, make_user
from tests.helpers import Api, wait_for_email


def new_account(**extra: Any) -> dict[str, Any]:
    name = f"u{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@Example.com", "password": PASSWORD, **extra}


async def activation_link(services: Any, email: str) -> str:
    message = await wait_for_email(services.outbox_dir, email)
    return re.search(r"http\S+/api/v1/auth/activate\?token=\S+", message.get_content()).group(0)


async def register_and_activate(api: Api, services: Any, **extra: Any) -> dict[str, Any]:
    account = new_account(**extra)
    created = await api.post("/api/v1/auth/register", account)
    assert created.status == 201, created.json
    link = await activation_link(services, account["email"])
    token = parse_qs(urlsplit(link).query)["token"][0]
    assert (await api.get(f"/api/v1/auth/activate?token={token}")).status == 200
    return account


async def login_pair(api: Api, login_id: str, password: str = PASSWORD) -> dict[str, Any]:
    answer = await api.post("/api/v1/auth/login", {"login": login_id, "password": password})
    assert answer.status == 200, answer.json
    return answer.json


@pytest.mark.gen_test(timeout=60)
async def test_register_verify_login_and_read_profile(api: Api, services: Any) -> None:
    account = new_account(phone="8 916 123-45-67", region="RU", first_name="Ivan", category="DRIVER")
    created = await api.post("/api/v1/auth/register", account)
    assert created.status == 201
    user = created.json
    assert user["email"] == account["email"] and user["phone"] == "+79161234567"
    assert user["category"] == "DRIVER" and user["email_verified"] is False and user["is_active"] is True
    assert user["rating"] is None and user["organizations"] == []
    assert "password" not in user and "password_hash" not in user
    assert user["created_at"].endswith("Z")
    # unverified: the right password gives 403 email_not_verified, a wrong one stays 401
    refused = await api.post("/api/v1/auth/login", {"login": account["username"], "password": PASSWORD})
    assert refused.status == 403 and refused.error_code == "email_not_verified"
    wrong = await api.post("/api/v1/auth/login", {"login": account["username"], "password": "nope-nope-nope"})
    assert wrong.status == 401 and wrong.error_code == "invalid_credentials"
    link = await activation_link(services, account["email"])
    assert link.startswith("http://dispatch.test/api/v1/auth/activate?token=")
    token = parse_qs(urlsplit(link).query)["token"][0]
    activated = await api.get(f"/api/v1/auth/activate?token={token}")
    assert activated.status == 200 and activated.json["status"] == "verified"
    again = await api.get(f"/api/v1/auth/activate?token={token}")
    assert again.status == 400 and again.error_code == "invalid_token"
    for login_id in (account["email"].upper(), "+79161234567", account["username"].upper()):
        pair = await login_pair(api, login_id)
        assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    me = await api.get("/api/v1/users/me", token=pair["access_token"])
    assert me.status == 200 and me.json["id"] == user["id"] and me.json["email_verified"] is True
