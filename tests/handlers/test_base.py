"""The base handler's contract: the SPEC error envelope for every error, CORS, request ids."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields, validate

from dispatch.core.errors import ApiError
from dispatch.core.policy import public
from handlers.base import BaseHandler
from tests.support.helpers import Api


class Probe(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2))
    point = fields.Nested(Schema.from_dict({"lat": fields.Float(required=True, validate=validate.Range(-90, 90))}))


class ProbeHandler(BaseHandler):
    """A JSON endpoint exercising the base handler's input path, as resource handlers use it."""

    @public
    def post(self) -> None:
        self.write_json({"received": self.load(Probe())}, 201)

    @public
    def get(self) -> None:
        page = self.page()
        if self.get_query_argument("boom", None):
            raise RuntimeError("secret internal detail")
        if self.get_query_argument("conflict", None):
            raise ApiError(409, "already_taken", "Taken.", {"field": "name"})
        self.write_json(page.envelope([], 0))


@pytest.fixture
def app(app: Any) -> Any:
    app.add_handlers(r".*$", [(r"/api/v1/probe", ProbeHandler)])
    return app


@pytest.mark.gen_test
async def test_valid_json_is_loaded(api: Api) -> None:
    answer = await api.post("/api/v1/probe", {"name": "tow", "point": {"lat": 55.7}})
    assert answer.status == 201
    assert answer.json == {"received": {"name": "tow", "point": {"lat": 55.7}}}


@pytest.mark.gen_test
async def test_malformed_json_is_400(api: Api) -> None:
    answer = await api.post("/api/v1/probe", body=b'{"name": ', headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.error_code == "malformed_json"


@pytest.mark.gen_test
async def test_json_that_is_not_an_object_is_400(api: Api) -> None:
    answer = await api.post("/api/v1/probe", body=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert answer.status == 400


@pytest.mark.gen_test
async def test_wrong_content_type_is_415(api: Api) -> None:
    answer = await api.post("/api/v1/probe", body=b"name=tow", headers={"Content-Type": "text/plain"})
    assert answer.status == 415
    assert answer.error_code == "unsupported_media_type"


@pytest.mark.gen_test
async def test_validation_is_422_with_each_field(api: Api) -> None:
    answer = await api.post("/api/v1/probe", {"name": "x", "point": {"lat": 91}, "extra": 1})
    assert answer.status == 422
    details = answer.json["error"]["details"]
    assert set(details) == {"name", "point.lat", "extra"}
    assert all(isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in details.values())


@pytest.mark.gen_test
async def test_oversize_body_is_413_before_it_is_read(api: Api) -> None:
    answer = await api.post(
        "/api/v1/probe", body=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )
    assert answer.status == 413
    assert answer.json["error"]["details"]["limit"] == 1024 * 1024


@pytest.mark.gen_test
async def test_unknown_path_is_json_404_for_every_method(api: Api) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        answer = await api.request(method, "/api/v1/no-such-thing")
        assert answer.status == 404, method
        assert answer.error_code == "not_found"
    assert (await api.get("/nowhere")).status == 404


@pytest.mark.gen_test
async def test_unsupported_method_is_405(api: Api) -> None:
    answer = await api.delete("/api/v1/probe")
    assert answer.status == 405
    assert answer.error_code == "method_not_allowed"
    assert (await api.post("/healthz", {})).status == 405


@pytest.mark.gen_test
async def test_server_fault_is_500_without_internals(api: Api) -> None:
    answer = await api.raw("GET", "/api/v1/probe?boom=1")
    assert answer.status == 500
    assert b"secret internal detail" not in answer.body and b"Traceback" not in answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    assert b'"internal_error"' in answer.body


@pytest.mark.gen_test
async def test_handler_errors_keep_their_code_and_details(api: Api) -> None:
    answer = await api.get("/api/v1/probe?conflict=1")
    assert answer.status == 409
    assert answer.json["error"] == {"code": "already_taken", "message": "Taken.", "details": {"field": "name"}}


@pytest.mark.gen_test
async def test_bad_pagination_is_422(api: Api) -> None:
    answer = await api.get("/api/v1/probe?limit=500&offset=-1")
    assert answer.status == 422
    assert set(answer.json["error"]["details"]) == {"limit", "offset"}
    ok = await api.get("/api/v1/probe?limit=10&offset=5")
    assert ok.json == {"items": [], "total": 0, "limit": 10, "offset": 5}


@pytest.mark.gen_test
async def test_request_id_is_echoed_or_made(api: Api) -> None:
    given = await api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = await api.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["X-Request-ID"]) == 32


@pytest.mark.gen_test
async def test_cors_only_for_configured_origins(api: Api, app: Any) -> None:
    assert "Access-Control-Allow-Origin" not in (await api.get("/healthz", headers={"Origin": "http://x"})).headers
    services = app.settings["services"]
    services.settings = services.settings.replace(cors_origins="https://console.example")
    allowed = await api.request("OPTIONS", "/api/v1/probe", headers={"Origin": "https://console.example"})
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    other = await api.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
