"""Errors that handlers raise and the base handler turns into the SPEC error envelope."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class ErrorCode:
    """One `code` of the error envelope: the statuses it comes with, what it means, and where.

    `generic` codes can come from any operation of their kind (the OpenAPI document lists them by
    status); the others name the operations (their operationIds) that answer them.
    """

    statuses: tuple[int, ...]
    meaning: str
    operations: tuple[str, ...] = ()
    generic: bool = False


def _code(*statuses: int, meaning: str, operations: tuple[str, ...] = (), generic: bool = False) -> ErrorCode:
    return ErrorCode(statuses, meaning, operations, generic)


_SIGN_IN = ("login", "verifySmsCode")
_PROFILE = ("updateMe", "registerAccount")
# Every code the server answers with (a test keeps it complete); the OpenAPI document lists them per response.
ERROR_CODES: dict[str, ErrorCode] = {
    "bad_request": _code(400, meaning="The request is malformed.", generic=True),
    "bad_content_length": _code(400, meaning="Content-Length is not a number.", generic=True),
    "malformed_json": _code(400, meaning="The body is not a JSON object."),
    "invalid_id": _code(400, meaning="A path id is not a 24-hex-digit id."),
    "malformed_multipart": _code(400, meaning="The multipart body cannot be read.", operations=("uploadAvatar",)),
    "websocket_upgrade_required": _code(400, meaning="A websocket path was requested without the upgrade."),
    "invalid_code": _code(
        400, meaning="An SMS code is wrong, used up or expired.", operations=("verifySmsCode", "verifyPhone")
    ),
    "invalid_token": _code(
        400,
        401,
        meaning="400: an activation or reset link is not valid; 401: the access token is not valid.",
        operations=("activateAccount", "resetPassword"),
        generic=True,
    ),
    "ambiguous_credentials": _code(400, meaning="Both `X-API-Key` and `Authorization` were sent; send one."),
    "invalid_api_key": _code(401, meaning="The API key is unknown or revoked."),
    "insufficient_scope": _code(403, meaning="The API key lacks the scope (`details.required_scope`)."),
    "not_for_api_keys": _code(403, meaning="API keys may not call this; it is for people."),
    "unauthenticated": _code(401, meaning="No access token was sent.", generic=True),
    "token_expired": _code(401, meaning="The access token has expired: refresh it.", generic=True),
    "session_ended": _code(401, meaning="The token's session has ended (log-out, password change).", generic=True),
    "invalid_credentials": _code(401, meaning="Wrong login or password.", operations=("login",)),
    "invalid_refresh_token": _code(401, meaning="The refresh token is not valid.", operations=("refreshTokens",)),
    "refresh_token_reused": _code(
        401, meaning="A rotated refresh token was replayed: its session ended.", operations=("refreshTokens",)
    ),
    "forbidden": _code(403, meaning="The caller's role may not do this.", generic=True),
    "account_inactive": _code(403, meaning="The account is deactivated.", operations=_SIGN_IN),
    "email_not_verified": _code(403, meaning="The email address is not confirmed yet.", operations=("login",)),
    "admin_out_of_reach": _code(
        403, meaning="Only an ADMIN changes an ADMIN's organizations.", operations=("addMember", "removeMember")
    ),
    "invitation_required": _code(403, meaning="A MANAGER adds members only by invitation.", operations=("addMember",)),
    "field_forbidden": _code(403, meaning="This field is not the caller's to change.", operations=("updateUser",)),
    "field_locked": _code(
        403, meaning="Nobody changes another user's name, phone or email.", operations=("updateUser",)
    ),
    "profile_fields_locked": _code(
        403, meaning="Drivers do not change their own names or phone.", operations=("updateMe",)
    ),
    "organization_out_of_scope": _code(
        403, meaning="Not one of the caller's organizations.", operations=("updateUser",)
    ),
    "own_account": _code(403, meaning="Category and activity of one's own account.", operations=("updateUser",)),
    "internal_notes_forbidden": _code(
        403, meaning="Only operators post internal notes.", operations=("createSupportTicketMessage",)
    ),
    "method_forbidden": _code(
        403, meaning="This payment method is not the caller's.", operations=("createOrderPayment",)
    ),
    "shared_catalogue": _code(
        403,
        meaning="Only ADMINs write the shared price list.",
        operations=("createVehicleType", "updateVehicleType"),
    ),
    "transition_forbidden": _code(
        403, meaning="The caller's role may not make this move.", operations=("changeOrderStatus",)
    ),
    "not_found": _code(404, meaning="No such object, or not one the caller may see.", generic=True),
    "method_not_allowed": _code(405, meaning="The path has no such method (see `Allow`).", generic=True),
    "conflict": _code(409, meaning="The object changed meanwhile or already exists; try again.", generic=True),
    "username_taken": _code(409, meaning="The username is taken.", operations=_PROFILE),
    "email_taken": _code(409, meaning="The email address is taken.", operations=_PROFILE),
    "phone_taken": _code(409, meaning="The phone is taken.", operations=(*_PROFILE, "verifyPhone", "verifySmsCode")),
    "invite_code_taken": _code(409, meaning="An invite code collided; try again.", operations=_PROFILE),
    "user_taken": _code(409, meaning="A unique field of the account is taken.", operations=_PROFILE),
    "duplicate_external_ref": _code(
        409, meaning="The organization has an order with this `external_ref`.", operations=("createOrder",)
    ),
    "idempotency_key_reused": _code(
        409, meaning="This Idempotency-Key came with another request.", operations=("createOrder",)
    ),
    "idempotency_key_in_use": _code(
        409, meaning="The first request with this Idempotency-Key is still running.", operations=("createOrder",)
    ),
    "invalid_transition": _code(
        409,
        meaning="The state machine does not allow this move from the current status.",
        operations=("changeOrderStatus", "updateWaybill"),
    ),
    "vehicle_not_available": _code(409, meaning="The truck is not available.", operations=("assignOrder",)),
    "no_vehicle_available": _code(409, meaning="No truck of the organization is free.", operations=("assignOrder",)),
    "vehicle_busy": _code(409, meaning="The truck serves an order.", operations=("updateVehicle", "deleteVehicle")),
    "plate_taken": _code(409, meaning="A truck with this plate exists.", operations=("createVehicle", "updateVehicle")),
    "driver_taken": _code(
        409, meaning="This driver already has a truck.", operations=("createVehicle", "updateVehicle")
    ),
    "name_taken": _code(
        409, meaning="The price list has a type of this name.", operations=("createVehicleType", "updateVehicleType")
    ),
    "organization_name_taken": _code(
        409, meaning="An organization of this name exists.", operations=("createOrganization", "updateOrganization")
    ),
    "order_not_completed": _code(
        409,
        meaning="Only a completed order takes payments or a rating.",
        operations=("createOrderPayment", "rateOrder"),
    ),
    "already_rated": _code(409, meaning="The order is rated already.", operations=("rateOrder",)),
    "rating_busy": _code(409, meaning="The driver's rating is being updated; try again.", operations=("rateOrder",)),
    "waybill_locked": _code(409, meaning="A returned waybill no longer changes.", operations=("updateWaybill",)),
    "edit_conflict": _code(409, meaning="The waybill changed meanwhile; try again.", operations=("updateWaybill",)),
    "ticket_closed": _code(409, meaning="The ticket is closed.", operations=("createSupportTicketMessage",)),
    "own_invite_code": _code(409, meaning="One's own invite code.", operations=("applyInviteCode",)),
    "invite_already_applied": _code(
        409, meaning="An invite code was applied already.", operations=("applyInviteCode",)
    ),
    "invitation_conflict": _code(
        409, meaning="A pending invitation for this person exists.", operations=("createInvitation",)
    ),
    "invitation_not_open": _code(
        409,
        meaning="The invitation was answered, revoked or lapsed.",
        operations=("acceptInvitation", "declineInvitation"),
    ),
    "too_many_webhooks": _code(409, meaning="The organization has its most webhooks.", operations=("createWebhook",)),
    "tracking_ended": _code(
        409, meaning="The order ended more than 2 h ago: it can no longer be shared.", operations=("shareOrder",)
    ),
    "webhook_inactive": _code(
        409,
        meaning="The webhook is inactive: re-activate it first.",
        operations=("testWebhook", "redeliverWebhookDelivery"),
    ),
    "length_required": _code(411, meaning="The body needs a length.", generic=True),
    "body_too_large": _code(413, meaning="The body is over the limit (`details.limit`).", generic=True),
    "unsupported_media_type": _code(415, meaning="The body's Content-Type is not the one expected.", generic=True),
    "validation_error": _code(422, meaning="Fields are not valid; `details` maps each to its messages.", generic=True),
    "invalid_image": _code(422, meaning="Not a readable JPEG, PNG, WebP or GIF image.", operations=("uploadAvatar",)),
    "image_too_large": _code(422, meaning="The image has too many pixels.", operations=("uploadAvatar",)),
    "rate_limited": _code(429, meaning="Too many attempts; wait `Retry-After` seconds.", generic=True),
    "internal_error": _code(500, meaning="A fault of the server (never for bad input).", generic=True),
    "service_unavailable": _code(503, meaning="A data store is unreachable; retry after `Retry-After`.", generic=True),
    "not_ready": _code(503, meaning="Readiness: a store is down (`details.checks`).", operations=("getReadiness",)),
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
