"""Names reject control, bidi-override and zero-width characters (SPEC section 13), wherever they are set."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.factories import PASSWORD, login, make_org, make_user
from tests.support.helpers import Api

API = "/api/v1"

# Each one makes a name look like another or breaks the line it is shown on.
HIDDEN = [
    "\u202eadmin\u200b",
    "Ann\u200d",
    "\u2066Bob\u2069",
    "Eve\x00",
    "Tab\there",
    "Line\nbreak",
    "para\u2029graph",
    "\ufeffBOM",
    "soft\u00adhyphen",
]


def account(**extra: Any) -> dict[str, Any]:
    name = f"u{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **extra}


@pytest.mark.parametrize("text", HIDDEN)
@pytest.mark.gen_test(timeout=60)
async def test_registration_refuses_hidden_characters_in_names(api: Api, text: str) -> None:
    for field in ("first_name", "last_name", "username"):
        answer = await api.post(f"{API}/auth/register", account(**{field: text}))
        assert answer.status == 422, (field, text)
        assert list(answer.json["error"]["details"]) == [field]


@pytest.mark.gen_test(timeout=60)
async def test_a_trailing_newline_does_not_slip_through_the_username_pattern(api: Api) -> None:
    answer = await api.post(f"{API}/auth/register", account(username="admin\n"))
    assert answer.status == 422 and "username" in answer.json["error"]["details"]


@pytest.mark.gen_test(timeout=60)
async def test_profile_names_refuse_hidden_characters_and_keep_the_old_value(api: Api, app: Any) -> None:
    user = await make_user(app, "MANAGER", first_name="Olga", last_name="Ivanova")
    token = await login(app, user)
    for field in ("first_name", "last_name"):
        for text in HIDDEN:
            answer = await api.patch(f"{API}/users/me", {field: text}, token=token)
            assert answer.status == 422 and list(answer.json["error"]["details"]) == [field], (field, text)
    me = (await api.get(f"{API}/users/me", token=token)).json
    assert (me["first_name"], me["last_name"]) == ("Olga", "Ivanova")
    kept = await api.patch(f"{API}/users/me", {"first_name": "Zoë", "last_name": "Ōkubo-Смирнова"}, token=token)
    assert kept.status == 200 and kept.json["first_name"] == "Zoë", "letters of any script stay welcome"


@pytest.mark.gen_test(timeout=60)
async def test_organization_names_refuse_hidden_characters(api: Api, app: Any) -> None:
    org = await make_org(app, "Alpha Towing")
    manager = await login(app, await make_user(app, "MANAGER", organizations=[org["_id"]]))
    for text in HIDDEN:
        created = await api.post(f"{API}/organizations", {"name": text}, token=manager)
        assert created.status == 422 and "name" in created.json["error"]["details"], text
        renamed = await api.patch(f"{API}/organizations/{org['_id']}", {"name": text}, token=manager)
        assert renamed.status == 422 and "name" in renamed.json["error"]["details"], text
    shown = await api.get(f"{API}/organizations/{org['_id']}", token=manager)
    assert shown.json["name"] == "Alpha Towing"
    plain = await api.post(f"{API}/organizations", {"name": "Буксир 24"}, token=manager)
    assert plain.status == 201


@pytest.mark.gen_test(timeout=60)
async def test_vehicle_type_and_truck_names_refuse_hidden_characters(api: Api, app: Any) -> None:
    admin = await login(app, await make_user(app, "ADMIN"))
    spoofed = await api.post(
        f"{API}/vehicle-types", {"name": "\u202eSedan", "base_price": 10, "price_per_km": 1}, token=admin
    )
    assert spoofed.status == 422 and "name" in spoofed.json["error"]["details"]
    org = await make_org(app)
    truck = await api.post(
        f"{API}/vehicles",
        {"plate": "A\u200b123BC", "model": "MAN", "capacity_kg": 3000, "organization": str(org["_id"])},
        token=admin,
    )
    assert truck.status == 422 and "plate" in truck.json["error"]["details"]
