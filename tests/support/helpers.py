"""Test helpers: a JSON API client that asserts the invariants every answer must keep."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from dispatch.core import jsonutil


@dataclass
class Response:
    """What the app answered."""

    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return jsonutil.loads(self.body)

    @property
    def error_code(self) -> str:
        return self.json["error"]["code"]


def assert_error_envelope(response: Response) -> None:
    """A non-2xx answer is the SPEC error envelope, as JSON, and never a traceback."""
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"].replace("_", "").isalnum() and body["error"]["code"].islower()
    assert isinstance(body["error"]["details"], dict)
    assert b"Traceback" not in response.body


class Api:
    """JSON requests against the running app, over pooled keep-alive connections as real integrations send them."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.token: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Response:
        """Send one request; check the invariants; return the answer."""
        headers = dict(headers or {})
        if json is not None:
            body = jsonutil.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        bearer = token if token is not None else self.token
        if bearer:
            headers.setdefault("Authorization", f"Bearer {bearer}")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        answer = await self.client.request(
            method, self.base_url + path, content=body, headers=headers, follow_redirects=False, timeout=30
        )
        response = Response(answer.status_code, answer.headers, answer.content)
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        assert response.headers.get("X-Request-ID"), "every answer carries a request id"
        if response.status >= 400 and method != "HEAD":
            assert_error_envelope(response)
        assert response.status < 500 or path in ("/readyz",), response.body
        return response

    async def raw(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send one request as given and return the answer, checking nothing (pages, assets, odd methods)."""
        answer = await self.client.request(
            method, self.base_url + path, content=body, headers=headers, follow_redirects=False, timeout=30
        )
        return Response(answer.status_code, answer.headers, answer.content)

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("PATCH", path, json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("PUT", path, json, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)


@contextlib.asynccontextmanager
async def api_at(base_url: str) -> AsyncIterator[Api]:
    """An `Api` of a server the test started itself, with its own connection pool, closed afterwards."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield Api(client, base_url)


async def wait_for_email(outbox: Path, to: str, timeout: float = 30, subject: str | None = None) -> EmailMessage:
    """The newest message the worker wrote for this recipient (and subject), once it appears."""
    folder = outbox / "email"
    for _ in range(int(timeout * 10)):
        found = []
        for path in folder.glob("*.eml") if folder.exists() else []:
            message = message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == to and (subject is None or message["Subject"] == subject):
                found.append((path.stat().st_mtime, message))
        if found:
            return max(found, key=lambda pair: pair[0])[1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no email to {to} within {timeout}s")


CLOSE_TIMEOUT = 60  # seconds a test's services get to close (flushes included) before the test fails


async def close_services(services: Any, timeout: float = CLOSE_TIMEOUT) -> None:
    """Close a test's `Services`, failing with every pending task's stack if that never ends.

    A teardown that hangs would stall the whole run without a word; this one names where it hangs.
    """
    closing = asyncio.ensure_future(services.close())
    done, _ = await asyncio.wait({closing}, timeout=timeout)
    if closing in done:
        closing.result()
        return
    report = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(file=report)
    closing.cancel()
    raise AssertionError(f"Services.close() did not finish in {timeout} s; pending tasks:\n{report.getvalue()}")
