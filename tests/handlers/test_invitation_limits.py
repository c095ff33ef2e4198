"""One account cannot flood people's invitation lists: invitations sent are rate limited per sender."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.factories import login, make_org, make_user
from tests.support.helpers import Api


@pytest.fixture
def settings(services: Any) -> Any:
    return services.settings(rate_limits="invitations_sent=3/3600")


@pytest.mark.gen_test(timeout=60)
async def test_a_sender_past_the_limit_gets_429_and_others_still_invite(api: Api, app: Any) -> None:
    org = await make_org(app)
    path = f"/api/v1/organizations/{org['_id']}/invitations"
    spammer = await login(app, await make_user(app, "MANAGER", organizations=[org["_id"]]))
    sent = [await api.post(path, {"email": f"person{n}@example.com"}, token=spammer) for n in range(4)]
    assert [a.status for a in sent] == [201, 201, 201, 429]
    assert int(sent[3].headers["Retry-After"]) > 0 and sent[3].error_code == "rate_limited"
    colleague = await login(app, await make_user(app, "MANAGER", organizations=[org["_id"]]))
    assert (await api.post(path, {"email": "person9@example.com"}, token=colleague)).status == 201
    listed = await api.get(path, token=colleague)
    assert listed.json["total"] == 4
