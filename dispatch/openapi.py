"""The OpenAPI 3 document, built by apispec from marshmallow schemas and handler docstrings.

Each handler method documents itself: the docstring's first line is the summary, and YAML after
`---` holds at least the responses. Query parameters name a schema (`- {in: query, schema:
PageQuery}`) that apispec expands field by field, so names, bounds and enums come from the same
marshmallow schemas that validate the request. A method without its own operation is left out of
the document, and `undocumented` names it (the documentation test fails on it).

What every operation has in common is generated here from declared data rather than written in
each docstring: its `operationId` (derived from method and path unless the docstring names one),
its security (from the method's access rule), the error answers of its kind with their codes (the
catalogue `ERROR_CODES`), the headers the server sends, and an example of every body.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable
from typing import Any

import tornado.web
import tornado.websocket
from apispec import APISpec
from apispec.exceptions import DuplicateComponentNameError
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.yaml_utils import load_operations_from_docstring, load_yaml_from_docstring

import dispatch
from dispatch.core.errors import ERROR_CODES, default_message
from dispatch.core.policy import HTTP_METHODS, is_implemented
from dispatch.core.schema_examples import example_of

NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
DOCUMENTED_METHODS = tuple(m for m in HTTP_METHODS if m not in ("head", "options"))
API_PREFIX = "/api/v1"
ERROR_STATUSES = {
    "400": "Malformed request",
    "401": "Not signed in",
    "403": "Forbidden",
    "404": "Not found",
    "409": "Conflict",
    "413": "Body too large",
    "415": "Unsupported content type",
    "422": "Validation failed",
    "429": "Rate limited",
    "503": "A store is unavailable",
}
ERROR_EXAMPLES = {
    "400": ("malformed_json", "The body is not valid JSON: unexpected character: line 1 column 2 (char 1).", {}),
    "401": ("unauthenticated", "Sign in first: send a valid Bearer access token.", {}),
    "403": ("forbidden", "Your account may not do this.", {}),
    "404": ("not_found", "No such order.", {}),
    "409": ("invalid_transition", "An order cannot go from new to completed.", {"from": "new", "to": "completed"}),
    "413": ("body_too_large", "The body is over 1048576 bytes.", {"limit": 1048576}),
    "415": ("unsupported_media_type", "Send the body as application/json.", {}),
    "422": ("validation_error", "Some fields are not valid.", {"pickup.lat": ["Must be between -90 and 90."]}),
    "429": ("rate_limited", "Too many attempts; try again in 42 s.", {"retry_after": 42}),
    "503": ("service_unavailable", "A data store is unreachable; try again shortly.", {}),
}
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the caller's own `X-Request-ID` when sane); quote it in a support ticket.",
        "required": True,
        "schema": {"type": "string", "example": "0f8e5c1b9a7d4e2f8c3b6a5d4e3f2a1b"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "example": 5},
    },
    "WWW-Authenticate": {
        "description": 'The scheme to use (RFC 6750), and `error="invalid_token"` when a token was sent.',
        "required": True,
        "schema": {"type": "string", "example": 'Bearer realm="dispatch", error="invalid_token"'},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer of an earlier request with the same `Idempotency-Key`.",
        "schema": {"type": "string", "example": "true"},
    },
    "ETag": {
        "description": "The file's version; send it back in `If-None-Match` for a 304.",
        "required": True,
        "schema": {"type": "string", "example": '"3f9d2c1e0b7a"'},
    },
    "Last-Modified": {
        "description": "When the file last changed; send it back in `If-Modified-Since`.",
        "schema": {"type": "string", "example": "Mon, 23 Nov 2026 09:40:37 GMT"},
    },
}
HEADERS_OF_STATUS = {"401": ["WWW-Authenticate"], "429": ["Retry-After"], "503": ["Retry-After"]}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "`Authorization: Bearer <access token>` from `POST /api/v1/auth/login`.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An organization's API key (`dsp_…`), within its scopes (SPEC section 9).",
    },
    "accessTokenQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The access token in the query string (websockets only: browsers cannot set headers there).",
    },
}
REFUSES_KEYS = "x-refuses-api-keys"  # set while building: a public operation for people that refuses a key
SOCKET_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"accessTokenQuery": []}]
VERBS = {"get": "get", "post": "create", "put": "put", "patch": "update", "delete": "delete"}


def openapi_path(pattern: str) -> str:
    """A Tornado route pattern as an OpenAPI path: `(?P<id>[^/]+)` → `{id}`."""
    path = NAMED_GROUP.sub(lambda m: "{" + m.group(1) + "}", pattern)
    return path.rstrip("$").replace("\\", "")


def build_spec(
    routes: Iterable[tuple[str, type]], schemas: Iterable[type], public_url: str = "http://127.0.0.1:8888"
) -> dict[str, Any]:
    """The whole document as a dict (a private copy: built once per process, it never changes)."""
    key = (tuple(routes), tuple(schemas), public_url)
    if key not in _BUILT:  # parsing every docstring's YAML takes about half a second
        _BUILT[key] = _build(*key)
    return copy.deepcopy(_BUILT[key])


_BUILT: dict[tuple[tuple[tuple[str, type], ...], tuple[type, ...], str], dict[str, Any]] = {}


def _build(routes: Iterable[tuple[str, type]], schemas: Iterable[type], public_url: str) -> dict[str, Any]:
    spec = APISpec(
        title="dispatch API",
        version=dispatch.__version__,
        openapi_version="3.0.3",
        info={
            "description": "Real-time dispatch server for tow-truck and trucking fleets.",
            "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
        },
        servers=[{"url": public_url.rstrip("/"), "description": "This server (`DISPATCH_PUBLIC_URL`)"}],
        plugins=[MarshmallowPlugin()],
    )
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for schema in schemas:
        with contextlib.suppress(DuplicateComponentNameError):
            spec.components.schema(schema.__name__, schema=schema)
    for pattern, handler in routes:
        operations = _operations(handler, pattern)
        if operations:
            spec.path(path=openapi_path(pattern), operations=operations, parameters=_path_parameters(pattern))
    document = spec.to_dict()
    _finish(document)
    return document


def operation_of(handler: type, method: str) -> dict[str, Any] | None:
    """The operation a handler method's docstring declares (a summary line and YAML with responses), or None."""
    function = getattr(handler, method)
    doc = function.__doc__ or ""
    summary = doc.split("---")[0].strip().splitlines()
    operation = load_operations_from_docstring(doc).get(method) or dict(load_yaml_from_docstring(doc) or {})
    if not summary or not operation.get("responses"):
        return None
    operation.setdefault("summary", summary[0].rstrip("."))
    operation.update(copy.deepcopy(getattr(function, "__openapi__", {})))  # generated parts (`@documented`)
    operation["responses"] = {str(status): answer for status, answer in operation["responses"].items()}
    return operation


