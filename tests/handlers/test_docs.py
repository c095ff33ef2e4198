"""The OpenAPI document and the offline documentation pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from dispatch.core.policy import authenticated, is_implemented
from dispatch.core.vocabulary import VOCABULARY, choices
from dispatch.openapi import build_spec, openapi_path, undocumented
from handlers import all_routes
from handlers.base import BaseHandler
from models.common import SCHEMAS
from tests.support.helpers import Api

ENUMS = [choices(members) for members in VOCABULARY]
ENUMS += [[*enum, None] for enum in ENUMS]  # a nullable field's enum lists null too (OpenAPI 3.0.3)


@pytest.mark.gen_test
async def test_openapi_document_is_valid(api: Api) -> None:
    answer = await api.get("/api/openapi.json")
    assert answer.status == 200
    validate(answer.json)


@pytest.mark.gen_test
async def test_openapi_yaml_is_the_same_document(api: Api) -> None:
    as_json = (await api.get("/api/openapi.json")).json
    answer = await api.get("/api/openapi.yaml")
    assert answer.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(answer.body) == as_json


@pytest.mark.gen_test
async def test_every_route_and_method_is_documented(api: Api) -> None:
    assert undocumented(all_routes()) == []
    paths = (await api.get("/api/openapi.json")).json["paths"]
    for pattern, handler in all_routes():
        path = openapi_path(pattern)
        for method in ("get", "post", "put", "patch", "delete"):
            if is_implemented(handler, method):
                operation = paths.get(path, {}).get(method)
                assert operation is not None, f"{method.upper()} {path} is not in the OpenAPI document"
                assert operation["summary"] and operation["responses"], f"{method.upper()} {path}"


class HalfDocumentedHandler(BaseHandler):
    @authenticated
    def get(self) -> None:
        """Documented: a summary, and its responses after `---`.
        ---
        responses:
          200: {description: OK}
        """

    @authenticated
    def post(self) -> None:
        """A summary alone documents nothing."""

    @authenticated
    def delete(self) -> None:
        pass


def test_an_undocumented_method_is_caught_and_left_out() -> None:
    route = ("/half", HalfDocumentedHandler)
    assert undocumented([route]) == [f"{m} /half ({__name__}.HalfDocumentedHandler)" for m in ("POST", "DELETE")]
    assert set(build_spec([route], SCHEMAS)["paths"]["/half"]) == {"get"}


def enums_of(node: Any) -> list[list[Any]]:
    """Every `enum` list anywhere in a document."""
    if isinstance(node, dict):
        return ([node["enum"]] if "enum" in node else []) + [e for value in node.values() for e in enums_of(value)]
    if isinstance(node, list):
        return [e for value in node for e in enums_of(value)]
    return []


@pytest.mark.gen_test
async def test_every_enum_of_the_document_is_one_of_the_vocabulary(api: Api) -> None:
    document = (await api.get("/api/openapi.json")).json
    enums = enums_of(document)
    assert ["BASE", "DRIVER", "MANAGER", "ADMIN"] in enums and len(enums) > 10
    assert [enum for enum in enums if enum not in ENUMS and enum != [None]] == []  # [None]: a nullable object's null


class HandTypedEnumHandler(BaseHandler):
    @authenticated
    def get(self) -> None:
        """A status list typed by hand drifts from the Python enum.
        ---
        parameters:
          - {name: status, in: query, schema: {type: string, enum: [new, assigned, done]}}
        responses:
          200: {description: OK}
        """


def test_a_hand_typed_enum_is_caught() -> None:
    enums = enums_of(build_spec([("/typed", HandTypedEnumHandler)], SCHEMAS))
    assert [enum for enum in enums if enum not in ENUMS and enum != [None]] == [["new", "assigned", "done"]]


def test_list_endpoints_share_the_pagination_schema() -> None:
    paths = build_spec(all_routes(), SCHEMAS)["paths"]
    pages = [
        parameter
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter["name"] in ("limit", "offset")
    ]
    assert len(pages) >= 28
    assert all(
        p["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        for p in pages
        if p["name"] == "limit"
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
@pytest.mark.gen_test
async def test_doc_pages_load_only_local_assets(api: Api, page: str) -> None:
    answer = await api.get(page)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    html = answer.body.decode()
    assert not re.search(r"(src|href)=\"https?://", html), "the page must work offline"
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets
    for asset in assets:
        served = await api.raw("GET", asset)
        assert served.status == 200, asset
        assert len(served.body) > 100, asset
