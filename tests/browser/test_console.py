"""The manager console in a real headless Chromium against the app on a real socket: sign-in, the live
map with the organization's geofences, the orders board and assignment, presence, waybills, notifications,
geofence crossings, and recovery after a drop."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from dispatch.core import jsonutil
from tests.support.browser import PageErrors, browser_context, sign_in
from tests.support.factories import PASSWORD, login, make_user
from tests.support.fleet_fixtures import make_vehicle_type
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url

# Network failures the drop test causes on purpose are logged by Chromium as console errors.
EXPECTED_NETWORK_ERRORS = re.compile(
    r"WebSocket connection to .* failed|Failed to load resource|ERR_INTERNET_DISCONNECTED"
)


def order_body(type_id: str, org_id: str, address: str, lat: float, lon: float) -> dict[str, Any]:
    """A client's tow order picked up at (lat, lon)."""
    return {
        "organization": org_id,
        "pickup": {"lat": lat, "lon": lon, "address": address},
        "dropoff": {"lat": lat + 0.05, "lon": lon, "address": "Garage 7"},
        "vehicle": {"type_id": type_id, "make": "Lada", "model": "Vesta", "plate": "X001XX77"},
    }


async def stream(driver: WsClient, seq: int, lat: float, lon: float) -> None:
    """One GPS point through the driver's socket, acked (stored and fanned out)."""
    await driver.send({"type": "location", **point(seq, lat=lat, lon=lon)})
    await driver.recv_type("ack", seq=seq)


async def marker(page: Any, vehicle_id: str) -> dict[str, Any]:
    """What the map shows of a truck: its data attributes, transform and label."""
    return await page.eval_on_selector(
        f'.vehicle[data-vehicle-id="{vehicle_id}"]',
        """el => ({
        lat: Number(el.dataset.lat), lon: Number(el.dataset.lon), status: el.dataset.status,
        online: el.dataset.online, transform: el.getAttribute('transform'), label: el.textContent})""",
    )


async def wait_marker(page: Any, vehicle_id: str, **expected: Any) -> None:
    """Wait until a truck's marker shows these data attributes."""
    checks = " && ".join(f"el.dataset.{k} === {str(v)!r}" for k, v in expected.items())
    await page.wait_for_function(f"""() => {{
        const el = document.querySelector('.vehicle[data-vehicle-id="{vehicle_id}"]');
        return el !== null && {checks}; }}""")


