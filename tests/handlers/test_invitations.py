"""Nobody is pulled into an organization (SPEC section 13): managers invite, the invitee accepts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.timeutil import utcnow
from tests.support.factories import login, make_user
from tests.support.helpers import Api
from tests.support.org_world import World, make_world, member_ids

API = "/api/v1"
SHAPE = {"id", "organization", "user_id", "email", "phone", "status", "created_at", "expires_at", "responded_at"}


async def invite(api: Api, world: World, who: dict[str, Any], manager: str = "manager_a") -> Any:
    org = world.org_a if manager == "manager_a" else world.org_b
    return await api.post(f"{API}/organizations/{org['_id']}/invitations", who, token=world.tokens[manager])


async def my_invitations(api: Api, token: str) -> list[dict[str, Any]]:
    answer = await api.get(f"{API}/users/me/invitations", token=token)
    assert answer.status == 200 and set(answer.json) == {"items", "total", "limit", "offset"}
    return answer.json["items"]


@pytest.mark.gen_test(timeout=60)
async def test_a_manager_cannot_pull_another_fleets_driver_in_and_reads_nothing_until_they_accept(
    app: Any, api: Api
) -> None:
    world = await make_world(app)
    a, victim, manager = str(world.org_a["_id"]), world.id("driver_b"), world.tokens["manager_a"]
    pulled = await api.post(f"{API}/organizations/{a}/members/{victim}", token=manager)
    assert pulled.status == 403 and pulled.error_code == "invitation_required"
    patched = await api.patch(
        f"{API}/users/{world.id('driver_a')}", {"organizations": [a, str(world.org_b["_id"])]}, token=manager
    )
    assert patched.status == 403
    assert (await api.get(f"{API}/users/{victim}", token=manager)).status == 404

    invited = await invite(api, world, {"user_id": victim})
    assert invited.status == 201 and set(invited.json) == SHAPE and invited.json["status"] == "pending"
    assert invited.json["organization"] == {"id": a, "name": "Alpha Towing"}
    assert (await api.get(f"{API}/users/{victim}", token=manager)).status == 404, "an invitation is not consent"
    assert victim not in {u["id"] for u in (await api.get(f"{API}/users", token=manager)).json["items"]}
    pending = (await api.get(f"{API}/organizations/{a}/invitations", token=manager)).json
    assert pending["total"] == 1 and pending["items"][0]["id"] == invited.json["id"]

    mine = await my_invitations(api, world.tokens["driver_b"])
    assert [i["id"] for i in mine] == [invited.json["id"]] and mine[0]["organization"]["name"] == "Alpha Towing"
    assert await my_invitations(api, world.tokens["driver_a"]) == []
    stolen = await api.post(f"{API}/users/me/invitations/{invited.json['id']}/accept", token=world.tokens["client"])
    assert stolen.status == 404, "only the invitee answers an invitation"

    accepted = await api.post(f"{API}/users/me/invitations/{invited.json['id']}/accept", token=world.tokens["driver_b"])
    assert accepted.status == 200 and accepted.json["status"] == "accepted" and accepted.json["responded_at"]
    me = (await api.get(f"{API}/users/me", token=world.tokens["driver_b"])).json
    assert {o["name"] for o in me["organizations"]} == {"Alpha Towing", "Bravo Recovery"}
    seen = await api.get(f"{API}/users/{victim}", token=manager)
    assert seen.status == 200 and seen.json["email"] == world.users["driver_b"]["email"]
    assert (await api.get(f"{API}/organizations/{a}/invitations", token=manager)).json["total"] == 0
    assert await my_invitations(api, world.tokens["driver_b"]) == []
    again = await api.post(f"{API}/users/me/invitations/{invited.json['id']}/accept", token=world.tokens["driver_b"])
    assert again.status == 409 and again.error_code == "invitation_not_open"
    assert again.json["error"]["details"] == {"status": "accepted"}

    notes = (await api.get(f"{API}/notifications", token=manager)).json["items"]
    joined = [n for n in notes if n["event"] == "member_joined"]
    assert len(joined) == 1 and joined[0]["type"] == "organization" and "Alpha Towing" in joined[0]["body"]
    assert joined[0]["data"] == {"organization": a, "user_id": victim}


@pytest.mark.gen_test(timeout=60)
async def test_the_answer_is_the_same_whoever_the_id_email_or_phone_belongs_to(app: Any, api: Api) -> None:
    world = await make_world(app)
    known = world.users["client"]
    answers = [
        await invite(api, world, who)
        for who in (
            {"user_id": str(known["_id"])},
            {"user_id": str(ObjectId())},
            {"email": known["email"]},
            {"email": f"nobody_{uuid.uuid4().hex[:6]}@example.com"},
            {"phone": "+4915123450001"},
            {"phone": "015123450002", "region": "DE"},
        )
    ]
    assert [a.status for a in answers] == [201] * 6
    assert all(set(a.json) == SHAPE and a.json["status"] == "pending" for a in answers)
    assert answers[5].json["phone"] == "+4915123450002", "phones are stored as E.164"
    assert answers[2].json["email"] == known["email"]
    listed = await api.get(f"{API}/organizations/{world.org_a['_id']}/invitations", token=world.tokens["manager_a"])
    assert listed.json["total"] == 6


@pytest.mark.gen_test(timeout=60)
async def test_a_second_invitation_returns_the_pending_one(app: Any, api: Api) -> None:
    world = await make_world(app)
    first = await invite(api, world, {"user_id": world.id("loner")})
    second = await invite(api, world, {"user_id": world.id("loner")})
    assert second.status == 201 and second.json["id"] == first.json["id"]
    raced = await asyncio.gather(*(invite(api, world, {"email": "Race@Example.com"}) for _ in range(5)))
    assert len({r.json["id"] for r in raced}) == 1, "concurrent invitations of one address make one"
    same = await invite(api, world, {"email": "race@example.COM"})
    assert same.json["id"] == raced[0].json["id"], "an address is matched in any letter case"
    other_org = await invite(api, world, {"user_id": world.id("loner")}, manager="manager_b")
    assert other_org.json["id"] != first.json["id"]
    assert len(await my_invitations(api, world.tokens["loner"])) == 2
    declined = await api.post(f"{API}/users/me/invitations/{first.json['id']}/decline", token=world.tokens["loner"])
    assert declined.status == 200 and declined.json["status"] == "declined"
    fresh = await invite(api, world, {"user_id": world.id("loner")})
    assert fresh.status == 201 and fresh.json["id"] != first.json["id"], "after an answer, a new invitation"


@pytest.mark.gen_test(timeout=60)
async def test_email_and_phone_invitations_reach_the_verified_owner_also_after_registration(app: Any, api: Api) -> None:
    world = await make_world(app)
    email = f"later_{uuid.uuid4().hex[:6]}@example.com"
    by_email = await invite(api, world, {"email": email.upper()})
    newcomer = await make_user(app, "DRIVER", email=email)
    token = await login(app, newcomer)
    assert [i["id"] for i in await my_invitations(api, token)] == [by_email.json["id"]]
    unverified = await make_user(app, "DRIVER", verified=False)
    unverified_invite = await invite(api, world, {"email": unverified["email"]})
    assert await my_invitations(api, await login(app, unverified)) == [], "an address counts once verified"
    refused = await api.post(
        f"{API}/users/me/invitations/{unverified_invite.json['id']}/accept", token=await login(app, unverified)
    )
    assert refused.status == 404

    phone = "+4915123459876"
    by_phone = await invite(api, world, {"phone": phone})
    holder = await make_user(app, "BASE", phone=phone)
    users = app.settings["services"].identity.users
    await users.update(holder["_id"], {"phone_verified": False})  # typed in, not proved
    holder_token = await login(app, holder)
    assert await my_invitations(api, holder_token) == [], "an unverified phone does not count"
    await app.settings["services"].identity.users.update(holder["_id"], {"phone_verified": True})
    assert [i["id"] for i in await my_invitations(api, holder_token)] == [by_phone.json["id"]]
    joined = await api.post(f"{API}/users/me/invitations/{by_phone.json['id']}/accept", token=holder_token)
    assert joined.status == 200
    members = (await api.get(f"{API}/organizations/{world.org_a['_id']}", token=world.tokens["manager_a"])).json
    assert str(holder["_id"]) in member_ids(members)


@pytest.mark.gen_test(timeout=60)
async def test_revoked_declined_and_lapsed_invitations_cannot_be_accepted(app: Any, api: Api, sync_db: Any) -> None:
    world = await make_world(app)
    a, loner = world.org_a["_id"], world.tokens["loner"]
    revoked = (await invite(api, world, {"user_id": world.id("loner")})).json
    foreign = await api.delete(f"{API}/organizations/{a}/invitations/{revoked['id']}", token=world.tokens["manager_b"])
    assert foreign.status == 404
    gone = await api.delete(f"{API}/organizations/{a}/invitations/{revoked['id']}", token=world.tokens["manager_a"])
    assert gone.status == 204
    twice = await api.delete(f"{API}/organizations/{a}/invitations/{revoked['id']}", token=world.tokens["manager_a"])
    assert twice.status == 404
    assert await my_invitations(api, loner) == []
    late = await api.post(f"{API}/users/me/invitations/{revoked['id']}/accept", token=loner)
    assert late.status == 409 and late.json["error"]["details"] == {"status": "revoked"}

    lapsed = (await invite(api, world, {"user_id": world.id("loner")})).json
    sync_db["invitations"].update_one(
        {"_id": ObjectId(lapsed["id"])}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    assert await my_invitations(api, loner) == []
    expired = await api.post(f"{API}/users/me/invitations/{lapsed['id']}/accept", token=loner)
    assert expired.status == 409 and expired.json["error"]["details"] == {"status": "expired"}
    renewed = await invite(api, world, {"user_id": world.id("loner")})
    assert renewed.json["id"] != lapsed["id"] and renewed.json["status"] == "pending"
    me = (await api.get(f"{API}/users/me", token=loner)).json
    assert me["organizations"] == []


@pytest.mark.gen_test(timeout=60)
async def test_invitation_requests_are_checked(app: Any, api: Api) -> None:
    world = await make_world(app)
    a, b = world.org_a["_id"], world.org_b["_id"]
    for body in (
        {},
        {"user_id": world.id("loner"), "email": "x@example.com"},
        {"email": ""},
        {"user_id": "nope"},
        {"phone": "12345"},
        {"email": "not-an-address"},
    ):
        answer = await invite(api, world, body)
        assert answer.status == 422, body
    for role in ("client", "driver_a"):
        for method, path in (
            ("GET", f"{API}/organizations/{a}/invitations"),
            ("POST", f"{API}/organizations/{a}/invitations"),
        ):
            denied = await api.request(
                method, path, {"user_id": world.id("loner")} if method == "POST" else None, token=world.tokens[role]
            )
            assert denied.status == 403, (role, method)
    foreign = await api.post(
        f"{API}/organizations/{b}/invitations", {"user_id": world.id("loner")}, token=world.tokens["manager_a"]
    )
    assert foreign.status == 404
    assert (await api.get(f"{API}/organizations/{b}/invitations", token=world.tokens["manager_a"])).status == 404
    assert (await api.get(f"{API}/users/me/invitations")).status == 401
    bad = await api.post(f"{API}/users/me/invitations/xyz/accept", token=world.tokens["loner"])
    assert bad.status == 400 and bad.error_code == "invalid_id"
    nothing = await api.post(f"{API}/users/me/invitations/{ObjectId()}/decline", token=world.tokens["loner"])
    assert nothing.status == 404
    by_admin = await api.post(
        f"{API}/organizations/{b}/invitations", {"user_id": world.id("loner")}, token=world.tokens["admin"]
    )
    assert by_admin.status == 201
    direct = await api.post(f"{API}/organizations/{b}/members/{world.id('client')}", token=world.tokens["admin"])
    assert direct.status == 200 and world.id("client") in member_ids(direct.json), "ADMINs still add directly"


def registration(**extra: Any) -> dict[str, Any]:
    name = f"u{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery", **extra}


@pytest.mark.gen_test(timeout=60)
async def test_drivers_and_clients_who_register_with_the_organizations_code_join_it(app: Any, api: Api) -> None:
    world = await make_world(app)
    a = str(world.org_a["_id"])
    created = await api.post(f"{API}/organizations", {"name": "Delta Tow"}, token=world.tokens["manager_a"])
    assert len(created.json["invite_code"]) == 10
    fresh = await api.post(f"{API}/organizations/{a}/invite-code", token=world.tokens["manager_a"])
    code = fresh.json["invite_code"]
    assert fresh.status == 200 and len(code) == 10
    assert (await api.get(f"{API}/organizations/{a}", token=world.tokens["admin"])).json["invite_code"] == code
    for role in ("driver_a", "client"):
        shown = await api.get(f"{API}/organizations/{a}", token=world.tokens[role])
        assert "invite_code" not in shown.json, role
    assert (await api.post(f"{API}/organizations/{a}/invite-code", token=world.tokens["manager_b"])).status == 404
    assert (await api.post(f"{API}/organizations/{a}/invite-code", token=world.tokens["driver_a"])).status == 403

    driver = await api.post(f"{API}/auth/register", registration(category="DRIVER", invite_code=code.lower()))
    assert driver.status == 201 and driver.json["organizations"] == [{"id": a, "name": "Alpha Towing"}]
    assert driver.json["invited_by"] is None
    manager = await api.post(f"{API}/auth/register", registration(category="MANAGER", invite_code=code))
    assert manager.status == 422 and "invite_code" in manager.json["error"]["details"]

    rotated = (await api.post(f"{API}/organizations/{a}/invite-code", token=world.tokens["manager_a"])).json
    assert rotated["invite_code"] != code
    stale = await api.post(f"{API}/auth/register", registration(category="BASE", invite_code=code))
    assert stale.status == 422 and "invite_code" in stale.json["error"]["details"]
    client = await api.post(f"{API}/auth/register", registration(invite_code=rotated["invite_code"]))
    assert client.status == 201 and [o["id"] for o in client.json["organizations"]] == [a]
    members = (await api.get(f"{API}/organizations/{a}", token=world.tokens["manager_a"])).json
    assert {driver.json["id"], client.json["id"]} <= member_ids(members)
