"""Keep-alive connections survive error answers; when the server must close one, it says so.

Every pooling HTTP client (httpx, requests, aiohttp, the phone stacks) reuses a connection after
an answer unless it says `Connection: close`; a connection closed silently turns the client's
next, perfectly good request into a `Connection reset by peer`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dispatch.core import jsonutil
from handlers.base import JSON_LIMIT, OVERSIZE_READ_FACTOR
from tests.support.factories import login, make_user
from tests.support.helpers import Api, Response, assert_error_envelope

MISSING_ID = "6b0000000000000000000000"


class RawConnection:
    """One TCP connection speaking HTTP/1.1 by hand, so nothing hides a close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> RawConnection:
        parts = urlsplit(base_url)
        return cls(*await asyncio.open_connection(parts.hostname, parts.port))

    async def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        chunks: list[bytes] | None = None,
        end: bool = True,
    ) -> None:
        """Write one request; `chunks` sends the body with chunked transfer coding (`end`: and its last chunk)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        if chunks is not None:
            lines.append("Transfer-Encoding: chunked")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        for chunk in chunks or []:
            self.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if chunks is not None and end:
            self.writer.write(b"0\r\n\r\n")
        with contextlib.suppress(ConnectionError):  # the server answered early and closed: the answer is still readable
            await self.writer.drain()

    async def answer(self) -> Response:
        """Read one whole answer."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = httpx.Headers([tuple(line.split(": ", 1)) for line in header_lines if line])
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("Content-Length", "0"))), 10)
        return Response(int(status_line.split()[1]), headers, body)

    async def request(self, method: str, path: str, **kw: Any) -> Response:
        await self.send(method, path, **kw)
        return await self.answer()

    async def closed_by_server(self) -> bool:
        """Whether the server closed the connection (end of stream or a reset) instead of waiting."""
        try:
            return await asyncio.wait_for(self.reader.read(1), 10) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def raw(http_server: Any, io_loop: Any, base_url: str) -> Iterator[RawConnection]:
    connection = io_loop.run_sync(lambda: RawConnection.open(base_url))
    yield connection
    connection.close()
    io_loop.run_sync(lambda: asyncio.sleep(0))


def error_requests(token: str) -> list[tuple[int, str, str, dict[str, Any]]]:
    """Error answers to requests whose body (if any) is small: each must leave the connection usable."""
    json = {"Content-Type": "application/json"}
    return [
        (401, "GET", "/api/v1/users/me", {"headers": {"Authorization": "Bearer garbage"}}),
        (401, "GET", "/api/v1/users/me", {}),
        (401, "POST", "/api/v1/orders", {"headers": {"Authorization": "Bearer garbage", **json}, "body": b"{}"}),
        (
            401,
            "POST",
            "/api/v1/orders",
            {"headers": {"Authorization": "Bearer garbage", **json}, "chunks": [b'{"notes": ', b'"chunked"}']},
        ),
        (403, "GET", "/api/v1/users", {"headers": {"Authorization": f"Bearer {token}"}}),
        (404, "GET", "/nowhere", {}),
        (404, "POST", "/api/v1/nowhere", {"headers": json, "body": b'{"a": 1}'}),
        (404, "GET", f"/api/v1/orders/{MISSING_ID}", {"headers": {"Authorization": f"Bearer {token}"}}),
        (405, "DELETE", "/healthz", {}),
        (405, "PUT", "/api/v1/users", {"headers": {"Authorization": f"Bearer {token}", **json}, "body": b"{}"}),
        (400, "POST", "/api/v1/auth/login", {"headers": json, "body": b"{not json"}),
        (415, "POST", "/api/v1/auth/login", {"headers": {"Content-Type": "text/plain"}, "body": b"x"}),
        (422, "POST", "/api/v1/auth/login", {"headers": json, "body": b"{}"}),
    ]


@pytest.mark.gen_test(timeout=60)
async def test_error_answers_keep_the_connection_for_the_next_request(app: Any, raw: RawConnection) -> None:
    token = await login(app, await make_user(app, "BASE"))
    for status, method, path, kw in error_requests(token):
        answer = await raw.request(method, path, **kw)
        assert answer.status == status, (method, path, answer.body)
        assert_error_envelope(answer)
        assert answer.headers.get("Connection", "").lower() != "close", (method, path)
        after = await raw.request("GET", "/healthz")  # the same socket carries the next request
        assert after.status == 200, (method, path)


