"""The OpenAPI document and the offline documentation pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from dispatch.openapi import openapi_path
from dispatch.core.policy import is_implemented
from handlers import all_routes
from tests.support.helpers import Api


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
    paths = (await api.get("/api/openapi.json")).json["paths"]
    for pattern, handler in all_routes():
        path = openapi_path(pattern)
        for method in ("get", "post", "put", "patch", "delete"):
            if is_implemented(handler, method):
                assert method in paths.get(path, {}), f"{method.upper()} {path} is not in the OpenAPI document"


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
