"""Support tickets: clients' own tickets, operators' scope, and internal notes clients never see."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from tests.support.factories import login, make_org, make_user
from tests.support.helpers import Api

URL = "/api/v1/support/tickets"


async def desk(app: Any) -> dict[str, Any]:
    """An organization with a manager, a client with an order of it, and a manager of another org."""
    org, elsewhere = await make_org(app), await make_org(app)
    found: dict[str, Any] = {
        "org": org,
        "client": await make_user(app, "BASE"),
        "other_client": await make_user(app, "BASE"),
        "driver": await make_user(app, "DRIVER", organizations=[org["_id"]]),
        "manager": await make_user(app, "MANAGER", organizations=[org["_id"]]),
        "stranger": await make_user(app, "MANAGER", organizations=[elsewhere["_id"]]),
        "admin": await make_user(app, "ADMIN"),
    }
    found["order_id"] = (
        await app.settings["services"]
        .db["orders"]
        .insert_one(
            {
                "client_id": found["client"]["_id"],
                "driver_id": found["driver"]["_id"],
                "organization": org["_id"],
                "status": "completed",
            }
        )
    ).inserted_id
    found["t"] = {
        name: await login(app, found[name])
        for name in ("client", "other_client", "driver", "manager", "stranger", "admin")
    }
    return found


async def open_ticket(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    body = {"subject": "The driver scratched my car", "description": "Left rear door, see photo.", **fields}
    answer = await api.post(URL, body, token=token)
    assert answer.status == 201, answer.json
    return answer.json


@pytest.mark.gen_test(timeout=60)
async def test_internal_notes_never_reach_the_client(app: Any, api: Api) -> None:
    d = await desk(app)
    client, manager = d["t"]["client"], d["t"]["manager"]
    ticket = await open_ticket(api, client, order_id=str(d["order_id"]))
    assert ticket["status"] == "open" and ticket["organization"] == str(d["org"]["_id"])
    assert ticket["created_by"] == str(d["client"]["_id"]) and ticket["assignee_id"] is None
    assert ticket["message_count"] == 1
    one = f"{URL}/{ticket['id']}"
    first = (await api.get(f"{one}/messages", token=client)).json
    assert first["total"] == 1 and first["items"][0]["body"] == "Left rear door, see photo."
    assert first["items"][0]["internal"] is False and first["items"][0]["author_id"] == str(d["client"]["_id"])
    client_view = (await api.get(one, token=client)).json

    note = await api.post(
        f"{one}/messages", {"body": "Driver denies it; check dashcam.", "internal": True}, token=manager
    )
    assert note.status == 201 and note.json["internal"] is True
    # nothing the client can read changed: detail, list and messages are as before the note
    assert (await api.get(one, token=client)).json == client_view
    assert (await api.get(URL, token=client)).json["items"] == [client_view]
    assert (await api.get(f"{one}/messages", token=client)).json == first

    reply = await api.post(f"{one}/messages", {"body": "We are looking into it."}, token=manager)
    assert reply.status == 201 and reply.json["internal"] is False
    seen = (await api.get(f"{one}/messages", token=client)).json
    assert [m["body"] for m in seen["items"]] == ["Left rear door, see photo.", "We are looking into it."]
    assert seen["total"] == 2 and all(m["internal"] is False for m in seen["items"])
    assert (await api.get(one, token=client)).json["message_count"] == 2
    raw = b"".join(
        [
            (await api.get(one, token=client)).body,
            (await api.get(URL, token=client)).body,
            (await api.get(f"{one}/messages", token=client)).body,
        ]
    )
    assert b"dashcam" not in raw

    operator = (await api.get(f"{one}/messages", token=manager)).json
    assert [m["internal"] for m in operator["items"]] == [False, True, False] and operator["total"] == 3
    assert (await api.get(one, token=manager)).json["message_count"] == 3
    assert (await api.get(f"{one}/messages", token=d["t"]["admin"])).json["total"] == 3

    for token in (client, d["t"]["driver"]):
        sneaky = await api.post(f"{one}/messages", {"body": "psst", "internal": True}, token=token)
        assert sneaky.status in (403, 404)
    refused = await api.post(f"{one}/messages", {"body": "psst", "internal": True}, token=client)
    assert refused.status == 403 and refused.error_code == "internal_notes_forbidden"
    assert (await api.post(f"{one}/messages", {"body": "Thanks!"}, token=client)).status == 201


@pytest.mark.gen_test(timeout=60)
async def test_operators_assign_and_move_tickets_of_their_organizations(app: Any, api: Api) -> None:
    d = await desk(app)
    ticket = await open_ticket(api, d["t"]["client"], order_id=str(d["order_id"]))
    one = f"{URL}/{ticket['id']}"
    taken = await api.patch(
        one, {"assignee_id": str(d["manager"]["_id"]), "status": "in_progress"}, token=d["t"]["manager"]
    )
    assert taken.status == 200
    assert taken.json["assignee_id"] == str(d["manager"]["_id"]) and taken.json["status"] == "in_progress"
    seen = (await api.get(one, token=d["t"]["client"])).json
    assert seen["status"] == "in_progress" and seen["assignee_id"] == str(d["manager"]["_id"])

    for wrong in (d["client"]["_id"], d["stranger"]["_id"], d["driver"]["_id"], ObjectId()):
        refused = await api.patch(one, {"assignee_id": str(wrong)}, token=d["t"]["manager"])
        assert refused.status == 422 and "assignee_id" in refused.json["error"]["details"]
    handed = await api.patch(one, {"assignee_id": str(d["admin"]["_id"])}, token=d["t"]["manager"])
    assert handed.json["assignee_id"] == str(d["admin"]["_id"])
    assert (await api.patch(one, {"assignee_id": None}, token=d["t"]["admin"])).json["assignee_id"] is None
    assert (await api.patch(one, {"status": "pending"}, token=d["t"]["manager"])).status == 422
    assert (await api.patch(one, {}, token=d["t"]["manager"])).status == 422

    for name in ("client", "driver"):
        refused = await api.patch(one, {"status": "closed"}, token=d["t"][name])
        assert refused.status == 403
    assert (await api.patch(one, {"status": "closed"}, token=d["t"]["stranger"])).status == 404
    closed = await api.patch(one, {"status": "closed"}, token=d["t"]["manager"])
    assert closed.json["status"] == "closed"
    late = await api.post(f"{one}/messages", {"body": "One more thing"}, token=d["t"]["client"])
    assert late.status == 409 and late.error_code == "ticket_closed"
    assert (await api.get(f"{URL}?status=closed", token=d["t"]["manager"])).json["total"] == 1
    assert (await api.get(f"{URL}?status=open", token=d["t"]["manager"])).json["total"] == 0
    assert (await api.get(f"{URL}?status=nope", token=d["t"]["manager"])).status == 422


@pytest.mark.gen_test(timeout=60)
async def test_each_caller_sees_only_the_tickets_in_their_scope(app: Any, api: Api) -> None:
    d = await desk(app)
    with_order = await open_ticket(api, d["t"]["client"], order_id=str(d["order_id"]))
    no_org = await open_ticket(api, d["t"]["other_client"], subject="App crashes")
    by_driver = await open_ticket(api, d["t"]["driver"], subject="Fuel card blocked")
    assert no_org["organization"] is None and by_driver["organization"] == str(d["org"]["_id"])

    def ids(answer: Any) -> set[str]:
        return {t["id"] for t in answer.json["items"]}

    assert ids(await api.get(URL, token=d["t"]["client"])) == {with_order["id"]}
    assert ids(await api.get(URL, token=d["t"]["driver"])) == {by_driver["id"]}
    assert ids(await api.get(URL, token=d["t"]["manager"])) == {with_order["id"], by_driver["id"]}
    assert ids(await api.get(URL, token=d["t"]["stranger"])) == set()
    assert ids(await api.get(URL, token=d["t"]["admin"])) == {with_order["id"], no_org["id"], by_driver["id"]}

    for name, hidden in (
        ("client", by_driver),
        ("other_client", with_order),
        ("stranger", with_order),
        ("manager", no_org),
    ):
        token = d["t"][name]
        assert (await api.get(f"{URL}/{hidden['id']}", token=token)).status == 404, name
        assert (await api.get(f"{URL}/{hidden['id']}/messages", token=token)).status == 404, name
        assert (await api.post(f"{URL}/{hidden['id']}/messages", {"body": "hi"}, token=token)).status == 404, name
    assert (await api.get(f"{URL}/{ObjectId()}", token=d["t"]["admin"])).status == 404
    assert (await api.get(f"{URL}/zzz", token=d["t"]["admin"])).error_code == "invalid_id"
    assert (await api.get(URL)).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_a_ticket_refers_only_to_an_order_the_caller_may_read(app: Any, api: Api) -> None:
    d = await desk(app)
    for name in ("other_client", "stranger"):
        refused = await api.post(
            URL, {"subject": "x", "description": "y", "order_id": str(d["order_id"])}, token=d["t"][name]
        )
        assert refused.status == 422 and "order_id" in refused.json["error"]["details"], name
    for name in ("client", "driver", "manager", "admin"):
        made = await open_ticket(api, d["t"][name], order_id=str(d["order_id"]))
        assert made["order_id"] == str(d["order_id"]) and made["organization"] == str(d["org"]["_id"])
    missing = await api.post(URL, {"subject": "", "description": "y"}, token=d["t"]["client"])
    assert missing.status == 422 and "subject" in missing.json["error"]["details"]
    listed = await api.get(f"{URL}?order_id={d['order_id']}", token=d["t"]["admin"])
    assert listed.json["total"] == 4