@pytest.mark.gen_test(timeout=90)
async def test_console_follows_the_fleet_and_assigns_orders(
    app: Any, api: Api, base_url: str, chromium: str, artifacts_dir: Path
) -> None:
    team = await fleet(app, api, drivers=2)
    org_id = str(team["org"]["_id"])
    first, second = team["drivers"]
    truck1, truck2 = first["vehicle"]["id"], second["vehicle"]["id"]
    drivers = []
    for crew, (lat, lon) in ((first, (55.750, 37.600)), (second, (55.765, 37.650))):
        driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), crew["token"])
        await driver.recv_type("ready")
        await stream(driver, 1, lat, lon)
        drivers.append(driver)
    client_token = await login(app, await make_user(app, "BASE"))
    type_id = str((await make_vehicle_type(app))["_id"])
    depot = {"organization": org_id, "name": "Depot", "shape": {"type": "circle", "center": {"lat": 55.752,
             "lon": 37.615}, "radius_m": 150}}  # fmt: skip
    depot = (await api.post("/api/v1/geofences", depot, token=team["manager_token"])).json
    errors = PageErrors()

    async with browser_context(chromium) as context:
        page = await context.new_page()
        errors.watch(page)
        await sign_in(page, base_url, team["manager"]["username"])

        # the organization's geofence is drawn on the map
        fence = page.locator(f'#map .geofence[data-geofence-id="{depot["id"]}"]')
        await fence.locator("circle").wait_for()
        assert await fence.get_attribute("aria-label") == "Geofence Depot"

        # both trucks are on the map where the REST snapshot put them, labelled and coloured by status
        start = await marker(page, truck1)
        assert (start["lat"], start["lon"], start["status"]) == (55.750, 37.600, "available")
        assert first["vehicle"]["plate"] in start["label"]
        assert (await marker(page, truck2))["lon"] == 37.650
        assert await page.locator(".vehicle").count() == 2

        # a GPS stream through the real driver socket moves the marker
        for seq, lon in enumerate((37.605, 37.610, 37.615), start=2):
            await stream(drivers[0], seq, 55.752, lon)
        await wait_marker(page, truck1, lon="37.615", lat="55.752")
        moved = await marker(page, truck1)
        assert moved["transform"] != start["transform"] and moved["online"] == "true"
        # the truck is now inside the depot: a line in the geofence panel, and the fence highlighted
        crossing = page.locator(f'#crossing-list li[data-geofence-id="{depot["id"]}"][data-event="enter"]')
        await crossing.wait_for()
        assert f"{first['vehicle']['plate']} entered Depot" in await crossing.inner_text()
        assert await fence.get_attribute("data-crossing") == "enter"

        # an order made through the API appears on the board (and as an unread notification)
        created = await api.post(
            "/api/v1/orders", order_body(type_id, org_id, "Tverskaya 7", 55.764, 37.649), token=client_token
        )
        assert created.status == 201, created.json
        order_id = created.json["id"]
        card = page.locator(f'[data-column=new] .order-card[data-order-id="{order_id}"]')
        await card.wait_for()
        assert "Tverskaya 7" in await card.inner_text()
        await page.locator("#notification-list li[data-notification-id]").first.wait_for()

        # select it with the keyboard and assign it to the second truck from the page
        await card.focus()
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#details-status")
        await page.get_by_label("or assign to").select_option(truck2)
        await page.get_by_role("button", name="Assign", exact=True).click()
        await page.locator(f'[data-column=assigned] .order-card[data-order-id="{order_id}"]').wait_for()
        assert await page.inner_text("#details-status") == "Assigned"
        await page.locator("#timeline li", has_text="assigned").wait_for()
        await wait_marker(page, truck2, status="busy")
        pushed = await drivers[1].recv_type("assignment")
        assert pushed["order"]["id"] == order_id

        # "assign nearest" gives the next order to the only truck left available
        other = await api.post(
            "/api/v1/orders", order_body(type_id, org_id, "Arbat 12", 55.751, 37.595), token=client_token
        )
        await page.locator(f'.order-card[data-order-id="{other.json["id"]}"]').click()
        await page.get_by_role("button", name="Assign nearest").click()
        await page.locator(f'[data-column=assigned] .order-card[data-order-id="{other.json["id"]}"]').wait_for()
        await page.locator("#assign-result", has_text="Assigned to " + first["vehicle"]["plate"]).wait_for()
        # arrow keys walk the board's cards (newest first)
        await page.locator(f'.order-card[data-order-id="{other.json["id"]}"]').focus()
        await page.keyboard.press("ArrowDown")
        assert await page.evaluate("document.activeElement.dataset.orderId") == order_id

        # a waybill on the road and a driver going offline show in the side panels
        sheet = await api.post("/api/v1/waybills", {"vehicle_id": truck1}, token=first["token"])
        assert sheet.status == 201, sheet.json
        await api.patch(f"/api/v1/waybills/{sheet.json['id']}", {"status": "on_route"}, token=first["token"])
        await page.locator(f'#waybill-list li[data-waybill-id="{sheet.json["id"]}"]').wait_for()
        drivers[1].close()
        await wait_marker(page, truck2, online="false")
        assert await page.inner_text("#presence-count") == "1 of 2 online"

        # the network drops: the page says so, then catches up on what it missed through `since`
        await context.set_offline(True)
        await page.wait_for_selector("#connection[data-state=reconnecting]")
        assert (await page.inner_text("#connection")).startswith("Reconnecting…")
        await stream(drivers[0], 5, 55.755, 37.620)
        missed = await api.post(
            "/api/v1/orders", order_body(type_id, org_id, "Petrovka 38", 55.767, 37.615), token=client_token
        )
        await asyncio.sleep(0.3)
        assert await page.locator(f'.order-card[data-order-id="{missed.json["id"]}"]').count() == 0
        await context.set_offline(False)
        await page.wait_for_selector("#connection[data-state=live]")
        await page.locator(f'[data-column=new] .order-card[data-order-id="{missed.json["id"]}"]').wait_for()
        await wait_marker(page, truck1, lon="37.62", lat="55.755")

        # the server drops the socket (no browser offline event): the page retries on its own
        for socket in list(app.settings["services"].hub.local.get(f"fleet:{org_id}", ())):
            socket.close()
        await page.wait_for_selector("#connection[data-state=reconnecting]")
        await page.wait_for_selector("#connection[data-state=live]")
        await stream(drivers[0], 6, 55.756, 37.625)
        await wait_marker(page, truck1, lon="37.625")

        await page.screenshot(path=str(artifacts_dir / "console.png"))
    assert [e for e in errors if not EXPECTED_NETWORK_ERRORS.search(e)] == []


