"""Organizations: the SPEC section 4 "organizations" row for every role, members, uniqueness."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.factories import make_org
from tests.support.helpers import Api
from tests.support.org_world import make_world, member_ids

API = "/api/v1"


def names(answer: Any) -> list[str]:
    return [item["name"] for item in answer.json["items"]]


@pytest.mark.gen_test(timeout=60)
async def test_list_is_scoped_by_role(app: Any, api: Api) -> None:
    world = await make_world(app)
    client = await api.get(f"{API}/organizations", token=world.tokens["client"])
    assert client.status == 200 and names(client) == ["Alpha Towing", "Bravo Recovery"]
    assert all("members" not in item for item in client.json["items"]), "clients see public cards only"
    for role, seen in (
        ("driver_a", ["Alpha Towing"]),
        ("manager_b", ["Bravo Recovery"]),
        ("loner", []),
        ("admin", ["Alpha Towing", "Bravo Recovery"]),
    ):
        answer = await api.get(f"{API}/organizations", token=world.tokens[role])
        assert answer.status == 200 and names(answer) == seen, role
        assert answer.json["total"] == len(seen)
    admin = (await api.get(f"{API}/organizations", token=world.tokens["admin"])).json["items"]
    assert member_ids(admin[0]) == {world.id("manager_a"), world.id("driver_a")}
    assert admin[0]["member_count"] == 2 and admin[0]["created_at"].endswith("Z")
    member = admin[0]["members"][0]
    assert set(member) == {"id", "username", "first_name", "last_name", "category"}, "no emails or phones"
    assert (await api.get(f"{API}/organizations")).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_list_pages(app: Any, api: Api) -> None:
    world = await make_world(app)
    await make_org(app, "Charlie Cargo")
    first = await api.get(f"{API}/organizations?limit=2", token=world.tokens["admin"])
    assert first.json["total"] == 3 and first.json["limit"] == 2 and first.json["offset"] == 0
    second = await api.get(f"{API}/organizations?limit=2&offset=2", token=world.tokens["admin"])
    assert names(first) + names(second) == ["Alpha Towing", "Bravo Recovery", "Charlie Cargo"]
    bad = await api.get(f"{API}/organizations?limit=500", token=world.tokens["admin"])
    assert bad.status == 422 and "limit" in bad.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_read_one_is_scoped_by_role(app: Any, api: Api) -> None:
    world = await make_world(app)
    a, b = str(world.org_a["_id"]), str(world.org_b["_id"])
    card = await api.get(f"{API}/organizations/{a}", token=world.tokens["client"])
    assert card.status == 200 and card.json["name"] == "Alpha Towing" and "members" not in card.json
    own = await api.get(f"{API}/organizations/{a}", token=world.tokens["driver_a"])
    assert own.status == 200 and member_ids(own.json) == {world.id("manager_a"), world.id("driver_a")}
    for role in ("driver_a", "manager_a", "loner"):
        other = await api.get(f"{API}/organizations/{b}", token=world.tokens[role])
        assert other.status == 404 and other.error_code == "not_found", role
    admin = await api.get(f"{API}/organizations/{b}", token=world.tokens["admin"])
    assert admin.status == 200 and member_ids(admin.json) == {world.id("manager_b"), world.id("driver_b")}
    assert (await api.get(f"{API}/organizations/nope", token=world.tokens["admin"])).error_code == "invalid_id"
    gone = await api.get(f"{API}/organizations/{'0' * 24}", token=world.tokens["admin"])
    assert gone.status == 404


@pytest.mark.gen_test(timeout=60)
async def test_create_by_role_and_unique_names(app: Any, api: Api) -> None:
    world = await make_world(app)
    for role in ("client", "driver_a"):
        denied = await api.post(f"{API}/organizations", {"name": "Mine"}, token=world.tokens[role])
        assert denied.status == 403 and denied.error_code == "forbidden", role
    created = await api.post(
        f"{API}/organizations", {"name": "Delta Tow", "description": "Night shifts"}, token=world.tokens["manager_a"]
    )
    assert created.status == 201
    org = created.json
    assert org["name"] == "Delta Tow" and org["description"] == "Night shifts"
    assert member_ids(org) == {world.id("manager_a")}, "the creating manager becomes a member"
    me = await api.get(f"{API}/users/me", token=world.tokens["manager_a"])
    assert {o["name"] for o in me.json["organizations"]} == {"Alpha Towing", "Delta Tow"}
    listed = await api.get(f"{API}/organizations", token=world.tokens["manager_a"])
    assert names(listed) == ["Alpha Towing", "Delta Tow"]
    taken = await api.post(f"{API}/organizations", {"name": "  delta TOW "}, token=world.tokens["admin"])
    assert taken.status == 409 and taken.error_code == "organization_name_taken"
    by_admin = await api.post(f"{API}/organizations", {"name": "Echo"}, token=world.tokens["admin"])
    assert by_admin.status == 201 and by_admin.json["members"] == [] and by_admin.json["description"] == ""
    blank = await api.post(f"{API}/organizations", {"name": "   "}, token=world.tokens["admin"])
    assert blank.status == 422 and "name" in blank.json["error"]["details"]
    missing = await api.post(f"{API}/organizations", {}, token=world.tokens["admin"])
    assert missing.status == 422 and "name" in missing.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_edit_by_role(app: Any, api: Api) -> None:
    world = await make_world(app)
    a, b = str(world.org_a["_id"]), str(world.org_b["_id"])
    edited = await api.patch(f"{API}/organizations/{a}", {"description": "24/7"}, token=world.tokens["manager_a"])
    assert edited.status == 200 and edited.json["description"] == "24/7" and edited.json["name"] == "Alpha Towing"
    assert edited.json["updated_at"] >= edited.json["created_at"]
    foreign = await api.patch(f"{API}/organizations/{b}", {"name": "Mine now"}, token=world.tokens["manager_a"])
    assert foreign.status == 404
    for role in ("client", "driver_a"):
        denied = await api.patch(f"{API}/organizations/{a}", {"name": "X"}, token=world.tokens[role])
        assert denied.status == 403, role
    renamed = await api.patch(f"{API}/organizations/{b}", {"name": "Bravo Two"}, token=world.tokens["admin"])
    assert renamed.status == 200 and renamed.json["name"] == "Bravo Two"
    clash = await api.patch(f"{API}/organizations/{b}", {"name": "ALPHA towing"}, token=world.tokens["admin"])
    assert clash.status == 409 and clash.error_code == "organization_name_taken"
    unknown = await api.patch(f"{API}/organizations/{a}", {"owner": "me"}, token=world.tokens["admin"])
    assert unknown.status == 422 and "owner" in unknown.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_manager_invites_and_removes_members_of_own_org_only(app: Any, api: Api) -> None:
    world = await make_world(app)
    a, b = str(world.org_a["_id"]), str(world.org_b["_id"])
    manager = world.tokens["manager_a"]
    # a self-registered driver sees no fleet data until they join
    assert (await api.get(f"{API}/organizations/{a}", token=world.tokens["loner"])).status == 404
    direct = await api.post(f"{API}/organizations/{a}/members/{world.id('loner')}", token=manager)
    assert direct.status == 403 and direct.error_code == "invitation_required"
    invitation = await api.post(f"{API}/organizations/{a}/invitations", {"user_id": world.id("loner")}, token=manager)
    accepted = await api.post(f"{API}/users/me/invitations/{invitation.json['id']}/accept", token=world.tokens["loner"])
    assert accepted.status == 200
    seen = await api.get(f"{API}/organizations/{a}", token=world.tokens["loner"])
    assert seen.status == 200 and world.id("loner") in member_ids(seen.json)
    admin_target = await api.post(f"{API}/organizations/{a}/members/{world.id('admin')}", token=manager)
    assert admin_target.status == 403
    foreign = await api.post(f"{API}/organizations/{b}/members/{world.id('loner')}", token=manager)
    assert foreign.status == 404
    foreign_remove = await api.delete(f"{API}/organizations/{b}/members/{world.id('driver_b')}", token=manager)
    assert foreign_remove.status == 404
    removed = await api.delete(f"{API}/organizations/{a}/members/{world.id('driver_a')}", token=manager)
    assert removed.status == 200 and member_ids(removed.json) == {world.id("manager_a"), world.id("loner")}
    lost = await api.get(f"{API}/organizations/{a}", token=world.tokens["driver_a"])
    assert lost.status == 404, "a removed driver loses sight of the organization at once"
    not_member = await api.delete(f"{API}/organizations/{a}/members/{world.id('driver_a')}", token=manager)
    assert not_member.status == 404
    nobody = await api.delete(f"{API}/organizations/{a}/members/{'0' * 24}", token=manager)
    assert nobody.status == 404
    bad = await api.delete(f"{API}/organizations/{a}/members/xyz", token=manager)
    assert bad.status == 400 and bad.error_code == "invalid_id"


@pytest.mark.gen_test(timeout=60)
async def test_members_endpoints_refused_to_clients_and_drivers(app: Any, api: Api) -> None:
    world = await make_world(app)
    a = str(world.org_a["_id"])
    for role in ("client", "driver_a"):
        add = await api.post(f"{API}/organizations/{a}/members/{world.id('loner')}", token=world.tokens[role])
        remove = await api.delete(f"{API}/organizations/{a}/members/{world.id('driver_a')}", token=world.tokens[role])
        assert add.status == 403 and remove.status == 403, role
    members = (await api.get(f"{API}/organizations/{a}", token=world.tokens["admin"])).json["members"]
    assert {m["id"] for m in members} == {world.id("manager_a"), world.id("driver_a")}


@pytest.mark.gen_test(timeout=60)
async def test_admin_manages_members_anywhere(app: Any, api: Api) -> None:
    world = await make_world(app)
    b = str(world.org_b["_id"])
    admin = world.tokens["admin"]
    added = await api.post(f"{API}/organizations/{b}/members/{world.id('admin')}", token=admin)
    assert added.status == 200 and world.id("admin") in member_ids(added.json)
    moved = await api.post(f"{API}/organizations/{b}/members/{world.id('driver_a')}", token=admin)
    assert world.id("driver_a") in member_ids(moved.json)
    driver = await api.get(f"{API}/users/me", token=world.tokens["driver_a"])
    assert {o["name"] for o in driver.json["organizations"]} == {"Alpha Towing", "Bravo Recovery"}
    removed = await api.delete(f"{API}/organizations/{b}/members/{world.id('manager_b')}", token=admin)
    assert removed.status == 200 and world.id("manager_b") not in member_ids(removed.json)
    gone = await api.get(f"{API}/organizations/{b}", token=world.tokens["manager_b"])
    assert gone.status == 404
