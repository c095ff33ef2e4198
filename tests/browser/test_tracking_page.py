"""The public tracking page in Chromium on a phone's viewport: status, truck, driver, the truck moving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.handlers.test_tracking import private_team
from tests.support.browser import PageErrors, browser_context
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, point, ws_url

PHONE = {"width": 390, "height": 844}


@pytest.mark.gen_test(timeout=90)
async def test_the_tracking_page_follows_the_truck_on_a_phone(
    app: Any, api: Api, base_url: str, chromium: str, artifacts_dir: Path
) -> None:
    team = await private_team(app, api)
    order_id = team["order"]["id"]
    assign = {"vehicle_id": team["truck"]["id"]}
    assert (await api.post(f"/api/v1/orders/{order_id}/assign", assign, token=team["manager_token"])).status == 200
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["driver_token"])
    await driver.recv_type("ready")
    await driver.send({"type": "location", **point(1, lat=55.742, lon=37.600, heading=45.0)})
    await driver.recv_type("ack", seq=1)
    token = (await api.post(f"/api/v1/orders/{order_id}/share", token=team["client_token"])).json["token"]

    async with browser_context(chromium, viewport=PHONE, is_mobile=True, has_touch=True) as context:
        page = await context.new_page()
        errors = PageErrors()
        errors.watch(page)
        await page.goto(f"{base_url}/t/{token}")
        await page.wait_for_selector("#connection[data-state=live]")
        assert await page.text_content("#status") == "A truck is assigned"
        assert await page.text_content("#plate") == "A777AA77"
        assert await page.text_content("#truck") == "GAZelle Next"
        assert await page.text_content("#driver") == "Ivan"
        marker = '.vehicle[data-vehicle-id="truck"]'
        await page.wait_for_selector(marker)
        await driver.send({"type": "status", "order_id": order_id, "status": "accepted"})
        await driver.send({"type": "status", "order_id": order_id, "status": "en_route"})
        await driver.send({"type": "location", **point(2, lat=55.746, lon=37.606, heading=45.0)})
        await page.wait_for_function(
            f"""() => document.querySelector('{marker}').dataset.lat === "55.746"
                && document.querySelector('#status').textContent === "The truck is on its way" """
        )
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]  # nothing wider than the phone
        await page.screenshot(path=str(artifacts_dir / "tracking-page.png"))
        assert errors == []
