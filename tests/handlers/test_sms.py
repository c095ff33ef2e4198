"""SMS log-in through the real app, Redis and Celery worker (file backend): codes are read from its outbox."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.storage import ensure_indexes
from dispatch.settings import Settings
from tests.support.factories import PASSWORD, login, make_user
from tests.support.helpers import Api
from tests.support.sms import REQUEST, new_phone, request_code, wait_for_code, wrong

VERIFY = "/api/v1/auth/sms/verify"
# Day-long windows: a fixed-window count cannot reset in the middle of a test.
LIMITS = "sms_request_phone=2/86400,sms_request_ip=50/86400,sms_verify_ip=50/86400"


@pytest.fixture
def settings(services: Any, request: pytest.FixtureRequest) -> Settings:
    """Tight SMS limits; a test may pass its own with indirect parametrization."""
    return services.settings(rate_limits=getattr(request, "param", LIMITS))


@pytest.mark.gen_test(timeout=60)
async def test_new_phone_gets_a_base_account_and_logs_in_again_later(api: Api, services: Any) -> None:
    national, e164 = new_phone()
    seen: set[Path] = set()
    code = await request_code(api, services, national, e164, seen, region="ru")
    answer = await api.post(VERIFY, {"phone": national, "region": "RU", "code": code})
    assert answer.status == 200, answer.json
    assert answer.json["token_type"] == "Bearer" and answer.json["refresh_token"]
    me = await api.get("/api/v1/users/me", token=answer.json["access_token"])
    assert me.status == 200
    user = me.json
    assert user["category"] == "BASE" and user["phone"] == e164 and user["email"] is None
    assert user["username"].startswith("user_") and user["is_active"] is True
    # the same phone in E.164 form, with a new code, is the same account
    code = await request_code(api, services, e164, e164, seen)
    again = await api.post(VERIFY, {"phone": e164, "code": code})
    assert again.status == 200, again.json
    me_again = await api.get("/api/v1/users/me", token=again.json["access_token"])
    assert me_again.json["id"] == user["id"]


@pytest.mark.gen_test(timeout=60)
async def test_existing_account_with_that_phone_logs_in(api: Api, app: Any, services: Any) -> None:
    national, e164 = new_phone()
    owner = await make_user(app, "DRIVER", phone=e164)
    code = await request_code(api, services, national, e164, set(), region="RU")
    answer = await api.post(VERIFY, {"phone": e164, "code": code})
    assert answer.status == 200, answer.json
    me = await api.get("/api/v1/users/me", token=answer.json["access_token"])
    assert me.json["id"] == str(owner["_id"]) and me.json["category"] == "DRIVER"


@pytest.mark.gen_test(timeout=60)
async def test_inactive_account_is_refused(api: Api, app: Any, services: Any) -> None:
    _, e164 = new_phone()
    owner = await make_user(app, "BASE", phone=e164)
    await app.settings["services"].identity.users.update(owner["_id"], {"is_active": False})
    code = await request_code(api, services, e164, e164, set())
    answer = await api.post(VERIFY, {"phone": e164, "code": code})
    assert answer.status == 403 and answer.error_code == "account_inactive"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "8 916 123-45-67"}, "phone"),  # national without a region
        ({"phone": "+7 000 000-00-00"}, "phone"),  # parses, but no such number
        ({"phone": "8 916 123-45-67", "region": "XX"}, "region"),
        ({}, "phone"),
    ],
)
@pytest.mark.gen_test(timeout=30)
async def test_invalid_phone_or_region_is_422(api: Api, body: dict[str, Any], field: str) -> None:
    answer = await api.post(REQUEST, body)
    assert answer.status == 422 and field in answer.json["error"]["details"], answer.json


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_five_wrong_codes_burn_it(api: Api, services: Any) -> None:
    _, e164 = new_phone()
    code = await request_code(api, services, e164, e164, set())
    for left in (4, 3, 2, 1, 0):
        answer = await api.post(VERIFY, {"phone": e164, "code": wrong(code)})
        assert answer.status == 400 and answer.error_code == "invalid_code"
        assert answer.json["error"]["details"]["attempts_left"] == left
    burnt = await api.post(VERIFY, {"phone": e164, "code": code})
    assert burnt.status == 400 and burnt.error_code == "invalid_code"


@pytest.mark.gen_test(timeout=60)
async def test_right_code_after_a_few_wrong_ones_still_works(api: Api, services: Any) -> None:
    _, e164 = new_phone()
    code = await request_code(api, services, e164, e164, set())
    for _ in range(4):
        assert (await api.post(VERIFY, {"phone": e164, "code": wrong(code)})).status == 400
    assert (await api.post(VERIFY, {"phone": e164, "code": code})).status == 200


@pytest.mark.both_redis
@pytest.mark.gen_test(timeout=60)
async def test_a_code_works_once(api: Api, services: Any) -> None:
    _, e164 = new_phone()
    code = await request_code(api, services, e164, e164, set())
    assert (await api.post(VERIFY, {"phone": e164, "code": code})).status == 200
    reused = await api.post(VERIFY, {"phone": e164, "code": code})
    assert reused.status == 400 and reused.error_code == "invalid_code"


@pytest.mark.gen_test(timeout=60)
async def test_a_new_code_replaces_the_old_one(api: Api, services: Any) -> None:
    _, e164 = new_phone()
    seen: set[Path] = set()
    first = await request_code(api, services, e164, e164, seen)
    second = await request_code(api, services, e164, e164, seen)
    if first != second:
        stale = await api.post(VERIFY, {"phone": e164, "code": first})
        assert stale.status == 400 and stale.error_code == "invalid_code"
    assert (await api.post(VERIFY, {"phone": e164, "code": second})).status == 200


@pytest.mark.gen_test(timeout=30)
async def test_code_never_requested_or_for_another_phone_fails(api: Api, services: Any) -> None:
    _, e164 = new_phone()
    _, other = new_phone()
    answer = await api.post(VERIFY, {"phone": e164, "code": "123456"})
    assert answer.status == 400 and answer.error_code == "invalid_code"
    code = await request_code(api, services, other, other, set())
    crossed = await api.post(VERIFY, {"phone": e164, "code": code})
    assert crossed.status == 400 and crossed.error_code == "invalid_code"
    malformed = await api.post(VERIFY, {"phone": other, "code": "12ab"})
    assert malformed.status == 422 and "code" in malformed.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_requests_are_throttled_per_phone(api: Api, services: Any) -> None:
    national, e164 = new_phone()
    for _ in range(2):
        assert (await api.post(REQUEST, {"phone": national, "region": "RU"})).status == 202
    throttled = await api.post(REQUEST, {"phone": e164})  # the same phone in another spelling
    assert throttled.status == 429 and throttled.error_code == "rate_limited"
    assert 0 < int(throttled.headers["Retry-After"]) <= 86400
    _, other = new_phone()
    assert (await api.post(REQUEST, {"phone": other})).status == 202


@pytest.mark.parametrize("settings", ["sms_request_ip=3/86400"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_requests_are_throttled_per_ip(api: Api) -> None:
    for _ in range(3):
        assert (await api.post(REQUEST, {"phone": new_phone()[1]})).status == 202
    throttled = await api.post(REQUEST, {"phone": new_phone()[1]})
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) > 0


@pytest.mark.parametrize("settings", ["sms_verify_ip=3/86400"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_verify_attempts_are_throttled_per_ip(api: Api) -> None:
    for _ in range(3):
        assert (await api.post(VERIFY, {"phone": new_phone()[1], "code": "000000"})).status == 400
    throttled = await api.post(VERIFY, {"phone": new_phone()[1], "code": "000000"})
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) > 0


# --- a phone counts only once verified (SPEC section 13) --------------------------------------------
ME = "/api/v1/users/me"
PHONE_VERIFY = "/api/v1/users/me/phone/verify"
# Every field SPEC section 8 pins on a user answer, plus `phone_verified` (section 13).
USER_FIELDS = {
    "id",
    "username",
    "email",
    "phone",
    "phone_verified",
    "first_name",
    "last_name",
    "category",
    "is_active",
    "email_verified",
    "organizations",
    "avatar_url",
    "invite_code",
    "created_at",
    "updated_at",
}
ROOMY = "sms_request_phone=5/86400,sms_request_ip=50/86400,sms_verify_ip=50/86400"  # a few codes per phone


async def sms_login(api: Api, services: Any, e164: str, seen: set[Path]) -> dict[str, Any]:
    """The profile reached by logging in with a code texted to `e164`."""
    code = await request_code(api, services, e164, e164, seen)
    answer = await api.post(VERIFY, {"phone": e164, "code": code})
    assert answer.status == 200, answer.json
    return (await api.get(ME, token=answer.json["access_token"])).json


@pytest.mark.parametrize("settings", [ROOMY], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_a_phone_someone_else_typed_in_never_reaches_their_account(api: Api, app: Any, services: Any) -> None:
    """The review's steps: an attacker binds the victim's number; the victim's SMS log-in must not land there."""
    _, victim_phone = new_phone()
    seen: set[Path] = set()
    attacker = await make_user(app)
    attacker_token = await login(app, attacker)
    bound = await api.patch(ME, {"phone": victim_phone}, token=attacker_token)
    assert bound.status == 202 and bound.json["phone"] is None and bound.json["phone_verified"] is False
    await wait_for_code(services.outbox_dir, victim_phone, seen)  # the code went to the victim's phone, not to them
    guessed = await api.post(PHONE_VERIFY, {"code": "000000"}, token=attacker_token)
    assert guessed.status == 400 and guessed.error_code == "invalid_code"
    refused = await api.post("/api/v1/auth/login", {"login": victim_phone, "password": PASSWORD})
    assert refused.status == 401
    # a registration may give the number too (unverified): it blocks nobody and logs nobody in
    squatter = {
        "username": f"sq{uuid.uuid4().hex[:8]}",
        "email": f"sq{uuid.uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
        "phone": victim_phone,
    }
    registered = await api.post("/api/v1/auth/register", squatter)
    assert registered.status == 201 and registered.json["phone_verified"] is False

    victim = await sms_login(api, services, victim_phone, seen)
    assert victim["id"] not in (str(attacker["_id"]), registered.json["id"])
    assert victim["phone"] == victim_phone and victim["phone_verified"] is True
    assert set(victim) >= USER_FIELDS
    # the owner took the number: the squatter lost it, and the attacker's stale code is useless
    squatter_token = await login(app, await app.settings["services"].identity.users.get(registered.json["id"]))
    assert (await api.get(ME, token=squatter_token)).json["phone"] is None
    assert (await api.get(ME, token=attacker_token)).json["phone"] is None
    assert (await sms_login(api, services, victim_phone, seen))["id"] == victim["id"]


