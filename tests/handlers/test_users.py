"""Users administration: the SPEC section 4 users rows for every role, filters, pages, invite codes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.factories import PASSWORD, login, make_org, make_user
from tests.support.helpers import Api
from tests.support.org_world import make_world

API = "/api/v1"


def ids(answer: Any) -> set[str]:
    return {item["id"] for item in answer.json["items"]}


# --- list and read -----------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_clients_and_drivers_may_not_list_or_read_users(app: Any, api: Api) -> None:
    world = await make_world(app)
    for role in ("client", "driver_a"):
        listed = await api.get(f"{API}/users", token=world.tokens[role])
        assert listed.status == 403 and listed.error_code == "forbidden", role
        one = await api.get(f"{API}/users/{world.id('manager_a')}", token=world.tokens[role])
        assert one.status == 403, role
    assert (await api.get(f"{API}/users")).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_manager_sees_only_members_of_own_orgs(app: Any, api: Api) -> None:
    world = await make_world(app)
    listed = await api.get(f"{API}/users", token=world.tokens["manager_a"])
    assert listed.status == 200
    assert ids(listed) == {world.id("manager_a"), world.id("driver_a")}
    assert listed.json["total"] == 2 and listed.json["limit"] == 50 and listed.json["offset"] == 0
    driver = next(item for item in listed.json["items"] if item["id"] == world.id("driver_a"))
    assert driver["organizations"] == [{"id": str(world.org_a["_id"]), "name": "Alpha Towing"}]
    assert "password_hash" not in driver and "username_lower" not in driver
    assert driver["rating"] is None, "drivers show their rating"
    one = await api.get(f"{API}/users/{world.id('driver_a')}", token=world.tokens["manager_a"])
    assert one.status == 200 and one.json["organizations"][0]["name"] == "Alpha Towing"
    for outsider in ("driver_b", "manager_b", "client", "admin", "loner"):
        hidden = await api.get(f"{API}/users/{world.id(outsider)}", token=world.tokens["manager_a"])
        assert hidden.status == 404 and hidden.error_code == "not_found", outsider
    foreign = await api.get(f"{API}/users?organization={world.org_b['_id']}", token=world.tokens["manager_a"])
    assert foreign.status == 200 and foreign.json["items"] == [] and foreign.json["total"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_manager_without_organization_sees_only_self(app: Any, api: Api) -> None:
    world = await make_world(app)
    fresh = await make_user(app, "MANAGER")
    token = await login(app, fresh)
    listed = await api.get(f"{API}/users", token=token)
    assert listed.status == 200 and listed.json["items"] == []
    assert (await api.get(f"{API}/users/{fresh['_id']}", token=token)).status == 200
    assert (await api.get(f"{API}/users/{world.id('driver_a')}", token=token)).status == 404


@pytest.mark.gen_test(timeout=60)
async def test_admin_sees_everyone(app: Any, api: Api) -> None:
    world = await make_world(app)
    listed = await api.get(f"{API}/users", token=world.tokens["admin"])
    assert ids(listed) == {world.id(name) for name in world.users}
    one = await api.get(f"{API}/users/{world.id('driver_b')}", token=world.tokens["admin"])
    assert one.status == 200 and one.json["username"] == world.users["driver_b"]["username"]
    assert one.json["organizations"] == [{"id": str(world.org_b["_id"]), "name": "Bravo Recovery"}]
    assert (await api.get(f"{API}/users/{'0' * 24}", token=world.tokens["admin"])).status == 404
    bad = await api.get(f"{API}/users/not-an-id", token=world.tokens["admin"])
    assert bad.status == 400 and bad.error_code == "invalid_id"


@pytest.mark.gen_test(timeout=60)
async def test_filters(app: Any, api: Api) -> None:
    world = await make_world(app)
    org = world.org_a["_id"]
    await make_user(
        app,
        "DRIVER",
        username="ivan_petrov",
        email="IVAN.P@Tow.example",
        first_name="Иван",
        last_name="Petrov",
        phone="+79161234567",
        organizations=[org],
    )
    await make_user(app, "DRIVER", username="a_dot_star", first_name="a.b", organizations=[org])
    admin = world.tokens["admin"]

    async def found(query: str, token: str = admin) -> set[str]:
        answer = await api.get(f"{API}/users?{query}", token=token)
        assert answer.status == 200, answer.json
        return {item["username"] for item in answer.json["items"]}

    drivers = await found("category=DRIVER")
    assert world.users["driver_b"]["username"] in drivers and "ivan_petrov" in drivers
    assert world.users["manager_a"]["username"] not in drivers
    in_a = await found(f"organization={org}&category=DRIVER")
    assert in_a == {world.users["driver_a"]["username"], "ivan_petrov", "a_dot_star"}
    assert await found("q=PETROV") == {"ivan_petrov"}, "last name, any case"
    assert await found("q=tow.EXAMPLE") == {"ivan_petrov"}, "part of the email"
    assert await found("q=иван") == {"ivan_petrov"}, "first name, any case, not only ASCII"
    assert await found("q=9161234") == {"ivan_petrov"}, "part of the phone number"
    assert await found("q=.*") == set(), "the text is matched literally, not as a pattern"
    assert await found("q=a.b") == {"a_dot_star"}
    assert await found("q=(") == set()
    assert await found("q=petrov", token=world.tokens["manager_b"]) == set(), "scope applies to searches"
    bad = await api.get(f"{API}/users?category=KING&organization=zzz", token=admin)
    assert bad.status == 422 and set(bad.json["error"]["details"]) == {"category", "organization"}
    too_long = await api.get(f"{API}/users?q={'x' * 101}", token=admin)
    assert too_long.status == 422 and "q" in too_long.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_pages(app: Any, api: Api) -> None:
    world = await make_world(app)
    admin = world.tokens["admin"]
    seen: list[str] = []
    for offset in range(0, 7, 3):
        page = await api.get(f"{API}/users?limit=3&offset={offset}", token=admin)
        assert page.json["total"] == 7 and page.json["limit"] == 3 and page.json["offset"] == offset
        seen += [item["username"] for item in page.json["items"]]
    assert seen == sorted(u["username"] for u in world.users.values()), "by username, no repeats"
    assert (await api.get(f"{API}/users?limit=0", token=admin)).status == 422
    assert (await api.get(f"{API}/users?offset=-1", token=admin)).status == 422


# --- changes -------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_nobody_changes_another_users_name_phone_or_email(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    target = world.id("driver_a")
    for role in ("admin", "manager_a"):
        for change in (
            {"first_name": "X"},
            {"last_name": "Y"},
            {"phone": "+79161234567"},
            {"email": "new@example.com"},
            {"category": "DRIVER", "email": "new@example.com"},
        ):
            refused = await api.patch(f"{API}/users/{target}", change, token=world.tokens[role])
            assert refused.status == 403 and refused.error_code == "profile_fields_locked", (role, change)
    for role in ("client", "driver_b"):
        assert (await api.patch(f"{API}/users/{target}", {"first_name": "X"}, token=world.tokens[role])).status == 403
    stored = sync_db.users.find_one({"_id": world.users["driver_a"]["_id"]})
    assert stored["first_name"] == "" and stored["email"] == world.users["driver_a"]["email"]
    assert stored.get("phone") is None


@pytest.mark.gen_test(timeout=60)
async def test_admin_changes_category_and_the_new_role_applies_at_once(app: Any, api: Api) -> None:
    world = await make_world(app)
    target = world.id("manager_b")
    assert (await api.get(f"{API}/users/{world.id('driver_a')}", token=world.tokens["manager_b"])).status == 404
    promoted = await api.patch(f"{API}/users/{target}", {"category": "ADMIN"}, token=world.tokens["admin"])
    assert promoted.status == 200 and promoted.json["category"] == "ADMIN"
    # the same access token now carries ADMIN rights (the user cache was invalidated)
    assert (await api.get(f"{API}/users/{world.id('driver_a')}", token=world.tokens["manager_b"])).status == 200
    demoted = await api.patch(f"{API}/users/{target}", {"category": "BASE"}, token=world.tokens["admin"])
    assert demoted.json["category"] == "BASE"
    assert (await api.get(f"{API}/users", token=world.tokens["manager_b"])).status == 403
    bad = await api.patch(f"{API}/users/{target}", {"category": "ROOT"}, token=world.tokens["admin"])
    assert bad.status == 422 and "category" in bad.json["error"]["details"]
    own = await api.patch(f"{API}/users/{world.id('admin')}", {"category": "BASE"}, token=world.tokens["admin"])
    assert own.status == 403 and own.error_code == "own_account"


@pytest.mark.gen_test(timeout=60)
async def test_deactivation_ends_the_targets_access_at_once(app: Any, api: Api) -> None:
    world = await make_world(app)
    victim = world.users["driver_a"]
    pair = await app.settings["services"].identity.open_session(victim, "127.0.0.1", "phone")
    assert (await api.get(f"{API}/users/me", token=pair["access_token"])).status == 200
    off = await api.patch(f"{API}/users/{victim['_id']}", {"is_active": False}, token=world.tokens["admin"])
    assert off.status == 200 and off.json["is_active"] is False
    for token in (pair["access_token"], world.tokens["driver_a"]):
        assert (await api.get(f"{API}/users/me", token=token)).status == 401
    refresh = await api.post(f"{API}/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert refresh.status == 401
    relogin = await api.post(f"{API}/auth/login", {"login": victim["username"], "password": PASSWORD})
    assert relogin.status == 403 and relogin.error_code == "account_inactive"
    on = await api.patch(f"{API}/users/{victim['_id']}", {"is_active": True}, token=world.tokens["admin"])
    assert on.json["is_active"] is True
    again = await api.post(f"{API}/auth/login", {"login": victim["username"], "password": PASSWORD})
    assert again.status == 200
    self_off = await api.patch(f"{API}/users/{world.id('admin')}", {"is_active": False}, token=world.tokens["admin"])
    assert self_off.status == 403 and self_off.error_code == "own_account"


@pytest.mark.gen_test(timeout=60)
async def test_an_admin_ends_every_session_of_a_user_who_stays_active(app: Any, api: Api) -> None:
    world = await make_world(app)
    victim = world.users["driver_a"]
    pair = await app.settings["services"].identity.open_session(victim, "127.0.0.1", "phone")
    url = f"{API}/users/{victim['_id']}/sessions"
    for role in ("manager_a", "driver_a"):
        refused = await api.delete(url, token=world.tokens[role])
        assert refused.status == 403, role
    assert (await api.get(f"{API}/users/me", token=pair["access_token"])).status == 200
    ended = await api.delete(url, token=world.tokens["admin"])
    assert ended.status == 204
    for token in (pair["access_token"], world.tokens["driver_a"]):
        assert (await api.get(f"{API}/users/me", token=token)).status == 401
    assert (await api.post(f"{API}/auth/refresh", {"refresh_token": pair["refresh_token"]})).status == 401
    again = await api.post(f"{API}/auth/login", {"login": victim["username"], "password": PASSWORD})
    assert again.status == 200  # still active: they sign in again
    missing = await api.delete(f"{API}/users/6b0000000000000000000000/sessions", token=world.tokens["admin"])
    assert missing.status == 404


@pytest.mark.gen_test(timeout=60)
async def test_admin_sets_organizations(app: Any, api: Api) -> None:
    world = await make_world(app)
    a, b = str(world.org_a["_id"]), str(world.org_b["_id"])
    moved = await api.patch(
        f"{API}/users/{world.id('loner')}", {"organizations": [b, a, b]}, token=world.tokens["admin"]
    )
    assert moved.status == 200
    assert moved.json["organizations"] == [{"id": b, "name": "Bravo Recovery"}, {"id": a, "name": "Alpha Towing"}]
    assert world.id("loner") in ids(await api.get(f"{API}/users", token=world.tokens["manager_b"]))
    unknown = await api.patch(
        f"{API}/users/{world.id('loner')}", {"organizations": ["0" * 24]}, token=world.tokens["admin"]
    )
    assert unknown.status == 422 and "organizations" in unknown.json["error"]["details"]
    malformed = await api.patch(
        f"{API}/users/{world.id('loner')}", {"organizations": ["x"]}, token=world.tokens["admin"]
    )
    assert malformed.status == 422
    password = await api.patch(
        f"{API}/users/{world.id('loner')}", {"password": "whatever-123"}, token=world.tokens["admin"]
    )
    assert password.status == 422 and "password" in password.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_manager_changes_only_own_organizations_of_non_admins(app: Any, api: Api) -> None:
    world = await make_world(app)
    a, b = world.org_a["_id"], world.org_b["_id"]
    org_c = await make_org(app, "Charlie Cargo")
    c = org_c["_id"]
    boss = await make_user(app, "MANAGER", organizations=[a, c])
    token = await login(app, boss)
    driver = world.id("driver_a")
    added = await api.patch(f"{API}/users/{driver}", {"organizations": [str(a), str(c)]}, token=token)
    assert added.status == 403 and added.error_code == "invitation_required", "adding is by invitation only"
    # the driver joins C by accepting an invitation instead
    invitation = await api.post(f"{API}/organizations/{c}/invitations", {"user_id": driver}, token=token)
    await api.post(
        f"{API}/users/me/invitations/{invitation.json['id']}/accept", token=await login(app, world.users["driver_a"])
    )
    outside = await api.patch(f"{API}/users/{driver}", {"organizations": [str(a), str(b)]}, token=token)
    assert outside.status == 403 and outside.error_code == "organization_out_of_scope"
    for change in ({"category": "MANAGER"}, {"is_active": False}):
        refused = await api.patch(f"{API}/users/{driver}", change, token=token)
        assert refused.status == 403 and refused.error_code == "field_forbidden", change
    hidden = await api.patch(f"{API}/users/{world.id('driver_b')}", {"organizations": [str(a)]}, token=token)
    assert hidden.status == 404
    # a user in both A and B: the manager of A removes A and B stays
    both = await make_user(app, "DRIVER", organizations=[a, b])
    kept = await api.patch(f"{API}/users/{both['_id']}", {"organizations": [str(b)]}, token=token)
    assert kept.status == 200 and [o["name"] for o in kept.json["organizations"]] == ["Bravo Recovery"]
    admin_in_a = await make_user(app, "ADMIN", organizations=[a, c])
    refused = await api.patch(f"{API}/users/{admin_in_a['_id']}", {"organizations": [str(a)]}, token=token)
    assert refused.status == 403 and refused.error_code == "admin_out_of_reach"
    for role in ("client", "driver_a"):
        assert (await api.patch(f"{API}/users/{driver}", {"organizations": []}, token=world.tokens[role])).status == 403


# --- invite codes ----------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_apply_invite_code_once_and_list_referrals(app: Any, api: Api) -> None:
    world = await make_world(app)
    inviter = world.users["manager_a"]
    applied = await api.post(
        f"{API}/users/me/invite", {"code": inviter["invite_code"].lower()}, token=world.tokens["client"]
    )
    assert applied.status == 200 and applied.json["invited_by"] == str(inviter["_id"])
    twice = await api.post(
        f"{API}/users/me/invite", {"code": world.users["admin"]["invite_code"]}, token=world.tokens["client"]
    )
    assert twice.status == 409 and twice.error_code == "invite_already_applied"
    me = await api.get(f"{API}/users/me", token=world.tokens["client"])
    assert me.json["invited_by"] == str(inviter["_id"]), "the first code stays"
    await api.post(f"{API}/users/me/invite", {"code": inviter["invite_code"]}, token=world.tokens["driver_b"])
    referrals = await api.get(f"{API}/users/me/referrals", token=world.tokens["manager_a"])
    assert referrals.status == 200
    assert referrals.json["total"] == 2 and referrals.json["limit"] == 50 and referrals.json["offset"] == 0
    assert [r["id"] for r in referrals.json["items"]] == [world.id("client"), world.id("driver_b")], (
        "newest account first"
    )
    assert set(referrals.json["items"][0]) == {"id", "username", "first_name", "last_name", "created_at"}
    one = await api.get(f"{API}/users/me/referrals?limit=1&offset=1", token=world.tokens["manager_a"])
    assert [r["id"] for r in one.json["items"]] == [world.id("driver_b")] and one.json["total"] == 2
    none = await api.get(f"{API}/users/me/referrals", token=world.tokens["client"])
    assert none.json == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.gen_test(timeout=60)
async def test_invite_code_refusals(app: Any, api: Api) -> None:
    world = await make_world(app)
    inviter = world.users["manager_a"]
    own = await api.post(f"{API}/users/me/invite", {"code": inviter["invite_code"]}, token=world.tokens["manager_a"])
    assert own.status == 409 and own.error_code == "own_invite_code"
    unknown = await api.post(f"{API}/users/me/invite", {"code": "NOSUCH99"}, token=world.tokens["client"])
    assert unknown.status == 422 and "code" in unknown.json["error"]["details"]
    empty = await api.post(f"{API}/users/me/invite", {}, token=world.tokens["client"])
    assert empty.status == 422 and "code" in empty.json["error"]["details"]
    assert (await api.post(f"{API}/users/me/invite", {"code": inviter["invite_code"]})).status == 401
    # a code given at registration counts as the one applied
    invited = await make_user(app, "BASE", invite_code=inviter["invite_code"])
    later = await api.post(
        f"{API}/users/me/invite", {"code": world.users["admin"]["invite_code"]}, token=await login(app, invited)
    )
    assert later.status == 409 and later.error_code == "invite_already_applied"


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_invite_applies_succeed_once(app: Any, api: Api) -> None:
    world = await make_world(app)
    codes = [world.users[name]["invite_code"] for name in ("manager_a", "manager_b", "admin", "driver_b")]
    answers = await asyncio.gather(
        *(api.post(f"{API}/users/me/invite", {"code": code}, token=world.tokens["client"]) for code in codes)
    )
    assert sorted(a.status for a in answers) == [200, 409, 409, 409]
