"""The OpenAPI 3 document, built by apispec from marshmallow schemas and handler docstrings.

Each handler method documents itself: the docstring's first line is the summary, and YAML after
`---` holds at least the responses. Query parameters name a schema (`- {in: query, schema:
PageQuery}`) that apispec expands field by field, so names, bounds and enums come from the same
marshmallow schemas that validate the request. A method without its own operation is left out of
the document, and `undocumented` names it (the documentation test fails on it).
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable
from typing import Any

from apispec import APISpec
from apispec.exceptions import DuplicateComponentNameError
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.yaml_utils import load_operations_from_docstring

import dispatch
from dispatch.core.policy import HTTP_METHODS, is_implemented

NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
DOCUMENTED_METHODS = tuple(m for m in HTTP_METHODS if m not in ("head", "options"))
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


def openapi_path(pattern: str) -> str:
    """A Tornado route pattern as an OpenAPI path: `(?P<id>[^/]+)` → `{id}`."""
    path = NAMED_GROUP.sub(lambda m: "{" + m.group(1) + "}", pattern)
    return path.rstrip("$").replace("\\", "")


def build_spec(routes: Iterable[tuple[str, type]], schemas: Iterable[type]) -> dict[str, Any]:
    """The whole document as a dict (a private copy: built once per process, it never changes)."""
    key = (tuple(routes), tuple(schemas))
    if key not in _BUILT:  # parsing every docstring's YAML takes about half a second
        _BUILT[key] = _build(*key)
    return copy.deepcopy(_BUILT[key])


_BUILT: dict[tuple[tuple[tuple[str, type], ...], tuple[type, ...]], dict[str, Any]] = {}


def _build(routes: Iterable[tuple[str, type]], schemas: Iterable[type]) -> dict[str, Any]:
    spec = APISpec(
        title="dispatch API",
        version=dispatch.__version__,
        openapi_version="3.0.3",
        info={"description": "Real-time dispatch server for tow-truck and trucking fleets."},
        plugins=[MarshmallowPlugin()],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme(
        "apiKey",
        {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An organization's API key (`dsp_…`), within its scopes (SPEC section 9).",
        },
    )
    for schema in schemas:
        with contextlib.suppress(DuplicateComponentNameError):
            spec.components.schema(schema.__name__, schema=schema)
    for name, text in ERROR_STATUSES.items():
        spec.components.response(
            name,
            {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
    for pattern, handler in routes:
        operations = _operations(handler, pattern)
        if operations:
            spec.path(path=openapi_path(pattern), operations=operations, parameters=_path_parameters(pattern))
    return spec.to_dict()


def operation_of(handler: type, method: str) -> dict[str, Any] | None:
    """The operation a handler method's docstring declares (a summary line and YAML with responses), or None."""
    function = getattr(handler, method)
    doc = function.__doc__ or ""
    summary = doc.split("---")[0].strip().splitlines()
    operation = load_operations_from_docstring(doc).get(method) or _yaml_only(doc)
    if not summary or not operation.get("responses"):
        return None
    operation.setdefault("summary", summary[0].rstrip("."))
    operation.update(copy.deepcopy(getattr(function, "__openapi__", {})))  # generated parts (`@documented`)
    return operation


def undocumented(routes: Iterable[tuple[str, type]]) -> list[str]:
    """Every implemented handler method that declares no operation of its own, as `METHOD /path (Class)`."""
    return [
        f"{method.upper()} {openapi_path(pattern)} ({handler.__module__}.{handler.__name__})"
        for pattern, handler in routes
        for method in DOCUMENTED_METHODS
        if is_implemented(handler, method) and operation_of(handler, method) is None
    ]


def _operations(handler: type, pattern: str) -> dict[str, Any]:
    operations = {}
    for method in DOCUMENTED_METHODS:
        operation = operation_of(handler, method) if is_implemented(handler, method) else None
        if operation is None:
            continue
        _add_standard_errors(operation, getattr(getattr(handler, method), "__access__", None), pattern)
        operations[method] = operation
    return operations


def _add_standard_errors(operation: dict[str, Any], rule: Any, pattern: str) -> None:
    """Document the errors every operation of its kind can answer, and its security."""
    responses = operation["responses"]
    statuses = []
    if rule is not None and rule.needs_user:
        operation.setdefault("security", [{"bearer": []}])
        statuses += ["401", "403"] if rule.categories else ["401"]
    if "requestBody" in operation:
        statuses += ["400", "413", "415", "422"]
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        statuses += ["422"]  # query values are validated like bodies
    if NAMED_GROUP.search(pattern):
        statuses += ["400", "404"]
    for status in statuses:
        responses.setdefault(status, {"$ref": f"#/components/responses/{status}"})


def _yaml_only(doc: str) -> dict[str, Any]:
    """A docstring whose YAML (after `---`) describes one operation directly."""
    from apispec.yaml_utils import load_yaml_from_docstring

    return dict(load_yaml_from_docstring(doc) or {})


def _path_parameters(pattern: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in NAMED_GROUP.findall(pattern)
    ]