@pytest.mark.parametrize("settings", [ROOMY], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_a_new_phone_is_set_by_the_texted_code(api: Api, app: Any, services: Any) -> None:
    _, old_phone = new_phone()
    _, new = new_phone()
    seen: set[Path] = set()
    user = await make_user(app, "MANAGER", phone=old_phone)
    token = await login(app, user)
    assert (await api.get(ME, token=token)).json["phone_verified"] is True
    # other fields apply at once; the phone waits for its code
    asked = await api.patch(ME, {"phone": new, "first_name": "Anna"}, token=token)
    assert asked.status == 202 and asked.json["first_name"] == "Anna"
    assert asked.json["phone"] == old_phone and asked.json["phone_verified"] is True
    code = await wait_for_code(services.outbox_dir, new, seen)
    wrong_answer = await api.post(PHONE_VERIFY, {"code": wrong(code)}, token=token)
    assert wrong_answer.status == 400 and wrong_answer.json["error"]["details"]["attempts_left"] == 4
    assert (await api.post(PHONE_VERIFY, {"code": "12"}, token=token)).status == 422
    verified = await api.post(PHONE_VERIFY, {"code": code}, token=token)
    assert verified.status == 200 and verified.json["phone"] == new and verified.json["phone_verified"] is True
    assert set(verified.json) >= USER_FIELDS
    assert (await api.post(PHONE_VERIFY, {"code": code}, token=token)).status == 400  # used once
    by_phone = await api.post("/api/v1/auth/login", {"login": new, "password": PASSWORD})
    assert by_phone.status == 200
    assert (await sms_login(api, services, new, seen))["id"] == str(user["_id"])
    # the number is now this account's: another account cannot even ask for a code to it
    other = await login(app, await make_user(app))
    taken = await api.patch(ME, {"phone": new}, token=other)
    assert taken.status == 409 and taken.error_code == "phone_taken"
    # removing the phone needs no code
    removed = await api.patch(ME, {"phone": None}, token=token)
    assert removed.status == 200 and removed.json["phone"] is None and removed.json["phone_verified"] is False
    assert (await api.post(PHONE_VERIFY, {"code": code}, token=await login(app, user))).status == 400


def legacy_user(name: str, email: str | None, phone: str | None) -> dict[str, Any]:
    """A user document as stored before phones were verified (no `phone_verified`)."""
    return {
        "username": name,
        "username_lower": name,
        "email": email,
        "email_lower": email,
        "phone": phone,
        "invite_code": name.upper(),
    }


@pytest.mark.gen_test(timeout=60)
async def test_phones_stored_before_verification_are_upgraded_at_start(app: Any) -> None:
    """SMS-made (phone-only) accounts keep their number; a phone typed into a profile must be proven again."""
    db = app.settings["services"].db.client[f"legacy_{uuid.uuid4().hex[:8]}"]
    await db.users.create_index(
        "phone", unique=True, name="phone_unique", partialFilterExpression={"phone": {"$type": "string"}}
    )
    by_sms, typed_in = new_phone()[1], new_phone()[1]
    await db.users.insert_many(
        [
            legacy_user("by_sms", None, by_sms),
            legacy_user("typed", "t@example.com", typed_in),
            legacy_user("none", "n@example.com", None),
        ]
    )
    await ensure_indexes(db)
    await ensure_indexes(db)  # idempotent
    stored = {doc["username"]: doc["phone_verified"] async for doc in db.users.find()}
    assert stored == {"by_sms": True, "typed": False, "none": False}
    assert "phone_unique" not in await db.users.index_information()
    # the typed-in number no longer blocks its owner
    await db.users.insert_one({**legacy_user("owner", None, typed_in), "phone_verified": True})
    await app.settings["services"].db.client.drop_database(db.name)


@pytest.mark.parametrize("settings", [ROOMY], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_two_accounts_verifying_one_number_at_once_one_wins(api: Api, app: Any, services: Any) -> None:
    _, phone = new_phone()
    seen: set[Path] = set()
    tokens, codes = [], []
    for _ in range(2):
        token = await login(app, await make_user(app))
        assert (await api.patch(ME, {"phone": phone}, token=token)).status == 202
        tokens.append(token)
        codes.append(await wait_for_code(services.outbox_dir, phone, seen))
    answers = await asyncio.gather(
        *(api.post(PHONE_VERIFY, {"code": code}, token=token) for token, code in zip(tokens, codes, strict=False))
    )
    assert sorted(answer.status for answer in answers) == [200, 409]
    loser = next(answer for answer in answers if answer.status == 409)
    assert loser.error_code == "phone_taken"
    winner = next(answer for answer in answers if answer.status == 200).json
    users = app.settings["services"].db["users"]
    holders = [doc async for doc in users.find({"phone": phone, "phone_verified": True})]
    assert [str(doc["_id"]) for doc in holders] == [winner["id"]]