@pytest.mark.gen_test(timeout=60)
async def test_a_pooled_client_reuses_its_connection_after_errors(app: Any, http_server: Any, base_url: str) -> None:
    """The everyday case: an integration's pooled client sees errors and good answers on one connection."""
    token = await login(app, await make_user(app, "BASE"))
    ports = set()
    async with httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=1)) as client:
        for status, method, path, kw in error_requests(token) * 2:
            if "chunks" in kw:
                continue  # httpx chooses its own transfer coding
            answer = await client.request(method, path, headers=kw.get("headers"), content=kw.get("body"))
            assert answer.status_code == status, (method, path)
            fine = await client.get("/healthz")
            assert fine.status_code == 200
            ports.add(fine.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(ports) == 1, "every request went over one kept-alive connection"


@pytest.mark.gen_test(timeout=60)
async def test_a_declared_body_over_the_limit_is_read_and_answered_413_on_a_kept_connection(raw: RawConnection) -> None:
    """A client that sends its oversize upload anyway reads the 413 instead of a connection reset."""
    answer = await raw.request(
        "POST", "/api/v1/auth/login", headers={"Content-Type": "application/json"}, body=b"x" * (JSON_LIMIT + 1)
    )
    assert answer.status == 413 and answer.error_code == "body_too_large"
    assert answer.headers.get("Connection", "").lower() != "close"
    assert (await raw.request("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_an_oversize_body_awaiting_100_continue_is_refused_before_it_is_sent(raw: RawConnection) -> None:
    await raw.send(
        "POST",
        "/api/v1/auth/login",
        headers={"Content-Type": "application/json", "Content-Length": str(JSON_LIMIT + 1), "Expect": "100-continue"},
    )
    answer = await raw.answer()
    assert answer.status == 413 and answer.error_code == "body_too_large"
    assert answer.headers["Connection"] == "close"
    assert await raw.closed_by_server()


@pytest.mark.gen_test(timeout=60)
async def test_a_declared_body_far_over_the_limit_is_refused_at_once_saying_so(
    raw: RawConnection, settings: Any
) -> None:
    too_long = OVERSIZE_READ_FACTOR * settings.max_body_bytes + 1
    await raw.send(
        "POST", "/api/v1/auth/login", headers={"Content-Type": "application/json", "Content-Length": str(too_long)}
    )
    answer = await raw.answer()
    assert answer.status == 413 and answer.error_code == "body_too_large"
    assert answer.headers["Connection"] == "close"
    assert await raw.closed_by_server()


@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_body_over_the_handler_limit_is_read_and_answered_413_on_a_kept_connection(
    raw: RawConnection,
) -> None:
    piece = b"x" * (128 * 1024)
    answer = await raw.request(
        "POST",
        "/api/v1/auth/login",
        headers={"Content-Type": "application/json"},
        chunks=[piece] * (JSON_LIMIT // len(piece) + 1),
    )
    assert answer.status == 413 and answer.json["error"]["details"] == {"limit": JSON_LIMIT}
    assert answer.headers.get("Connection", "").lower() != "close"
    assert (await raw.request("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_body_over_the_server_limit_is_the_json_413(raw: RawConnection, settings: Any) -> None:
    piece = b"x" * (256 * 1024)
    count = settings.max_body_bytes // len(piece) + 1  # past DISPATCH_MAX_BODY_BYTES, not only the handler's limit
    answer = await raw.request(
        "POST", "/api/v1/auth/login", headers={"Content-Type": "application/json"}, chunks=[piece] * count
    )
    assert answer.status == 413, answer.body
    assert_error_envelope(answer)
    assert answer.json["error"]["details"] == {"limit": JSON_LIMIT}
    assert (await raw.request("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_an_endless_chunked_body_is_cut_short_with_the_json_413_and_a_close(
    raw: RawConnection, settings: Any
) -> None:
    piece = b"x" * (512 * 1024)
    await raw.send(
        "POST",
        "/api/v1/auth/login",
        headers={"Content-Type": "application/json"},
        chunks=[piece] * (OVERSIZE_READ_FACTOR * settings.max_body_bytes // len(piece)),
        end=False,
    )
    # One byte past what the server reads, of a chunk announced longer, then nothing: the server has read
    # every byte when it closes (an unread byte would turn its close into a reset, which may destroy the
    # answer before this client reads it; that is why it reads oversize bodies up to a point).
    raw.writer.write(b"%x\r\nx" % len(piece))
    answer = await raw.answer()
    assert answer.status == 413, answer.body
    assert_error_envelope(answer)
    assert answer.headers["Connection"] == "close"
    assert await raw.closed_by_server()


@pytest.mark.gen_test(timeout=60)
async def test_a_refused_request_with_a_large_body_is_answered_on_a_kept_connection(raw: RawConnection) -> None:
    """An upload with an expired token gets its 401 (not a reset), and the app can refresh and retry."""
    body = jsonutil.dumps({"notes": "x" * (JSON_LIMIT - 100)})
    answer = await raw.request(
        "POST",
        "/api/v1/orders",
        headers={"Authorization": "Bearer garbage", "Content-Type": "application/json"},
        body=body,
    )
    assert answer.status == 401 and answer.error_code == "invalid_token"
    assert answer.headers.get("Connection", "").lower() != "close"
    assert (await raw.request("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_request_id_on_every_error_answer(app: Any, api: Api) -> None:
    token = await login(app, await make_user(app, "BASE"))
    for status, method, path, kw in error_requests(token):
        if "chunks" in kw:
            continue
        given = await api.raw(
            method, path, body=kw.get("body"), headers={**kw.get("headers", {}), "X-Request-ID": "ticket-4711.a"}
        )
        assert given.status == status, (method, path)
        assert given.headers["X-Request-ID"] == "ticket-4711.a", (method, path)
        made = await api.raw(
            method,
            path,
            body=kw.get("body"),
            headers={**kw.get("headers", {}), "X-Request-ID": "no spaces or\tcontrols"},
        )
        assert len(made.headers["X-Request-ID"]) == 32, (method, path)


@pytest.mark.gen_test(timeout=60)
async def test_401_says_bearer_and_whether_the_token_was_the_problem(app: Any, api: Api) -> None:
    anonymous = await api.get("/api/v1/users/me", token="")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="dispatch"'
    forged = await api.get("/api/v1/users/me", token="garbage")
    assert forged.status == 401
    assert forged.headers["WWW-Authenticate"] == 'Bearer realm="dispatch", error="invalid_token"'
    token = await login(app, await make_user(app, "BASE"))
    await api.post("/api/v1/auth/logout", token=token)
    ended = await api.get("/api/v1/users/me", token=token)
    assert ended.status == 401 and 'error="invalid_token"' in ended.headers["WWW-Authenticate"]
    assert (
        "WWW-Authenticate"
        not in (await api.get("/api/v1/users", token=await login(app, await make_user(app, "BASE")))).headers
    )  # 403: signed in, not allowed
