"""The OpenAPI document as integrators use it: ids, security, headers, codes, examples, lint, a client."""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator

from dispatch.core.errors import DEFAULT_CODES, ERROR_CODES
from dispatch.openapi import build_spec, operation_id
from handlers import all_routes
from handlers.base import BaseHandler
from models.common import SCHEMAS
from tests.support.factories import PASSWORD, make_org, make_user
from tests.support.helpers import Api

ROOT = Path(__file__).resolve().parents[2]
REDOCLY = ROOT / "var" / "node" / "node_modules" / ".bin" / "redocly"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
METHODS = ("get", "post", "put", "patch", "delete")
# Codes built at run time rather than written as a literal where they are raised: the file and what it makes.
COMPUTED_CODES = {
    "models/users.py": {"username_taken", "email_taken", "phone_taken", "invite_code_taken", "user_taken"},
    "models/vehicles.py": {"plate_taken", "driver_taken"},
    "dispatch/domain/identity.py": {"token_expired", "invalid_token"},
    "dispatch/domain/avatars.py": {"invalid_image", "image_too_large"},
}
ERROR_CALLS = {"ApiError": 1, "Conflict": 1}  # the code's position among the arguments


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of a document as (method, path, operation)."""
    return [(m, p, op) for p, item in document["paths"].items() for m, op in item.items() if m in METHODS]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_spec(all_routes(), SCHEMAS, "https://dispatch.example.com")


def test_operation_ids_are_unique_and_stable(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) == len(operations(document))
    by_route = {f"{m.upper()} {p}": op["operationId"] for m, p, op in operations(document)}
    assert by_route["GET /api/v1/orders"] == "listOrders"
    assert by_route["POST /api/v1/orders"] == "createOrder"
    assert by_route["GET /api/v1/orders/{order_id}"] == "getOrder"
    assert by_route["POST /api/v1/orders/{order_id}/status"] == "changeOrderStatus"
    assert by_route["GET /api/v1/orders/{order_id}/events"] == "listOrderEvents"
    assert by_route["POST /api/v1/auth/login"] == "login"
    assert by_route["GET /ws/driver"] == "openDriverSocket"
    assert operation_id("delete", "/api/v1/webhooks/{webhook_id}") == "deleteWebhook"
    assert operation_id("get", "/api/v1/webhooks/{webhook_id}/deliveries") == "listWebhookDeliveries"


def test_servers_come_from_the_public_url(document: dict[str, Any]) -> None:
    assert document["servers"][0]["url"] == "https://dispatch.example.com"
    assert all(p.startswith(("/api/v1/", "/api/openapi", "/ws/", "/")) for p in document["paths"])


def test_every_operation_declares_its_security(document: dict[str, Any]) -> None:
    security = {op["operationId"]: op["security"] for _, _, op in operations(document)}
    assert security["login"] == security["getHealth"] == security["registerAccount"] == []
    assert security["getMe"] == [{"bearer": []}]
    assert security["openDriverSocket"] == [{"bearer": []}, {"accessTokenQuery": []}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "in": "header", "name": "X-API-Key"}
    for scheme in (name for entries in security.values() for entry in entries for name in entry):
        assert scheme in schemes


class KeyAdmittingHandler(BaseHandler):
    def get(self) -> None:
        """A rule that also admits an organization's API key.
        ---
        responses:
          200: {description: OK}
        """


# An access rule with a key scope, as API keys declare them (`key_scope` on the rule).
KeyAdmittingHandler.get.__access__ = SimpleNamespace(  # type: ignore[attr-defined]
    needs_user=True, categories=frozenset(), key_scope="orders:read"
)


def test_an_operation_a_key_may_call_takes_a_token_or_a_key() -> None:
    operation = build_spec([("/api/v1/keyed", KeyAdmittingHandler)], SCHEMAS)["paths"]["/api/v1/keyed"]["get"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert operation["operationId"] == "getKeyed"
    assert {"401", "403", "429", "503"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_every_answer_declares_the_headers_the_server_sends(document: dict[str, Any]) -> None:
    ref = "#/components/headers/{}".format
    for method, path, op in operations(document):
        where = f"{method.upper()} {path}"
        for status, response in op["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-ID"] == {"$ref": ref("X-Request-ID")}, where
            if status in ("429", "503") and op["operationId"] != "getReadiness":
                assert "Retry-After" in headers, f"{where} {status}"
            if status == "401":
                assert "WWW-Authenticate" in headers, where
        if op["security"] and not path.startswith("/ws/"):
            assert {"401", "503"} <= set(op["responses"]), where
    create = document["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["headers"]
    assert create["Idempotent-Replayed"] == {"$ref": ref("Idempotent-Replayed")}
    avatar = document["paths"]["/media/avatars/{name}"]["get"]["responses"]
    assert "ETag" in avatar["200"]["headers"] and "304" in avatar
    assert "503" not in document["paths"]["/healthz"]["get"]["responses"]


def test_a_nullable_nested_object_is_the_object_or_null(document: dict[str, Any]) -> None:
    location = document["components"]["schemas"]["VehicleOut"]["properties"]["location"]
    assert location["anyOf"] == [
        {"$ref": "#/components/schemas/VehicleLocation"},
        {"type": "object", "nullable": True, "enum": [None]},
    ]
    validator = OAS30Validator({**location, "components": document["components"]})
    assert validator.is_valid(None) and validator.is_valid({"lat": 55.7, "lon": 37.6})
    assert not validator.is_valid({"lat": "north"})


def error_codes_in_code() -> tuple[set[str], list[str]]:
    """Every literal error code raised in the code base, and where a code is computed instead."""
    found, computed = set(DEFAULT_CODES.values()), []
    for folder in ("dispatch", "handlers", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):  # exceptions that carry their code as a class attribute
                    found |= {
                        item.value.value
                        for item in node.body
                        if isinstance(item, ast.Assign)
                        and [getattr(t, "id", "") for t in item.targets] == ["code"]
                        and isinstance(item.value, ast.Constant)
                    }
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name not in ERROR_CALLS:
                    continue
                code = next((k.value for k in node.keywords if k.arg == "code"), None)
                if code is None and len(node.args) > ERROR_CALLS[name]:
                    code = node.args[ERROR_CALLS[name]]
                if isinstance(code, ast.Constant):
                    found.add(code.value)
                elif code is not None:
                    computed.append(where)
    return found, computed


def test_every_error_code_of_the_code_base_is_in_the_catalogue(document: dict[str, Any]) -> None:
    literal, computed = error_codes_in_code()
    assert set(computed) <= set(COMPUTED_CODES), "list the codes a new computed code can take in COMPUTED_CODES"
    used = literal | {code for codes in COMPUTED_CODES.values() for code in codes}
    assert sorted(used - set(ERROR_CODES)) == [], "add these codes to ERROR_CODES in dispatch/core/errors.py"
    ids = {op["operationId"] for _, _, op in operations(document)}
    named = {name for entry in ERROR_CODES.values() for name in entry.operations}
    assert sorted(named - ids) == [], "ERROR_CODES names operations the document does not have"
    listed = {
        c for _, _, op in operations(document) for r in op["responses"].values() for c in r.get("x-error-codes", [])
    }
    assert sorted(set(ERROR_CODES) - listed - {"internal_error", "method_not_allowed", "length_required"}) == [
        "bad_request",
        "websocket_upgrade_required",
    ]
    catalogue = document["components"]["schemas"]["ErrorBody"]["properties"]["code"]["description"]
    assert all(f"`{code}`" in catalogue for code in ERROR_CODES)
    changes = document["paths"]["/api/v1/orders/{order_id}/status"]["post"]["responses"]
    assert "invalid_transition" in changes["409"]["x-error-codes"]
    assert changes["409"]["content"]["application/json"]["example"]["error"]["code"] == "invalid_transition"
    assert changes["400"]["x-error-codes"] == [
        "bad_content_length",
        "malformed_json",
        "invalid_id",
        "ambiguous_credentials",
    ]
    assert "not_for_api_keys" in document["paths"]["/api/v1/auth/login"]["post"]["responses"]["403"]["x-error-codes"]


def test_every_body_has_an_example_that_fits_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for method, path, op in operations(document):
        callbacks = [
            (f"callback {event}", callback["post"].get("requestBody", {}))
            for event, expressions in op.get("callbacks", {}).items()
            for callback in expressions.values()
        ]
        bodies = [("request", op.get("requestBody", {})), *op["responses"].items(), *callbacks]
        for status, body in bodies:
            for media_type, content in body.get("content", {}).items():
                if content.get("schema", {}).get("format") == "binary" or media_type.startswith("multipart"):
                    continue
                assert "example" in content, f"{method.upper()} {path} {status} {media_type}"
                schema = {**content["schema"], "components": document["components"]}
                errors = [e.message for e in OAS30Validator(schema).iter_errors(content["example"])]
                assert errors == [], f"{method.upper()} {path} {status}: {errors}"
                checked += 1
    assert checked > 250


@pytest.mark.gen_test(timeout=60)
async def test_redocly_finds_no_error_in_the_served_document(api: Api, tmp_path: Path) -> None:
    if not REDOCLY.exists():
        pytest.skip(f"{REDOCLY} is absent (`make node-tools` installs @redocly/cli with npm)")
    path = tmp_path / "openapi.json"
    path.write_bytes((await api.get("/api/openapi.json")).body)
    started = time.monotonic()
    lint = await asyncio.create_subprocess_exec(
        str(REDOCLY), "lint", str(path), "--format=json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await lint.communicate()
    report = json.loads(out[out.index(b"{") :])
    problems = [p for p in report["problems"] if p["severity"] == "error"]
    print(f"redocly lint: {time.monotonic() - started:.1f} s, {report['totals']}")
    assert problems == [], json.dumps(problems, indent=1)[:3000]
    assert lint.returncode == 0, err.decode()[-2000:]


async def generated_client(api: Api, folder: Path) -> Any:
    """A client that `openapi-python-client` generates from the served document (about 5 s), imported."""
    (folder / "openapi.json").write_bytes((await api.get("/api/openapi.json")).body)
    (folder / "config.yml").write_text("post_hooks: []\npackage_name_override: dispatch_test_client\n")
    started = time.monotonic()
    generate = await asyncio.create_subprocess_exec(
        str(GENERATOR),
        *("generate", "--path", "openapi.json", "--config", "config.yml", "--meta", "none"),
        *("--output-path", "dispatch_test_client"),
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await generate.communicate()
    print(f"openapi-python-client generate: {time.monotonic() - started:.1f} s")
    assert generate.returncode == 0, out.decode()[-3000:]
    sys.path.insert(0, str(folder))
    return importlib.import_module("dispatch_test_client")


def parsed(model: type, answer: Any) -> Any:
    """A generated function's answer, which must be the model (an `Error` model says what went wrong)."""
    assert isinstance(answer, model), answer
    return answer