def undocumented(routes: Iterable[tuple[str, type]]) -> list[str]:
    """Every implemented handler method that declares no operation of its own, as `METHOD /path (Class)`."""
    return [
        f"{method.upper()} {openapi_path(pattern)} ({handler.__module__}.{handler.__name__})"
        for pattern, handler in routes
        for method in DOCUMENTED_METHODS
        if is_implemented(handler, method) and operation_of(handler, method) is None
    ]


def operation_id(method: str, path: str) -> str:
    """A stable operationId from method and path: `GET /api/v1/orders/{order_id}/events` → `listOrderEvents`."""
    parts = [p for p in path.removeprefix(API_PREFIX).split("/") if p]
    nouns = [p for p in parts if not p.startswith("{")]
    is_item = bool(parts) and parts[-1].startswith("{")
    last = nouns[-1] if nouns else "root"
    words = [_singular(n) for n in nouns[:-1]]
    if method == "get" and not is_item and _plural(last):
        return _camel(["list", *words, last])
    return _camel([VERBS[method], *words, last if not _plural(last) else _singular(last)])


def _plural(word: str) -> bool:
    return len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us"))


def _singular(word: str) -> str:
    if not _plural(word):
        return word
    return word[:-3] + "y" if word.endswith("ies") else word[:-1]


def _camel(words: list[str]) -> str:
    pieces = [p for w in words for p in re.split(r"[^A-Za-z0-9]+", w) if p]
    return pieces[0].lower() + "".join(p[:1].upper() + p[1:] for p in pieces[1:])


def _operations(handler: type, pattern: str) -> dict[str, Any]:
    operations = {}
    for method in DOCUMENTED_METHODS:
        operation = operation_of(handler, method) if is_implemented(handler, method) else None
        if operation is None:
            continue
        operation.setdefault("operationId", operation_id(method, openapi_path(pattern)))
        _add_security(operation, handler, getattr(getattr(handler, method), "__access__", None))
        _add_standard_errors(operation, handler, pattern, getattr(getattr(handler, method), "__access__", None))
        operations[method] = operation
    return operations


