"""The console's invitations panel in a real headless Chromium: a manager invites, revokes, and sees an
accepted invitation leave the list live (nobody is added to an organization without accepting)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import PageErrors, browser_context, sign_in
from tests.support.factories import login, make_org, make_user
from tests.support.helpers import Api

API = "/api/v1"


async def rows(page: Any) -> list[str]:
    return await page.eval_on_selector_all(
        "#invitation-list li[data-invitation-id] .name", "els => els.map(el => el.textContent)"
    )


@pytest.mark.gen_test(timeout=90)
async def test_manager_invites_revokes_and_sees_an_accepted_invitation_leave(
    app: Any, api: Api, base_url: str, chromium: str
) -> None:
    org = await make_org(app, "Alpha Towing")
    manager = await make_user(app, "MANAGER", organizations=[org["_id"]])
    driver = await make_user(app, "DRIVER", first_name="Ivan", last_name="Petrov")
    errors = PageErrors()
    async with browser_context(chromium) as context:
        page = await context.new_page()
        errors.watch(page)
        await sign_in(page, base_url, manager["username"])
        panel = page.get_by_role("region", name="Invitations")
        await panel.get_by_text("No pending invitations.").wait_for()
        assert not await page.is_visible("#invite-org"), "one organization: nothing to choose"
        codes = page.get_by_role("list", name="Sign-up codes")
        manager_token = await login(app, manager)
        assert await codes.locator("code").text_content() == "none", "an organization made before codes has none"
        await page.get_by_role("button", name="New sign-up code for Alpha Towing").click()
        await page.wait_for_function("() => document.querySelector('#invite-codes code').textContent.length === 10")
        code = (await api.get(f"{API}/organizations/{org['_id']}", token=manager_token)).json["invite_code"]
        assert await codes.locator("code").text_content() == code

        who = page.get_by_label("Email, phone or user id")
        await who.fill(driver["email"])
        await panel.get_by_role("button", name="Invite").click()
        await page.get_by_role("status").filter(has_text=f"Invited {driver['email']}").wait_for()
        await who.fill("+4915123450777")
        await who.press("Enter")
        await page.wait_for_function(
            "() => document.querySelectorAll('#invitation-list li[data-invitation-id]').length == 2"
        )
        assert await page.text_content("#invitation-count") == "2"
        await who.fill("12345")
        await who.press("Enter")
        await page.get_by_role("status").filter(has_text="Not invited:").wait_for()

        await page.get_by_role("button", name="Revoke the invitation of +4915123450777").click()
        await page.wait_for_function(
            "() => document.querySelectorAll('#invitation-list li[data-invitation-id]').length == 1"
        )
        assert await rows(page) == [driver["email"]]
        listed = await api.get(f"{API}/organizations/{org['_id']}/invitations", token=await login(app, manager))
        assert [i["email"] for i in listed.json["items"]] == [driver["email"]]

        # the driver accepts from their own account: the manager is told live and the row leaves
        token = await login(app, driver)
        mine = (await api.get(f"{API}/users/me/invitations", token=token)).json["items"]
        accepted = await api.post(f"{API}/users/me/invitations/{mine[0]['id']}/accept", token=token)
        assert accepted.status == 200
        await page.locator("#notification-list").get_by_text("Ivan Petrov accepted the invitation").wait_for()
        await panel.get_by_text("No pending invitations.").wait_for()
        assert await page.text_content("#invitation-count") == "0"
    # the refused phone number is the one failed request Chromium logs
    assert [e for e in errors if "status of 422" not in e] == []
