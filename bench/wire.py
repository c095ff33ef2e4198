"""Lean clients for the load generators: a websocket client and a keep-alive HTTP/1.1 client.

Both are plain asyncio protocols with no per-message tasks, so one generator process can
offer tens of thousands of frames per second and leave the CPU to the server under test
(Tornado's own client costs several times more per frame). Only what the benchmarks need:
text frames, ping/pong, close; HTTP with Content-Length or chunked answers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class HandshakeError(ConnectionError):
    """The server did not switch protocols."""


def _mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 client masking, as one big-integer XOR (fast for small frames)."""
    n = len(payload)
    if not n:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked client frame."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


class WebSocket(asyncio.Protocol):
    """One client connection; every text message goes to `on_message(payload: bytes)`."""

    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._open = False

    # --- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._open and not self._handshake():
            return
        self._frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or HandshakeError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # --- protocol ---------------------------------------------------------------
    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        if not head.startswith(b"HTTP/1.1 101"):
            self.upgraded.set_exception(HandshakeError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
            self.transport.close()  # type: ignore[union-attr]
            return False
        self._open = True
        self.upgraded.set_result(None)
        return True

    def _frames(self) -> None:
        buf, pos, size = self._buffer, 0, len(self._buffer)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            n, start = second & 0x7F, pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n, start = struct.unpack_from("!H", buf, pos + 2)[0], pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 10
            if size < start + n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            self._frame(first & 0x0F, payload)
        del buf[:pos]

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:
            self.on_message(payload)
        elif opcode == OP_PING:
            self.send(payload, OP_PONG)
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if not self.closed.done():
                self.closed.set_result(code)
            self.send(payload[:2], OP_CLOSE)
            self.transport.close()  # type: ignore[union-attr]

    # --- use ----------------------------------------------------------------------
    def send(self, payload: bytes, opcode: int = OP_TEXT) -> None:
        """Queue one frame (never waits: the open-loop generator measures lateness instead)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(payload, opcode))

    def close(self) -> None:
        """Send a close frame and drop the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(struct.pack("!H", 1000), OP_CLOSE))
            self.transport.close()


async def connect(
    url: str, on_message: Callable[[bytes], None], token: str | None = None, timeout: float = 20
) -> WebSocket:
    """Open a websocket (`ws://host:port/path`), with the token as `Authorization: Bearer`."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: WebSocket(on_message), parts.hostname, parts.port), timeout
    )
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())  # type: ignore[union-attr]
    try:
        await asyncio.wait_for(asyncio.shield(protocol.upgraded), timeout)
    except BaseException:
        protocol.transport.close()  # type: ignore[union-attr]
        raise
    return protocol


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send a request and read the whole answer; reconnects when the server closed the connection."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self._reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
        status, fields = _parse_head(head)
        if fields.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        else:
            data = await self._reader.readexactly(int(fields.get("content-length", "0")))  # type: ignore[union-attr]
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)  # type: ignore[union-attr]
            chunk = await self._reader.readexactly(size + 2)  # type: ignore[union-attr]
            if not size:
                return b"".join(parts)
            parts.append(chunk[:-2])

    def close(self) -> None:
        """Drop the connection."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            fields[name.strip().lower()] = value.strip()
    return status, fields