def _add_security(operation: dict[str, Any], handler: type, rule: Any) -> None:
    """Who may call it, from its access rule: nobody in particular, a bearer token, or a token or an API key."""
    if issubclass(handler, tornado.websocket.WebSocketHandler):
        operation.setdefault("security", SOCKET_SECURITY)
    elif rule is None or not rule.needs_user:
        operation.setdefault("security", [])
    elif getattr(rule, "key_scope", None):
        operation.setdefault("security", [{"bearer": []}, {"apiKey": []}])
    else:
        operation.setdefault("security", [{"bearer": []}])


def _add_standard_errors(operation: dict[str, Any], handler: type, pattern: str, rule: Any) -> None:
    """Document the errors every operation of its kind can answer."""
    responses = operation["responses"]
    statuses = []
    socket = issubclass(handler, tornado.websocket.WebSocketHandler)
    if getattr(rule, "people_only", False):  # sign-up and sign-in refuse an API key
        operation[REFUSES_KEYS] = True
        statuses += ["403"]
    if operation["security"] and not socket:
        statuses += ["400", "401", "403"]  # 400: a token and a key at once
        if any("apiKey" in s for s in operation["security"]):
            statuses += ["429"]  # each key has its own rate limit
    if "requestBody" in operation:
        statuses += ["400", "413", "415", "422"]
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        statuses += ["422"]  # query values are validated like bodies
    if NAMED_GROUP.search(pattern):
        statuses += ["400", "404"]
    if not socket and not getattr(handler, "store_free", False):
        statuses += ["503"]
    for status in statuses:
        responses.setdefault(status, {"$ref": f"#/components/responses/{status}"})
    if issubclass(handler, tornado.web.StaticFileHandler):
        _add_conditional_get(operation)


def _add_conditional_get(operation: dict[str, Any]) -> None:
    """A static file answers `ETag` / `Last-Modified`, and 304 to a matching `If-None-Match` / `If-Modified-Since`."""
    operation.setdefault("parameters", []).extend(
        [
            {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}, "description": "An earlier ETag."},
            {
                "name": "If-Modified-Since",
                "in": "header",
                "schema": {"type": "string"},
                "description": "An earlier Last-Modified.",
            },
        ]
    )
    ok = operation["responses"]["200"]
    ok.setdefault("headers", {}).update(
        {name: {"$ref": f"#/components/headers/{name}"} for name in ("ETag", "Last-Modified")}
    )
    operation["responses"].setdefault("304", {"description": "Not modified: the copy the client holds is current."})


def _path_parameters(pattern: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "example": "6b040a08aecd4a176c462245" if name.endswith("_id") else "a1b2c3d4e5.jpg",
        }
        for name in NAMED_GROUP.findall(pattern)
    ]


# --- the finished document ----------------------------------------------------


def _finish(document: dict[str, Any]) -> None:
    """Refine apispec's output: nullable nested objects, error answers, headers, examples, unique ids."""
    schemas = document["components"]["schemas"]
    for schema in schemas.values():
        _nullable_refs(schema)
    seen: dict[str, str] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in DOCUMENTED_METHODS:
                continue
            where = f"{method.upper()} {path}"
            if operation["operationId"] in seen:
                raise ValueError(
                    f"operationId {operation['operationId']} of {where} is also {seen[operation['operationId']]}"
                )
            seen[operation["operationId"]] = where
            _finish_operation(operation, path, document)
            operation.pop(REFUSES_KEYS, None)
            for callback in _callback_operations(operation):
                callback.setdefault("security", [])  # the receiver checks `X-Dispatch-Signature` instead
                _finish_operation(callback, path, document, callback=True)
    document["components"].pop("responses", None)  # every error answer is written out per operation
    code = schemas["ErrorBody"]["properties"]["code"]
    catalogue = "".join(
        f"\n- `{name}` ({', '.join(map(str, entry.statuses))}): {entry.meaning}" for name, entry in ERROR_CODES.items()
    )
    code.update(
        {
            "description": f"{code.get('description', '')}. Every code the server sends:{catalogue}",
            "example": "not_found",
        }
    )


def _nullable_refs(schema: dict[str, Any]) -> None:
    """marshmallow's `Nested(allow_none=True)` comes out as `anyOf: [$ref, {type: object, nullable}]`: any object.

    Its other branch should admit `null` alone, which OpenAPI 3.0.3 says as `nullable` with `enum: [null]`;
    generated clients then read the field as the object or None.
    """
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf", [])
        if len(options) == 2 and options[1] == {"type": "object", "nullable": True}:
            options[1] = {"type": "object", "nullable": True, "enum": [None]}


def _callback_operations(operation: dict[str, Any]) -> list[dict[str, Any]]:
    """The requests the server makes to a receiver (`callbacks`: webhook deliveries)."""
    return [
        callback
        for expressions in operation.get("callbacks", {}).values()
        for item in expressions.values()
        for method, callback in item.items()
        if method in DOCUMENTED_METHODS
    ]


