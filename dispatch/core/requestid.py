"""Request ids: the caller's own when it is a sane token, else a new one; sent on every answer.

An integrator quotes the id in a support ticket and we find the request in the access log,
so it must be on every answer: errors, static files and websocket upgrades included.
"""

from __future__ import annotations

import re
import uuid

import tornado.httputil
import tornado.web

HEADER = "X-Request-ID"
SANE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ATTRIBUTE = "dispatch_request_id"


def request_id(request: tornado.httputil.HTTPServerRequest) -> str:
    """The request's id, decided once per request."""
    found = getattr(request, _ATTRIBUTE, None)
    if found is None:
        incoming = request.headers.get(HEADER, "")
        found = incoming if SANE.match(incoming) else uuid.uuid4().hex
        setattr(request, _ATTRIBUTE, found)
    return found


class RequestIdTransform(tornado.web.OutputTransform):
    """Adds `X-Request-ID` to every answer, whichever handler wrote it."""

    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        self.request_id = request_id(request)

    def transform_first_chunk(
        self, status_code: int, headers: tornado.httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        headers[HEADER] = self.request_id
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        return chunk
