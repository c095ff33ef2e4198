"""Errors that handlers raise and the base handler turns into the SPEC error envelope."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from tornado.web import HTTPError

# Default machine-readable codes for statuses a handler or Tornado may answer with.
DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(HTTPError):
    """An error answered to the client as `{"error": {code, message, details}}`.

    A Tornado HTTPError, so Tornado answers with its status instead of a 500.
    """

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code or default_code(status)
        self.message = message or default_message(status)
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(status)


class NotFound(ApiError):
    """The object does not exist, or is outside the caller's scope."""

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(404, "not_found", message)


class Conflict(ApiError):
    """The request conflicts with the current state (duplicate, invalid transition, lock)."""

    def __init__(self, message: str, code: str = "conflict", details: dict[str, Any] | None = None) -> None:
        super().__init__(409, code, message, details)


class ValidationFailed(ApiError):
    """Field validation failed; details maps each field to its messages."""

    def __init__(self, details: dict[str, Any], message: str = "Some fields are not valid.") -> None:
        super().__init__(422, "validation_error", message, details)


def default_code(status: int) -> str:
    """The snake_case code used when a handler gives none."""
    if status in DEFAULT_CODES:
        return DEFAULT_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def default_message(status: int) -> str:
    """A short human text for a status."""
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."
