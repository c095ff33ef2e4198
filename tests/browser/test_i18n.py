"""English and Russian on the operators' pages (SPEC section 12): a Russian browser gets Russian, and the
switch on the page changes the language in place, keeping what is on the screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_console import order_body
from tests.handlers.test_tracking import private_team
from tests.support.browser import PageErrors, browser_context
from tests.support.factories import PASSWORD, login, make_user
from tests.support.fleet_fixtures import make_vehicle_type
from tests.support.helpers import Api
from tests.support.realtime_client import fleet

CATALOGUES = Path(__file__).resolve().parent.parent.parent / "dispatch" / "static" / "i18n"


def test_the_catalogues_have_the_same_messages_and_placeholders() -> None:
    en = json.loads((CATALOGUES / "en.json").read_text())
    ru = json.loads((CATALOGUES / "ru.json").read_text())
    assert en.keys() == ru.keys()
    for key, text in en.items():
        assert sorted(part.split("}")[0] for part in text.split("{")[1:]) == sorted(
            part.split("}")[0] for part in ru[key].split("{")[1:]
        ), key
        assert ru[key].strip(), key


@pytest.mark.gen_test(timeout=90)
async def test_a_russian_browser_gets_russian_and_the_switch_keeps_the_page(
    app: Any, api: Api, base_url: str, chromium: str
) -> None:
    team = await fleet(app, api, drivers=1)
    client_token = await login(app, await make_user(app, "BASE"))
    type_id = str((await make_vehicle_type(app))["_id"])
    body = order_body(type_id, str(team["org"]["_id"]), "Komsomolsky Ave, 24", 55.73, 37.58)
    order = (await api.post("/api/v1/orders", body, token=client_token)).json
    shared = await private_team(app, api)
    token = (await api.post(f"/api/v1/orders/{shared['order']['id']}/share", token=shared["client_token"])).json
    errors = PageErrors()

    async with browser_context(chromium, locale="ru-RU") as context:
        page = await context.new_page()
        errors.watch(page)
        await page.goto(base_url + "/console")
        # the sign-in form speaks Russian, and so does the page's language
        await page.get_by_role("heading", name="Вход").wait_for()
        assert await page.evaluate("document.documentElement.lang") == "ru"
        await page.get_by_label("Имя пользователя, email или телефон").fill(team["manager"]["username"])
        await page.get_by_label("Пароль").fill(PASSWORD)
        await page.get_by_role("button", name="Войти").click()
        await page.wait_for_selector("#console-view[data-loaded=true]")
        await page.wait_for_selector("#connection[data-state=live]")
        assert await page.text_content("#connection") == "В эфире"  # noqa: RUF001 (Russian text)
        assert await page.text_content("#column-new") == "Новые 1"
        assert await page.text_content("#board-title") == "Заказы"
        card = page.locator(f'.order-card[data-order-id="{order["id"]}"]')
        assert "Komsomolsky Ave, 24" in await card.inner_text()
        await card.click()
        await page.get_by_role("button", name="Назначить ближайший").wait_for()
        assert "Подача" in await page.text_content("#details")
        typed = page.get_by_label("Email, телефон или id пользователя")
        await typed.fill("someone@example.org")
        await page.evaluate("window.sameDocument = true")

        # the switch: English at once, with the same order selected, the typed text kept, no reload
        await page.get_by_label("Язык").select_option("en")
        await page.get_by_role("heading", name="Orders", exact=True).wait_for()
        assert await page.text_content("#column-new") == "New 1"
        assert await page.text_content("#connection") == "Live"
        assert await card.get_attribute("aria-pressed") == "true"
        await page.get_by_role("button", name="Assign nearest").wait_for()
        assert await page.get_by_label("Email, phone or user id").input_value() == "someone@example.org"
        assert await page.evaluate("window.sameDocument") is True
        assert await page.evaluate("document.documentElement.lang") == "en"

        # the customer's tracking page follows the Russian browser too (the choice above is remembered
        # in this browser, so the switch there is used to come back to Russian)
        await page.goto(f"{base_url}/t/{token['token']}")
        await page.wait_for_selector("#connection[data-state=live]")
        assert await page.text_content("#status") == "Looking for a truck"
        await page.get_by_label("Language").select_option("ru")
        await page.get_by_text("Ищем эвакуатор").wait_for()
        assert await page.text_content("#connection") == "В эфире"  # noqa: RUF001 (Russian text)
        assert await page.text_content("dt >> nth=0") == "Эвакуатор"
    assert errors == [], errors
