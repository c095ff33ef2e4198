"""Security headers on HTML pages and every other answer; no secrets in logs."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from dispatch.core.security import encode_token
from tests.support.factories import PASSWORD, login, make_user
from tests.support.helpers import Api
from tests.support.processes import serving
from tests.support.realtime_client import WsClient, ws_url

PAGES = ["/docs", "/redoc", "/console", "/admin"]
# Where inline code would run despite the policy, or pages could be framed or re-based.
UNSAFE = ("'unsafe-eval'", "*", "data:", "http:", "https:")


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = words[1:]
    return parsed


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.gen_test
async def test_html_pages_carry_a_strict_content_security_policy(api: Api, page: str) -> None:
    answer = await api.get(page)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    csp = policy(answer.headers["Content-Security-Policy"])
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts == ["'self'"], scripts  # no inline or remote scripts, no eval
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and answer.headers["X-Frame-Options"] == "DENY"
    assert csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    for directive in ("connect-src", "img-src", "font-src", "style-src"):
        assert not set(csp.get(directive, [])) & {"*", "http:", "https:", "'unsafe-eval'"}, directive
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.gen_test
async def test_pages_work_under_their_policy(api: Api, page: str) -> None:
    """Nothing the policy would block: no inline script, and no inline style where styles must be files."""
    answer = await api.get(page)
    html = answer.body.decode()
    csp = policy(answer.headers["Content-Security-Policy"])
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> is blocked by script-src 'self'"
    assert not re.search(r"\son[a-z]+=", html), "inline event handlers are blocked"
    if "'unsafe-inline'" not in csp.get("style-src", []):
        assert "<style" not in html and not re.search(r"\sstyle=", html)
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        served = await api.raw("GET", asset)
        assert served.status == 200, asset
        assert served.headers["X-Content-Type-Options"] == "nosniff", asset
        if asset.endswith(".js"):
            assert "javascript" in served.headers["Content-Type"], asset


@pytest.mark.gen_test(timeout=60)
async def test_every_answer_says_nosniff_and_carries_a_request_id(api: Api, app: Any) -> None:
    """Every route and method of the document, signed in and not, plus errors, assets and sockets."""
    token = await login(app, await make_user(app, "ADMIN"))
    paths = (await api.get("/api/openapi.json")).json["paths"]
    missing_id = "6b0000000000000000000000"
    checked = 0
    for path, item in paths.items():
        url = re.sub(r"\{[^}]+\}", missing_id, path)
        for method in [m for m in item if m != "parameters"] + ["options", "head"]:
            for bearer in (None, token):
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                body = b"{}" if method in ("post", "put", "patch") else None
                if body is not None:
                    headers["Content-Type"] = "application/json"
                answer = await api.raw(method.upper(), url, body=body, headers=headers)
                assert answer.headers.get("X-Content-Type-Options") == "nosniff", (method, url, answer.status)
                assert answer.headers.get("X-Request-ID"), (method, url, answer.status)
                if answer.status >= 400 and method != "head":
                    assert answer.headers["Content-Type"].startswith("application/json"), (method, url)
                checked += 1
    for url in (
        "/static/nothing-here.js",
        "/static/../setup.cfg",
        "/media/avatars/none.jpg",
        "/nowhere",
        "/static/console/app.js",
        "/metrics",
        "/ws/console",
    ):
        for method in ("GET", "POST"):
            answer = await api.raw(method, url, body=b"" if method == "POST" else None)
            assert answer.headers.get("X-Content-Type-Options") == "nosniff", (method, url)
            assert answer.headers.get("X-Request-ID"), (method, url, answer.status)
            if answer.status >= 400:
                assert answer.headers["Content-Type"].startswith("application/json"), (method, url, answer.status)
            checked += 1
    assert checked > 300


@pytest.mark.gen_test(timeout=60)
async def test_405_names_the_allowed_methods(api: Api) -> None:
    for method, url, allowed in (
        ("DELETE", "/api/v1/auth/login", "POST"),
        ("PUT", "/api/v1/users", "GET"),
        ("POST", "/ws/driver", "GET"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/media/avatars/a1b2c3d4e5.jpg", "GET"),
    ):
        answer = await api.request(method, url)
        assert answer.status == 405, url
        assert allowed in answer.headers["Allow"].split(", "), (url, answer.headers["Allow"])


# --- secrets in logs ------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_tokens_passwords_and_the_secret_never_reach_the_logs(
    api: Api, app: Any, settings: Any, http_server: Any, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    driver = await make_user(app, "DRIVER")
    access = await login(app, driver)
    client = await make_user(app, verified=False)
    activation = encode_token(settings.jwt_secret, "activate", str(client["_id"]), 600, email=client["email_lower"])
    socket = await WsClient.connect(ws_url(base_url, f"/ws/driver?token={access}&since=1"), header=False)
    await socket.recv_type("ready")
    socket.close()
    await api.get(f"/ws/driver?token={access}")  # a plain GET to the socket path is logged too
    assert (await api.get(f"/api/v1/auth/activate?token={activation}")).status == 200
    wrong = "Wrong-Horse-" + uuid.uuid4().hex
    assert (await api.post("/api/v1/auth/login", {"login": driver["username"], "password": wrong})).status == 401
    pair = await api.post("/api/v1/auth/login", {"login": driver["username"], "password": PASSWORD})
    await api.post("/api/v1/auth/refresh", {"refresh_token": pair.json["refresh_token"]})
    await api.post("/api/v1/auth/register", {"username": "x", "email": "bad", "password": wrong})
    await api.get(f"/api/v1/users/me?access_token={access}&password={wrong}", token=access)
    await api.post("/api/v1/auth/password/change", {"old_password": wrong, "new_password": wrong + "x"}, token=access)

    secrets = {
        "access token": access,
        "activation token": activation,
        "password": PASSWORD,
        "wrong password": wrong,
        "refresh token": pair.json["refresh_token"],
        "JWT secret": settings.jwt_secret,
    }
    logged = "\n".join(f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for name, secret in secrets.items():
        assert secret not in logged, f"the {name} is in the logs"
    access_lines = [r.getMessage() for r in caplog.records if r.name == "dispatch.access"]
    assert any("/ws/driver?token=***&since=1" in line for line in access_lines), access_lines
    assert any("/api/v1/auth/activate?token=*** " in line for line in access_lines), access_lines
    assert any("access_token=***&password=***" in line for line in access_lines), access_lines


def test_a_real_server_logs_no_secret(services: Any, tmp_path: Path) -> None:
    """The whole output of `dispatch serve` (start-up included) after log-ins and errors."""
    secret = "very-secret-" + uuid.uuid4().hex + uuid.uuid4().hex
    settings = services.settings(jwt_secret=secret, log_level="DEBUG")
    log = tmp_path / "server.log"
    wrong = "Wrong-Horse-" + uuid.uuid4().hex
    with serving(settings, log) as base_url:
        api = base_url + "/api/v1"
        registered = requests.post(
            api + "/auth/register",
            timeout=30,
            json={"username": "logcheck", "email": "logcheck@example.com", "password": wrong},
        )
        assert registered.status_code == 201
        assert (
            requests.post(
                api + "/auth/login", json={"login": "logcheck", "password": wrong + "!"}, timeout=30
            ).status_code
            == 401
        )
        assert requests.get(api + f"/auth/activate?token={secret}", timeout=30).status_code == 400
    text = log.read_text(errors="replace")
    assert "serving on" in text
    assert secret not in text and wrong not in text
