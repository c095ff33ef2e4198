"""Streets on the console's map (SPEC section 12): tiles from a tile server on loopback under the page's
policy, and the offline drawing when no tile server is set or its tiles fail; the organization's geofences
are drawn on both."""

from __future__ import annotations

import io
import math
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from PIL import Image

from tests.reliability.test_security_headers import policy
from tests.support.browser import PageErrors, browser_context, sign_in
from tests.support.helpers import Api
from tests.support.realtime_client import WsClient, fleet, point, ws_url

# Record CSP violations from the first script on (the page's own policy does not apply to this script).
CSP_WATCH = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.blockedURI));"
)


def tile_png() -> bytes:
    """A 256×256 tile: a pale ground with a grey 'street' across it, so a screenshot shows tiles."""
    image = Image.new("RGB", (256, 256), (236, 232, 222))
    for x in range(256):
        for y in range(118, 138):
            image.putpixel((x, y), (255, 255, 255))
    for y in range(256):
        for x in range(60, 72):
            image.putpixel((x, y), (250, 240, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class TileHandler(tornado.web.RequestHandler):
    def initialize(self, seen: list[str], body: bytes) -> None:
        self.seen, self.body = seen, body

    def get(self, z: str, x: str, y: str) -> None:
        self.seen.append(f"{z}/{x}/{y}")
        self.set_header("Content-Type", "image/png")
        self.finish(self.body)


def tile_of(lat: float, lon: float, zoom: int) -> str:
    """The `x/y` of the web-mercator tile holding a point."""
    n = 2**zoom
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return f"{int((lon + 180) / 360 * n)}/{int(y)}"


def past_route() -> list[dict[str, Any]]:
    """GPS points of 40 to 8 minutes ago: driving, a 12-minute stop (every 3 min), driving again."""
    start = datetime.now(UTC) - timedelta(minutes=40)
    points = []
    for minute in range(10):  # east, one point a minute
        points.append((start + timedelta(minutes=minute), 55.740, 37.580 + minute * 0.002))
    for k in range(5):  # standing 12 minutes at the end of the drive
        points.append((start + timedelta(minutes=10 + k * 3), 55.740, 37.600))
    for minute in range(1, 11):  # north
        points.append((start + timedelta(minutes=22 + minute), 55.740 + minute * 0.001, 37.600))
    return [
        {"seq": n, "lat": lat, "lon": lon, "ts": ts.isoformat().replace("+00:00", "Z"), "speed": 10.0, "heading": 0.0}
        for n, (ts, lat, lon) in enumerate(points, start=1)
    ]


def local_minutes(moment: datetime) -> str:
    """A `datetime-local` input's value (the browser runs in this machine's zone)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def free_port() -> int:
    """A loopback port nobody listens on (tiles from there fail)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.gen_test(timeout=90)
async def test_console_map_shows_streets_and_falls_back_to_the_drawing(
    app: Any, api: Api, base_url: str, chromium: str, artifacts_dir: Path
) -> None:
    seen: list[str] = []
    tiles = tornado.httpserver.HTTPServer(
        tornado.web.Application([(r"/(\d+)/(\d+)/(\d+)\.png", TileHandler, {"seen": seen, "body": tile_png()})])
    )
    (sock,) = tornado.netutil.bind_sockets(0, "127.0.0.1")
    tiles.add_sockets([sock])
    tile_origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    services = app.settings["services"]
    team = await fleet(app, api, drivers=1)
    driver = await WsClient.connect(ws_url(base_url, "/ws/driver"), team["drivers"][0]["token"])
    await driver.recv_type("ready")
    # 40 minutes ago: 10 min driving east, 12 min standing, 10 min driving north, then now at the start
    route = past_route()
    await driver.send({"type": "locations", "points": route})
    await driver.recv_type("ack", seq=len(route))
    await driver.send({"type": "location", **point(len(route) + 1, lat=55.750, lon=37.600)})
    await driver.recv_type("ack", seq=len(route) + 1)
    vehicle_id = team["drivers"][0]["vehicle"]["id"]
    yard = [[55.748, 37.596], [55.748, 37.604], [55.752, 37.604], [55.752, 37.596]]
    yard = {"organization": str(team["org"]["_id"]), "name": "Yard", "shape": {"type": "polygon", "points": yard}}
    yard = (await api.post("/api/v1/geofences", yard, token=team["manager_token"])).json
    drawn_yard = f'#map .geofence[data-geofence-id="{yard["id"]}"] polygon'
    stored = await api.get(f"/api/v1/vehicles/{vehicle_id}/track", token=team["manager_token"])
    km_text = f"{stored.json['distance_km']:.1f}".rstrip("0").rstrip(".")
    page_zone_now = datetime.now()
    errors = PageErrors()
    try:
        async with browser_context(chromium) as context:
            await context.add_init_script(CSP_WATCH)
            page = await context.new_page()
            errors.watch(page)

            # no tile server: today's offline drawing, and no map library loaded at all
            await sign_in(page, base_url, team["manager"]["username"])
            await page.wait_for_selector(".vehicle")
            assert await page.locator("#map .map-grid line").count() > 0
            assert await page.locator(".map-streets").count() == 0
            assert await page.locator(drawn_yard).is_visible()
            assert "img-src 'self' data:;" in (await api.get("/console")).headers["Content-Security-Policy"]

            # a tile server that does not answer: the drawing comes back
            services.settings = services.settings.replace(
                map_tile_url=f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"
            )
            await page.reload()
            await page.wait_for_selector("#map[data-tiles=failed]")
            assert await page.locator(".map-streets").count() == 0
            assert await page.locator("#map .map-grid line").count() > 0
            assert await page.eval_on_selector("#map .map-grid", "g => getComputedStyle(g).display") != "none"
            assert await page.locator(".vehicle").count() == 1

            # the tile server on loopback: streets under the markers, allowed by exactly its origin
            services.settings = services.settings.replace(
                map_tile_url=f"{tile_origin}/{{z}}/{{x}}/{{y}}.png", map_attribution="Test tiles <b>&copy;</b>"
            )
            answer = await api.get("/console")
            assert policy(answer.headers["Content-Security-Policy"])["img-src"] == ["'self'", "data:", tile_origin]
            await page.reload()
            await page.wait_for_selector("#map[data-tiles=loaded]")
            await page.wait_for_selector(".vehicle")
            # the tiles asked for are those around the truck, at a street-level zoom
            zoom = int(seen[0].split("/")[0])
            assert 12 <= zoom <= 19 and f"{zoom}/{tile_of(55.750, 37.600, zoom)}" in seen[:6], seen
            assert await page.locator(".leaflet-tile-loaded").count() > 0
            assert not await page.locator("#map .map-grid").is_visible()
            assert await page.locator(drawn_yard).is_visible()  # the geofence over the streets
            # the attribution is the setting's text, not HTML
            assert "Test tiles <b>&copy;</b>" in await page.text_content(".leaflet-control-attribution")
            assert await page.evaluate("window.__csp") == []
            await page.screenshot(path=str(artifacts_dir / "console-streets.png"))  # the README's docs/ copy

            # route replay: the stored path from an hour ago drawn, the slider moves the marker, the stop marked
            await page.get_by_label("From").fill(local_minutes(page_zone_now - timedelta(hours=1)))
            # ...up to 4 minutes ago, to the minute: after the route (8 minutes ago), before the truck's
            # live point (the page's default "now", floored to its minute, may fall after it)
            await page.get_by_label("To", exact=True).fill(local_minutes(page_zone_now - timedelta(minutes=4)))
            await page.get_by_role("button", name="Show route").click()
            await page.wait_for_selector(".replay-path")
            drawn = await page.get_attribute(".replay-path", "points")
            assert drawn is not None and len(drawn.split()) == len(route)
            stops = page.locator("#replay-stops li")
            assert await stops.count() == 1 and await stops.get_attribute("data-minutes") == "12"
            assert await page.locator(".replay-stop").count() == 1
            assert await page.text_content("#replay-result") == f"{len(route)} points, {km_text} km"
            marker = page.locator(".replay-marker")
            assert float(await marker.get_attribute("data-lat")) == route[0]["lat"]
            await page.locator("#replay-slider").fill(str(len(route) - 1))
            await page.wait_for_selector(f'.replay-marker[data-index="{len(route) - 1}"]')
            assert float(await marker.get_attribute("data-lon")) == route[-1]["lon"]
            await page.screenshot(path=str(artifacts_dir / "console-replay.png"))  # the README's docs/ copy
            await page.get_by_role("button", name="Close").click()
            assert await page.locator(".replay-path").count() == 0
    finally:
        driver.close()
        tiles.stop()
    # only the tiles of the server that did not answer failed to load
    assert [e for e in errors if "ERR_CONNECTION_REFUSED" not in e] == [], errors