@pytest.mark.gen_test
async def test_console_page_has_a_strict_policy_and_only_local_assets(api: Api) -> None:
    answer = await api.get("/console")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "connect-src 'self' ws: wss:;" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    html = answer.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline scripts"
    assert not re.search(r"\son\w+=|\sstyle=", html), "no inline handlers or styles"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "nothing from other hosts"
    assets = re.findall(r'(?:src|href)="(/static/console/[^"]+)"', html)
    assert {"/static/console/app.js", "/static/console/console.css"} <= set(assets)
    for asset in assets:
        served = await api.raw("GET", asset)
        assert served.status == 200, asset


@pytest.mark.gen_test(timeout=60)
async def test_refused_sign_ins_say_why(app: Any, api: Api, base_url: str, chromium: str) -> None:
    driver = await make_user(app, "DRIVER")
    async with browser_context(chromium) as context:
        page = await context.new_page()
        await page.goto(base_url + "/console")
        await page.get_by_label("Username, email or phone").fill(driver["username"])
        await page.get_by_label("Password").fill("not-the-password")
        await page.keyboard.press("Enter")
        await page.get_by_role("alert").filter(has_text="Wrong login or password.").wait_for()
        await page.get_by_label("Password").fill(PASSWORD)
        await page.keyboard.press("Enter")
        await page.get_by_role("alert").filter(has_text="The console is for managers").wait_for()
        assert await page.is_visible("#login-form") and not await page.is_visible("#console-view")


@pytest.mark.gen_test(timeout=60)
async def test_on_a_tablet_a_stale_access_token_is_refreshed(app: Any, api: Api, base_url: str, chromium: str) -> None:
    team = await fleet(app, api)
    pair = await api.post("/api/v1/auth/login", {"login": team["manager"]["username"], "password": PASSWORD})
    # the tab kept a pair whose access token the server no longer accepts, as after a long sleep
    kept = {"access": "expired.access.token", "refresh": pair.json["refresh_token"], "expiresAt": 4102444800000}
    async with browser_context(chromium, viewport={"width": 820, "height": 1180}) as context:
        await context.add_init_script(
            f"sessionStorage.setItem('dispatch.console.tokens', JSON.stringify({jsonutil.dumps(kept).decode()}))"
        )
        page = await context.new_page()
        await page.goto(base_url + "/console")
        await page.wait_for_selector("#console-view[data-loaded=true]")
        await page.wait_for_selector("#connection[data-state=live]")
        stored = jsonutil.loads(await page.evaluate("sessionStorage.getItem('dispatch.console.tokens')"))
        assert stored["access"] != kept["access"] and stored["refresh"] != kept["refresh"]
        # one column on a tablet: nothing wider than the screen, the board below the map
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        map_box = await page.locator("#map").bounding_box()
        board_box = await page.locator("#board").bounding_box()
        assert map_box["width"] > 700 and board_box["y"] > map_box["y"] + map_box["height"]
        # the old refresh token was rotated away: replaying it ends the session, and the page says so
        reused = await api.post("/api/v1/auth/refresh", {"refresh_token": kept["refresh"]})
        assert reused.status == 401
        await page.get_by_role("alert").filter(has_text="Your session has ended").wait_for()
        assert await page.is_visible("#login-form")
