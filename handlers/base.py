"""The base of every HTTP handler: JSON in and out, the error envelope, access rules, CORS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, cast

import tornado.httputil
import tornado.web
from marshmallow import Schema, ValidationError
from tornado.http1connection import HTTP1Connection

from dispatch.core import jsonutil
from dispatch.core.errors import ApiError, default_code, default_message
from dispatch.core.pagination import Page, parse_page
from dispatch.core.policy import HTTP_METHODS, Rule, is_implemented, not_for_api_keys, public, rule_of
from dispatch.core.requestid import request_id
from dispatch.core.storage import UNAVAILABLE
from dispatch.domain import api_keys
from dispatch.services import Services

log = logging.getLogger("dispatch.http")

JSON_LIMIT = 1024 * 1024
# The connection reads bodies of any size; the limits, with their JSON 413, are this handler's own.
UNBOUNDED = 2**62
# A body over the limit is read to its end (and dropped) up to this many times the server's limit,
# so the 413 comes on a connection that lives on; closing with unread bytes in the socket would
# reset it, and a reset can destroy the answer before the client reads it.
OVERSIZE_READ_FACTOR = 2
RETRY_AFTER_OUTAGE = 5  # seconds a client should wait after a 503 caused by a store outage
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-API-Key, X-Request-ID"


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """JSON API handler: every answer, errors included, is JSON.

    Bodies are streamed and counted against `max_body` (each handler may raise it for
    itself) as they come in. A request refused before its body is read (401, 403, 404,
    405, 413) is answered once its body is in, so a keep-alive connection survives the
    error answer; when the server must answer early and close, it says `Connection: close`.
    """

    max_body: int = JSON_LIMIT
    route: str = ""  # the route pattern, set when the application is built (metrics label)
    store_free: bool = False  # True: answers without MongoDB or Redis (the OpenAPI document lists no 503)

    def initialize(self) -> None:
        self._chunks: list[bytes] = []
        self._received = 0
        self._read_limit = self.max_body
        self._refusal: ApiError | None = None
        self._prepared = False
        self._closing = False
        self.session_id: str | None = None
        self._auth_error: ApiError | None = None

    # --- dependencies -------------------------------------------------
    @property
    def services(self) -> Services:
        """The process's services: settings, stores and the domain (dispatch.services)."""
        services: Services = self.settings["services"]
        return services

    # --- request life cycle -------------------------------------------
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self._set_cors_headers()

    @property
    def request_id(self) -> str:
        """This request's id (the caller's `X-Request-ID` when sane), as sent on the answer."""
        return request_id(self.request)

    async def prepare(self) -> None:
        cast(HTTP1Connection, self.request.connection).set_max_body_size(UNBOUNDED)
        try:
            await self._admit()
        except ApiError as exc:
            self._refuse(exc)
        self._prepared = True

    async def _admit(self) -> None:
        """Let the request through to its method, or raise why not."""
        self._check_body_size()
        method = self.request.method.lower()
        if not is_implemented(type(self), method):
            raise ApiError(405)
        rule = rule_of(self, method)
        if rule is None:  # check_handlers makes this impossible at start-up
            raise ApiError(500)
        if api_keys.HEADER in self.request.headers and (rule.needs_user or rule.people_only):
            await self._admit_key(rule)
            return
        await self.authenticate()
        if not rule.allows(self.current_category):
            if self.current_user is None:
                raise self._auth_error or ApiError(
                    401, "unauthenticated", "Sign in first: send a valid Bearer access token."
                )
            raise ApiError(403, "forbidden", "Your account may not do this.")

    def _refuse(self, error: ApiError) -> None:
        """Answer `error` once the body is read and dropped (the connection lives on), or now, closing it.

        Reading the body of a refused request costs little (it is bounded), while closing a connection
        with unread bytes resets it, which can destroy the answer before the client reads it.
        """
        if self._closing or not self._worth_reading():
            self._closing = True
            raise error
        self._refusal = error
        self._stand_in_for_method()

    def _worth_reading(self) -> bool:
        """Whether to read a refused request's body rather than answer at once and close."""
        if self.request.headers.get("Expect", "").lower() == "100-continue":
            return False  # the client sends the body only after a go-ahead, which it will not get
        length = self.request.headers.get("Content-Length")
        return length is None or int(length) <= self._read_limit

    def _stand_in_for_method(self) -> None:
        """Tornado calls the HTTP method once the body is in: answer the refusal there, or nothing."""

        def after_body(*args: Any, **kwargs: Any) -> None:
            if self._refusal is not None and not self._finished:
                raise self._refusal

        setattr(self, self.request.method.lower(), after_body)

    async def _admit_key(self, rule: Rule) -> None:
        """Let a request made with `X-API-Key` through as its organization's key principal, or raise why not.

        A key alone authenticates: with `Authorization` beside it the request is ambiguous (400). A method
        no key may call refuses it before any look-up. Public endpoints need no credential, so there a key
        is not even looked at (as a bad Bearer token is not), except on those for people (`/auth/*`).
        """
        if rule.needs_user and self.request.headers.get("Authorization"):
            raise ApiError(
                400, "ambiguous_credentials", "Send either `X-API-Key` or `Authorization: Bearer`, not both."
            )
        if rule.key_scope is None:
            raise not_for_api_keys()
        principal = await self.services.api_keys.resolve(self.request.headers[api_keys.HEADER])
        await self.services.api_keys.admit(principal)
        refusal = rule.key_refusal(principal["scopes"])
        if refusal is not None:
            raise refusal
        self.current_user = principal

    async def authenticate(self) -> None:
        """Resolve the caller from `Authorization: Bearer`; a bad token counts only where sign-in is needed."""
        self.current_user = None
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            return
        if scheme.lower() != "bearer" or not token.strip():
            self._auth_error = ApiError(401, "invalid_token", "Use `Authorization: Bearer <access token>`.")
            return
        try:
            caller = await self.services.identity.resolve(token.strip())
        except ApiError as exc:
            self._auth_error = exc
            return
        self.current_user, self.session_id = caller.user, caller.session_id

    @property
    def user_id(self) -> Any:
        """The caller's id (an ObjectId); only for methods that require a user."""
        return self.current_user["_id"]

    @property
    def client_ip(self) -> str:
        """The client's address: the socket peer, or the forwarded one when the peer is a trusted proxy."""
        peer = self.request.remote_ip or ""
        trusted = self.services.settings.trusted_proxies
        if not trusted or peer not in {p.strip() for p in trusted.split(",")}:
            return peer
        proxies = {p.strip() for p in trusted.split(",")}
        hops = [h.strip() for h in self.request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in proxies:
                return hop
        return peer

    @property
    def current_category(self) -> str | None:
        """The caller's category (role), or None when anonymous."""
        user = self.current_user
        return user.get("category") if user else None

    def _check_body_size(self) -> None:
        # Bodies over the limit are read and dropped up to a point (then 413, not a cut, and not a reset).
        self._read_limit = OVERSIZE_READ_FACTOR * max(self.max_body, self.services.settings.max_body_bytes)
        length = self.request.headers.get("Content-Length")
        if length is None:  # a chunked body: data_received keeps `max_body` of it
            return
        if not (length.isascii() and length.isdigit()):
            self._closing = True
            raise ApiError(400, "bad_content_length", "Content-Length must be a number.")
        if int(length) > self.max_body:
            raise self._too_large()

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"The body is over {self.max_body} bytes.", {"limit": self.max_body})

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._received += len(chunk)
        if self._received > self._read_limit:
            self._answer_early(self._refusal or self._too_large())
        elif self._refusal is None and self._received <= self.max_body:
            self._chunks.append(chunk)

    def _answer_early(self, error: ApiError) -> None:
        """Answer before the body's end (it is longer than worth reading): the connection then closes."""
        self._closing = True
        self._refusal = None
        self._stand_in_for_method()
        self.send_error(error.status, exc_info=(type(error), error, None))

    @property
    def body(self) -> bytes:
        """The whole request body (streamed in, kept to the limit)."""
        if self._received > self.max_body:
            raise self._too_large()
        return b"".join(self._chunks)

    @public
    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight."""
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    # --- JSON in ----------------------------------------------------------
    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object: 415 for another content type, 400 when malformed."""
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
        try:
            data = jsonutil.loads(self.body or b"null")
        except jsonutil.JSONDecodeError as exc:
            raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "malformed_json", "The body must be a JSON object.")
        return data

    def load(self, schema: Schema, data: Any = None, *, partial: bool = False) -> Any:
        """Validate data (default: the JSON body) with a marshmallow schema; 422 with per-field details."""
        try:
            return schema.load(self.json_body() if data is None else data, partial=partial)
        except ValidationError as exc:
            raise ApiError(
                422, "validation_error", "Some fields are not valid.", flatten_messages(exc.normalized_messages())
            ) from None

    def page(self) -> Page:
        """`limit` and `offset` from the query string."""
        return parse_page(self.get_query_argument("limit", None), self.get_query_argument("offset", None))

    # --- JSON out ---------------------------------------------------------
    def write_json(self, data: Any, status: int = 200) -> None:
        """Answer with a JSON document."""
        self.set_status(status)
        self.finish(jsonutil.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            code, message, details = exc.code, exc.message, exc.details
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            code, message, details = default_code(status_code), exc.reason or default_message(status_code), {}
        elif isinstance(exc, UNAVAILABLE):  # a store is down or restarting: the client may retry shortly
            self.set_status(503)
            self.set_header("Retry-After", str(RETRY_AFTER_OUTAGE))
            code, message, details = "service_unavailable", "A data store is unreachable; try again shortly.", {}
        else:  # never leak a traceback or internal text to the client
            code, message, details = default_code(status_code), default_message(status_code), {}
        if status_code == 401 and api_keys.HEADER in self.request.headers:
            self.set_header("WWW-Authenticate", 'ApiKey realm="dispatch", header="X-API-Key"')
        elif status_code == 401:  # RFC 6750: say which scheme, and whether the token sent was the problem
            sent = bool(self.request.headers.get("Authorization"))
            self.set_header("WWW-Authenticate", 'Bearer realm="dispatch"' + (', error="invalid_token"' if sent else ""))
        if self._closing or not self._prepared:  # the body was not read: this connection cannot carry another
            self.set_header("Connection", "close")
        if status_code == 405:  # RFC 9110: a 405 names the methods the resource has
            self.set_header("Allow", ", ".join(m.upper() for m in HTTP_METHODS if is_implemented(type(self), m)))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(jsonutil.dumps({"error": {"code": code, "message": message, "details": details}}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError) and value.status < 500:
            return  # an answered client error, not a server fault
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        if isinstance(value, (ApiError, *UNAVAILABLE)):  # a deliberate 5xx or an outage: one line, no traceback
            log.warning(
                "request %s: %s %s answered %d: %s: %s",
                self.request_id,
                self.request.method,
                self.request.path,
                getattr(value, "status", 503),
                type(value).__name__,
                value,
            )
            return
        log.error(
            "request %s failed: %s %s",
            self.request_id,
            self.request.method,
            self.request.path,
            exc_info=(typ, value, tb),
        )

    def _set_cors_headers(self) -> None:
        origin = self.request.headers.get("Origin")
        allowed = self.services.settings.cors_origin_list if "services" in self.settings else []
        if not origin or not allowed:
            return
        if "*" in allowed or origin in allowed:
            self.set_header("Access-Control-Allow-Origin", "*" if "*" in allowed else origin)
            self.set_header("Vary", "Origin")
            self.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
            self.set_header("Access-Control-Allow-Headers", CORS_HEADERS)
            self.set_header("Access-Control-Expose-Headers", "Retry-After, X-Request-ID")
            self.set_header("Access-Control-Max-Age", "600")


class NotFoundHandler(BaseHandler):
    """Catch-all: unknown paths answer the JSON 404 envelope, whatever the method."""

    def _not_found(self, *args: Any, **kwargs: Any) -> Awaitable[None] | None:
        raise ApiError(404, "not_found", f"No such path: {self.request.path}")

    get = post = put = patch = delete = head = public(_not_found)

    async def authenticate(self) -> None:
        """An unknown path needs no caller."""
        self.current_user = None


def documented(**parts: Any) -> Any:
    """Add generated parts (such as `callbacks`) to a method's OpenAPI operation, beside its docstring's YAML."""

    def decorate(method: Any) -> Any:
        method.__openapi__ = parts
        return method

    return decorate


def query_of(handler: tornado.web.RequestHandler) -> dict[str, str]:
    """The query string as a flat mapping (the last value of each name), for a schema to load."""
    return {name: handler.get_query_argument(name) for name in handler.request.query_arguments}


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as `{"field.sub": [msg, ...]}`."""
    if isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            return {prefix or "_schema": messages}
        out: dict[str, list[str]] = {}
        for item in messages:
            out.update(flatten_messages(item, prefix))
        return out
    if isinstance(messages, dict):
        out = {}
        for key, value in messages.items():
            out.update(flatten_messages(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "_schema": [str(messages)]}