def _finish_operation(operation: dict[str, Any], path: str, document: dict[str, Any], callback: bool = False) -> None:
    """Error answers with their codes, headers and examples; of a callback (the receiver's side), its body's example."""
    for entry in ERROR_CODES.values():  # a status the catalogue says the operation answers
        if not callback and operation["operationId"] in entry.operations:
            for status in entry.statuses:
                operation["responses"].setdefault(str(status), {"$ref": f"#/components/responses/{status}"})
    for status, response in [] if callback else list(operation["responses"].items()):
        if response.get("$ref", "").startswith("#/components/responses/"):
            response = operation["responses"][status] = _error_response(status, operation, path)
        elif status[0] in "45" and "x-error-codes" not in response:
            _describe_codes(response, codes_of(status, operation, path))
        response.setdefault("headers", {})
        for name in ["X-Request-ID", *HEADERS_OF_STATUS.get(status, [])]:
            response["headers"].setdefault(name, {"$ref": f"#/components/headers/{name}"})
        if status.startswith("2") and _takes_idempotency_key(operation):
            response["headers"]["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
        for media_type, content in response.get("content", {}).items():
            _add_example(content, media_type, document, request=False)
    body = operation.get("requestBody", {})
    for media_type, content in body.get("content", {}).items():
        _add_example(content, media_type, document, request=True)


def _takes_idempotency_key(operation: dict[str, Any]) -> bool:
    return any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))


def codes_of(status: str, operation: dict[str, Any], path: str) -> list[str]:
    """The error codes an operation may answer with this status: the generic ones and its own."""
    generic = [
        code
        for code, entry in ERROR_CODES.items()
        if entry.generic and int(status) in entry.statuses and code not in ("bad_request",)
    ]
    if status == "400":  # a 400 `invalid_token` is about links (activation, reset), named by their operations
        generic.remove("invalid_token")
    if not operation["security"]:  # a role refusal needs a signed-in caller
        generic = [code for code in generic if code != "forbidden"]
    if status == "400":
        if "requestBody" in operation:
            generic.append("malformed_json")
        if "{" in path:
            generic.append("invalid_id")
    own = [code for code, entry in ERROR_CODES.items() if operation["operationId"] in entry.operations]
    own = [c for c in own if int(status) in ERROR_CODES[c].statuses]
    return list(dict.fromkeys(generic + _credential_codes(status, operation) + own))


def _credential_codes(status: str, operation: dict[str, Any]) -> list[str]:
    """The codes about the credentials sent: a token and a key at once, a bad key, a key where none may go."""
    security = operation["security"]
    if {"accessTokenQuery": []} in security:  # sockets close with 4401 / 4403 instead
        return []
    admits_key = {"apiKey": []} in security
    refuses_key = (bool(security) and not admits_key) or operation.get(REFUSES_KEYS, False)
    codes = {
        "400": ["ambiguous_credentials"] if security else [],
        "401": ["invalid_api_key"] if admits_key else [],
        "403": ["insufficient_scope"] if admits_key else ["not_for_api_keys"] if refuses_key else [],
    }
    return codes.get(status, [])


def _error_response(status: str, operation: dict[str, Any], path: str) -> dict[str, Any]:
    response = {
        "description": ERROR_STATUSES.get(status, default_message(int(status))),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    _describe_codes(response, codes_of(status, operation, path))
    return response


def _describe_codes(response: dict[str, Any], codes: list[str]) -> None:
    """List an error answer's codes (`x-error-codes` and its description), with an example of one of them."""
    if not codes:
        return
    response["x-error-codes"] = codes
    listing = "".join(f"\n- `{c}`: {ERROR_CODES[c].meaning}" for c in codes)
    response["description"] = f"{response['description'].rstrip('.')}.\n\nError codes:{listing}"
    content = response.get("content", {}).get("application/json")
    if content is None or "example" in content:
        return
    own = [c for c in codes if not ERROR_CODES[c].generic]
    typical = next((e for e in ERROR_EXAMPLES.values() if e[0] in codes and not own), None)
    code, message, details = typical or ((own or codes)[0], ERROR_CODES[(own or codes)[0]].meaning, {})
    content["example"] = {"error": {"code": code, "message": message, "details": details}}


def _add_example(content: dict[str, Any], media_type: str, document: dict[str, Any], *, request: bool) -> None:
    if "example" in content or "examples" in content or "schema" not in content:
        return
    example = example_of(content["schema"], document["components"]["schemas"], request=request)
    if example is not None:
        content["example"] = example
