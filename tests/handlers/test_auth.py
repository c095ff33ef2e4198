"""Registration, activation, log-in, tokens and sessions, through the real app, worker and stores."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from models.users import cache_key
from tests.support.factories import PASSWORD, login, make_user
from tests.support.helpers import Api, wait_for_email
from tests.support.sms import new_phone, wait_for_code


def new_account(**extra: Any) -> dict[str, Any]:
    name = f"u{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@Example.com", "password": PASSWORD, **extra}


async def activation_link(services: Any, email: str) -> str:
    message = await wait_for_email(services.outbox_dir, email)
    return re.search(r"http\S+/api/v1/auth/activate\?token=\S+", message.get_content()).group(0)


async def login_pair(api: Api, login_id: str, password: str = PASSWORD) -> dict[str, Any]:
    answer = await api.post("/api/v1/auth/login", {"login": login_id, "password": password})
    assert answer.status == 200, answer.json
    return answer.json


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_register_verify_login_and_read_profile(api: Api, services: Any) -> None:
    national, e164 = new_phone()
    account = new_account(phone=national, region="RU", first_name="Ivan", category="DRIVER")
    created = await api.post("/api/v1/auth/register", account)
    assert created.status == 201
    user = created.json
    assert user["email"] == account["email"] and user["phone"] == e164 and user["phone_verified"] is False
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
    for login_id in (account["email"].upper(), account["username"].upper()):
        pair = await login_pair(api, login_id)
        assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    # the registered phone logs in only once a texted code has confirmed it
    by_phone = await api.post("/api/v1/auth/login", {"login": e164, "password": PASSWORD})
    assert by_phone.status == 401 and by_phone.error_code == "invalid_credentials"
    resend = await api.patch("/api/v1/users/me", {"phone": e164}, token=pair["access_token"])  # allowed to drivers
    assert resend.status == 202 and resend.json["phone_verified"] is False
    code = await wait_for_code(services.outbox_dir, e164, set())
    verified = await api.post("/api/v1/users/me/phone/verify", {"code": code}, token=pair["access_token"])
    assert verified.status == 200 and verified.json["phone"] == e164 and verified.json["phone_verified"] is True
    pair = await login_pair(api, e164)
    me = await api.get("/api/v1/users/me", token=pair["access_token"])
    assert me.status == 200 and me.json["id"] == user["id"] and me.json["email_verified"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "short1"}, "password"),
        ({"password": "1234567890"}, "password"),
        ({"category": "ADMIN"}, "category"),
        ({"email": "not-an-email"}, "email"),
        ({"username": "a b"}, "username"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "8 916 123-45-67", "region": "XX"}, "phone"),
    ],
)
@pytest.mark.gen_test
async def test_register_refuses_bad_fields(api: Api, change: dict[str, Any], field: str) -> None:
    answer = await api.post("/api/v1/auth/register", new_account(**change))
    assert answer.status == 422
    assert field in answer.json["error"]["details"]


@pytest.mark.gen_test
async def test_password_equal_to_username_is_refused(api: Api) -> None:
    account = new_account()
    account["password"] = account["username"].upper()
    answer = await api.post("/api/v1/auth/register", account)
    assert answer.status == 422 and "password" in answer.json["error"]["details"]


@pytest.mark.gen_test
async def test_username_email_and_verified_phone_are_unique(api: Api, app: Any) -> None:
    national, e164 = new_phone()
    first = new_account(phone=e164)
    assert (await api.post("/api/v1/auth/register", first)).status == 201
    # an unverified phone blocks nobody: a second account may give the same number
    assert (await api.post("/api/v1/auth/register", new_account(phone=national, region="RU"))).status == 201
    verified_phone = new_phone()[1]
    await make_user(app, phone=verified_phone)  # made by an operator: its phone counts as verified
    same_name = new_account(username=first["username"].upper())
    same_email = new_account(email=first["email"].lower())
    same_phone = new_account(phone=verified_phone)
    for account, field in ((same_name, "username"), (same_email, "email"), (same_phone, "phone")):
        answer = await api.post("/api/v1/auth/register", account)
        assert answer.status == 409, field
        assert answer.json["error"]["details"]["field"] == field


@pytest.mark.gen_test
async def test_unknown_invite_code_is_refused_and_a_known_one_recorded(api: Api, app: Any) -> None:
    unknown = await api.post("/api/v1/auth/register", new_account(invite_code="NOPE2345"))
    assert unknown.status == 422 and "invite_code" in unknown.json["error"]["details"]
    inviter = await make_user(app)
    invited = await api.post("/api/v1/auth/register", new_account(invite_code=inviter["invite_code"].lower()))
    assert invited.status == 201 and invited.json["invited_by"] == str(inviter["_id"])


@pytest.mark.gen_test
async def test_inactive_account_cannot_log_in(api: Api, app: Any) -> None:
    user = await make_user(app)
    await app.settings["services"].identity.users.update(user["_id"], {"is_active": False})
    answer = await api.post("/api/v1/auth/login", {"login": user["username"], "password": PASSWORD})
    assert answer.status == 403 and answer.error_code == "account_inactive"


@pytest.mark.gen_test
async def test_unknown_user_and_wrong_password_answer_the_same(api: Api, app: Any) -> None:
    user = await make_user(app)
    wrong = await api.post("/api/v1/auth/login", {"login": user["username"], "password": "wrong-password"})
    ghost = await api.post("/api/v1/auth/login", {"login": "nobody-here", "password": "wrong-password"})
    assert wrong.status == ghost.status == 401
    assert wrong.json == ghost.json


def forged(settings: Any, **changes: Any) -> str:
    """An access token with chosen claims, signed with the server's secret unless told otherwise."""
    import time

    claims = {
        "sub": "0" * 24,
        "typ": "access",
        "jti": "x",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "sid": "nosuchsession",
    }
    secret = changes.pop("secret", settings.jwt_secret)
    claims.update(changes)
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.gen_test
async def test_token_edge_cases_are_401(api: Api, app: Any, settings: Any) -> None:
    user = await make_user(app)
    good = await login(app, user)
    sid = jwt.decode(good, options={"verify_signature": False})["sid"]
    header, payload, _ = good.split(".")
    import base64

    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    cases = {
        "expired": (
            forged(settings, sub=str(user["_id"]), sid=sid, exp=int(__import__("time").time()) - 5),
            "token_expired",
        ),
        "wrong signature": (
            forged(settings, sub=str(user["_id"]), sid=sid, secret="another-secret-" + "y" * 30),
            "invalid_token",
        ),
        "alg none": (f"{none_header}.{payload}.", "invalid_token"),
        "tampered payload": (f"{header}.{payload[:-2]}AA.{good.split('.')[2]}", "invalid_token"),
        "unknown session": (forged(settings, sub=str(user["_id"])), "session_ended"),
        "refresh used as access": ("abc.def", "invalid_token"),
    }
    for name, (token, code) in cases.items():
        answer = await api.get("/api/v1/users/me", token=token)
        assert answer.status == 401, name
        assert answer.error_code == code, name
    assert (await api.get("/api/v1/users/me", token=good)).status == 200
    basic = await api.get("/api/v1/users/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401


@pytest.mark.gen_test
async def test_no_token_is_401_and_public_routes_ignore_a_stale_one(api: Api) -> None:
    assert (await api.get("/api/v1/users/me")).error_code == "unauthenticated"
    assert (await api.get("/healthz", token="stale.token.here")).status == 200


@pytest.mark.both_redis
@pytest.mark.gen_test
async def test_refresh_rotates_and_replay_ends_the_session(api: Api, app: Any) -> None:
    user = await make_user(app)
    first = await login_pair(api, user["username"])
    second = (await api.post("/api/v1/auth/refresh", {"refresh_token": first["refresh_token"]})).json
    assert second["refresh_token"] != first["refresh_token"]
    assert (await api.get("/api/v1/users/me", token=second["access_token"])).status == 200
    replay = await api.post("/api/v1/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert replay.status == 401 and replay.error_code == "refresh_token_reused"
    # the whole session is gone: its current access token and newest refresh token too
    assert (await api.get("/api/v1/users/me", token=second["access_token"])).status == 401
    assert (await api.post("/api/v1/auth/refresh", {"refresh_token": second["refresh_token"]})).status == 401
    garbage = await api.post("/api/v1/auth/refresh", {"refresh_token": "not-a-token"})
    assert garbage.status == 401 and garbage.error_code == "invalid_refresh_token"


@pytest.mark.both_redis
@pytest.mark.gen_test
async def test_logout_ends_only_the_calling_session(api: Api, app: Any) -> None:
    user = await make_user(app)
    phone = await login_pair(api, user["username"])
    laptop = await login_pair(api, user["email"])
    assert (await api.post("/api/v1/auth/logout", token=phone["access_token"])).status == 204
    assert (await api.get("/api/v1/users/me", token=phone["access_token"])).status == 401
    assert (await api.post("/api/v1/auth/refresh", {"refresh_token": phone["refresh_token"]})).status == 401
    assert (await api.get("/api/v1/users/me", token=laptop["access_token"])).status == 200


@pytest.mark.both_redis
@pytest.mark.gen_test
async def test_sessions_are_listed_and_can_be_ended(api: Api, app: Any) -> None:
    user = await make_user(app)
    phone = await login_pair(api, user["username"])
    laptop_answer = await api.post(
        "/api/v1/auth/login", {"login": user["username"], "password": PASSWORD}, headers={"User-Agent": "Laptop/1.0"}
    )
    laptop = laptop_answer.json
    listed = await api.get("/api/v1/auth/sessions", token=phone["access_token"])
    assert listed.status == 200 and listed.json["total"] == 2
    items = listed.json["items"]
    assert {s["current"] for s in items} == {True, False}
    other = next(s for s in items if not s["current"])
    assert other["user_agent"] == "Laptop/1.0" and other["ip"] == "127.0.0.1"
    assert other["created_at"].endswith("Z") and other["last_used_at"].endswith("Z")
    stranger = await login(app, await make_user(app))
    assert (await api.delete(f"/api/v1/auth/sessions/{other['id']}", token=stranger)).status == 404
    assert (await api.delete(f"/api/v1/auth/sessions/{other['id']}", token=phone["access_token"])).status == 204
    assert (await api.get("/api/v1/users/me", token=laptop["access_token"])).status == 401
    assert (await api.delete(f"/api/v1/auth/sessions/{other['id']}", token=phone["access_token"])).status == 404
    assert (await api.get("/api/v1/auth/sessions", token=phone["access_token"])).json["total"] == 1


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_password_reset_by_email_revokes_every_session(api: Api, app: Any, services: Any) -> None:
    user = await make_user(app)
    old = await login_pair(api, user["username"])
    ghost = await api.post("/api/v1/auth/password/forgot", {"email": "ghost@example.com"})
    assert ghost.status == 202
    asked = await api.post("/api/v1/auth/password/forgot", {"email": user["email"].upper()})
    assert asked.status == 202 and asked.json == ghost.json
    message = await wait_for_email(services.outbox_dir, user["email"], subject="Reset your password")
    token = re.search(r"token=(\S+)", message.get_content()).group(1)
    weak = await api.post("/api/v1/auth/password/reset", {"token": token, "new_password": "12345678901"})
    assert weak.status == 422
    done = await api.post("/api/v1/auth/password/reset", {"token": token, "new_password": "a-brand-new-secret"})
    assert done.status == 204
    assert (await api.get("/api/v1/users/me", token=old["access_token"])).status == 401
    assert (
        await api.post("/api/v1/auth/password/reset", {"token": token, "new_password": "another-new-secret"})
    ).status == 400
    await login_pair(api, user["username"], "a-brand-new-secret")
    assert (await api.post("/api/v1/auth/login", {"login": user["username"], "password": PASSWORD})).status == 401
    forged_reset = await api.post("/api/v1/auth/password/reset", {"token": "x.y.z", "new_password": "whatever-123"})
    assert forged_reset.status == 400 and forged_reset.error_code == "invalid_token"


@pytest.mark.gen_test
async def test_password_change_needs_the_old_one_and_ends_sessions(api: Api, app: Any) -> None:
    user = await make_user(app)
    pair = await login_pair(api, user["username"])
    wrong = await api.post(
        "/api/v1/auth/password/change",
        {"old_password": "not-it-at-all", "new_password": "new-password-1"},
        token=pair["access_token"],
    )
    assert wrong.status == 422 and "old_password" in wrong.json["error"]["details"]
    ok = await api.post(
        "/api/v1/auth/password/change",
        {"old_password": PASSWORD, "new_password": "new-password-1"},
        token=pair["access_token"],
    )
    assert ok.status == 204
    assert (await api.get("/api/v1/users/me", token=pair["access_token"])).status == 401
    await login_pair(api, user["username"], "new-password-1")


@pytest.mark.gen_test(timeout=60)
async def test_email_change_requires_verification_again(api: Api, app: Any, services: Any) -> None:
    user = await make_user(app)
    token = await login(app, user)
    new_email = f"new_{uuid.uuid4().hex[:8]}@example.com"
    changed = await api.patch("/api/v1/users/me", {"email": new_email, "first_name": "Anna"}, token=token)
    assert changed.status == 200
    assert changed.json["email"] == new_email and changed.json["email_verified"] is False
    assert changed.json["first_name"] == "Anna"
    link = await activation_link(services, new_email)
    assert (await api.get(link.split("dispatch.test", 1)[1])).status == 200
    assert (await api.get("/api/v1/users/me", token=token)).json["email_verified"] is True


@pytest.mark.gen_test
async def test_driver_cannot_change_own_name_or_phone(api: Api, app: Any) -> None:
    driver = await make_user(app, "DRIVER")
    token = await login(app, driver)
    for change in ({"first_name": "X"}, {"last_name": "Y"}, {"phone": "+4915123456780"}):
        answer = await api.patch("/api/v1/users/me", change, token=token)
        assert answer.status == 403 and answer.error_code == "field_locked"
    manager = await make_user(app, "MANAGER")
    renamed = await api.patch("/api/v1/users/me", {"first_name": "Olga"}, token=await login(app, manager))
    assert renamed.status == 200 and renamed.json["first_name"] == "Olga"


@pytest.mark.both_redis
@pytest.mark.gen_test
async def test_profile_reads_come_from_the_cache_and_writes_invalidate_it(api: Api, app: Any) -> None:
    user = await make_user(app)
    token = await login(app, user)
    assert (await api.get("/api/v1/users/me", token=token)).status == 200
    services = app.settings["services"]
    # One Redis keeps the cache in a db of its own; a cluster (db 0 only) under a key prefix.
    key = cache_key(services.settings.cache_prefix, user["_id"])
    assert await services.cache.exists(key)
    await api.patch("/api/v1/users/me", {"last_name": "Petrova"}, token=token)
    assert (await api.get("/api/v1/users/me", token=token)).json["last_name"] == "Petrova"