@pytest.mark.gen_test(timeout=120)
async def test_a_generated_client_runs_a_whole_order(api: Api, app: Any, base_url: str, tmp_path: Path) -> None:
    await generated_client(api, tmp_path)
    try:
        await order_flow(app, base_url)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == "dispatch_test_client"]:
            del sys.modules[name]
        shutil.rmtree(tmp_path / "dispatch_test_client", ignore_errors=True)


async def order_flow(app: Any, base_url: str) -> None:
    """Sign in, price list, truck, order, assignment, the driver's moves to completed, the timeline."""
    from dispatch_test_client import AuthenticatedClient, Client
    from dispatch_test_client.api.auth import login
    from dispatch_test_client.models import LoginIn, TokenPair

    org = await make_org(app)
    people = {
        role: await make_user(app, role, organizations=[org["_id"]] if role != "BASE" else None)
        for role in ("MANAGER", "DRIVER", "BASE")
    }
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)

    async def signed_in(role: str) -> Any:
        body = LoginIn(login=people[role]["username"], password=PASSWORD)
        pair = parsed(TokenPair, await login.asyncio(client=anonymous, body=body))
        assert pair.token_type == "Bearer"
        return AuthenticatedClient(base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True)

    manager, driver, client = [await signed_in(role) for role in ("MANAGER", "DRIVER", "BASE")]
    try:
        await run_order(org, people, manager, driver, client)
    finally:
        for each in (anonymous, manager, driver, client):
            await each.get_async_httpx_client().aclose()


async def run_order(org: dict[str, Any], people: dict[str, Any], manager: Any, driver: Any, client: Any) -> None:
    """The order's whole life through the generated functions, each answer parsed into its model."""
    from dispatch_test_client.api.fleet import create_vehicle, create_vehicle_type
    from dispatch_test_client.api.orders import assign_order, change_order_status, create_order, list_order_events
    from dispatch_test_client.models import (
        AssignIn,
        OrderEventList,
        OrderIn,
        OrderOut,
        Place,
        StatusIn,
        StatusInStatus,
        TowedCarIn,
        VehicleIn,
        VehicleInStatus,
        VehicleOut,
        VehicleTypeIn,
        VehicleTypeOut,
    )

    org_id = str(org["_id"])
    price_list = VehicleTypeIn(name="Sedan", base_price=50.0, price_per_km=2.0, organization=org_id)
    kind = parsed(VehicleTypeOut, await create_vehicle_type.asyncio(client=manager, body=price_list))
    truck = await create_vehicle.asyncio(
        client=manager,
        body=VehicleIn(
            plate="A777AA77",
            model="Isuzu NPR",
            capacity_kg=3500,
            organization=org_id,
            driver_id=str(people["DRIVER"]["_id"]),
            status=VehicleInStatus.AVAILABLE,
        ),
    )
    assert parsed(VehicleOut, truck).location is None and truck.driver_id == str(people["DRIVER"]["_id"])
    order = await create_order.asyncio(
        client=client,
        body=OrderIn(
            organization=org_id,
            pickup=Place(lat=55.75, lon=37.61, address="Tverskaya 1"),
            dropoff=Place(lat=55.80, lon=37.70, address="Garage 2"),
            vehicle=TowedCarIn(type_id=kind.id, make="Lada", model="Vesta", plate="B123BC77"),
        ),
    )
    assert parsed(OrderOut, order).status.value == "new" and order.price_estimate > 50
    assigned = await assign_order.asyncio(order.id, client=manager, body=AssignIn(vehicle_id=truck.id))
    assert parsed(OrderOut, assigned).status.value == "assigned" and assigned.vehicle_id == truck.id
    for status in ("accepted", "en_route", "arrived", "in_progress", "completed"):
        moved = await change_order_status.asyncio(order.id, client=driver, body=StatusIn(status=StatusInStatus(status)))
        assert parsed(OrderOut, moved).status.value == status
    timeline = parsed(OrderEventList, await list_order_events.asyncio(order.id, client=client))
    assert [event.to for event in timeline.items] == [
        "new",
        "assigned",
        "accepted",
        "en_route",
        "arrived",
        "in_progress",
        "completed",
    ]
    assert timeline.total == 7 and all(event.actor_id for event in timeline.items)
