"""Property-based fuzzing of every REST operation in the OpenAPI document, as every role.

Schemathesis reads the document the server publishes and sends generated requests (valid and
invalid) to a real `dispatch serve` process. Every answer must be no 5xx, a status the
document lists for that operation, of the documented content type and body schema.

Two kinds of cases: random ones (schemathesis' examples and fuzzing phases) go to every operation
as every role; the systematic boundary and negative cases of its coverage phase (about forty per
operation, most of the run's time) go to each operation once, as the widest role its access rule
admits, since a role that is refused at the door never reaches the validation they probe.

The in-suite run is bounded (`DISPATCH_FUZZ_EXAMPLES` generated requests per operation and
role, default 10); a long local run:
`DISPATCH_FUZZ_EXAMPLES=200 make test TEST_WORKERS=0 PYTEST_ARGS="tests/reliability/test_api_fuzz.py -s"`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

import handlers
from dispatch.app import make_app
from dispatch.core.policy import rule_of
from dispatch.core.storage import ensure_indexes, open_stores
from dispatch.openapi import DOCUMENTED_METHODS, openapi_path
from dispatch.services import Services
from dispatch.settings import Settings
from tests.support.factories import PASSWORD
from tests.support.fleet_fixtures import World, insert_order, make_vehicle_type, make_world, order_body
from tests.support.processes import serving

API = "/api/v1"
ROLES = ("BASE", "DRIVER", "MANAGER", "ADMIN")
WIDEST_FIRST = ("ADMIN", "MANAGER", "DRIVER", "BASE")
EXAMPLES = int(os.environ.get("DISPATCH_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("DISPATCH_FUZZ_SEED", "8"))
# Rate limits far above what the fuzzer sends: limits have their own tests (tests/handlers/test_auth_limits.py).
GENEROUS_LIMITS = ",".join(
    f"{name}=1000000/60"
    for name in (
        "login_ip",
        "login_account",
        "sms_request_phone",
        "sms_request_ip",
        "sms_verify_ip",
        "password_forgot_ip",
        "password_forgot_account",
    )
)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "response_headers_conformance",
    "unsupported_method",
)
# Path parameters that name stored objects, and the kind of object each names.
ID_PARAMETERS = {
    "user_id": "users",
    "org_id": "orgs",
    "vehicle_id": "vehicles",
    "type_id": "types",
    "order_id": "orders",
    "waybill_id": "waybills",
    "ticket_id": "tickets",
    "notification_id": "notifications",
}


@dataclass
class Target:
    """The running server, the accounts that fuzz it, and ids of objects that exist."""

    base_url: str
    logins: dict[str, str]
    tokens: dict[str, str]
    ids: dict[str, list[str]]
    sent: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, role: str) -> str:
        """The role's access token (a new session once fuzzing logged the old one out)."""
        with self.lock:
            return self.tokens[role]

    def relogin(self, role: str, stale: str) -> None:
        """Open a new session for the role if the token that got a 401 is still the current one."""
        with self.lock:
            if self.tokens[role] != stale:
                return
            answer = requests.post(
                self.base_url + API + "/auth/login", timeout=30, json={"login": self.logins[role], "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            self.tokens[role] = answer.json()["access_token"]


def run_async(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on a private loop in another thread (the module fixture has no Tornado loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


async def seed_directly(settings: Settings) -> tuple[World, dict[str, Any]]:
    """Two organizations with people, trucks, a vehicle type and a completed order, written through the domain layer."""
    services = Services.open(settings)
    await ensure_indexes(services.db)
    app = make_app(services)
    try:
        world = await make_world(app)
        await world.add_vehicle("truck", "a", driver="driver")
        await world.add_vehicle("spare", "a", driver="driver_a2")
        await world.add_vehicle("truck_b", "b", driver="driver_b")
        await world.add_user("client2", "BASE")
        types = [await make_vehicle_type(app), await make_vehicle_type(app, "Van")]
        completed = await insert_order(world, "completed", vehicle="truck")
        return world, {"types": types, "completed": completed}
    finally:
        await services.close()


def seed_through_api(base_url: str, world: World, extra: dict[str, Any]) -> dict[str, list[str]]:
    """Orders, an assignment, a waybill, tickets and notifications made through the REST API."""

    def call(method: str, path: str, who: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = requests.request(
            method,
            base_url + API + path,
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {world.tokens[who]}"},
        )
        assert answer.status_code in (200, 201), (path, answer.text)
        return answer.json()

    vtype = {"_id": extra["types"][0]["_id"]}
    new = call("POST", "/orders", "client", order_body(vtype, organization=world.org("a")))
    assigned = call("POST", "/orders", "client", order_body(vtype, organization=world.org("a")))
    call("POST", f"/orders/{assigned['id']}/assign", "manager_a", {"vehicle_id": world.id("spare")})
    other = call("POST", "/orders", "client2", order_body(vtype, organization=world.org("b")))
    waybill = call("POST", "/waybills", "driver", {"vehicle_id": world.id("truck")})
    waybill_b = call("POST", "/waybills", "driver_b", {"vehicle_id": world.id("truck_b")})
    ticket = call(
        "POST", "/support/tickets", "client", {"subject": "Late", "description": "Where is it?", "order_id": new["id"]}
    )
    ticket_b = call("POST", "/support/tickets", "client2", {"subject": "Bill", "description": "Twice?"})
    notes = call("GET", "/notifications", "client")["items"] + call("GET", "/notifications", "driver_a2")["items"]
    return {
        # fuzzing accounts are never targets of user changes: an ADMIN could otherwise demote the DRIVER
        "users": [world.id(n) for n in ("client2", "driver_a2", "manager_b", "driver_b", "other_client")],
        "orgs": [world.org("a"), world.org("b")],
        "vehicles": [world.id("truck"), world.id("spare"), world.id("truck_b")],
        "types": [str(t["_id"]) for t in extra["types"]],
        "orders": [new["id"], assigned["id"], other["id"], str(extra["completed"]["_id"])],
        "waybills": [waybill["id"], waybill_b["id"]],
        "tickets": [ticket["id"], ticket_b["id"]],
        "notifications": [n["id"] for n in notes][:4],
    }


@pytest.fixture(scope="module")
def target(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A `dispatch serve` process over a seeded database, generous rate limits, no email check at log-in."""
    settings = services.settings(rate_limits=GENEROUS_LIMITS, require_email_verification=False)
    world, extra = run_async(lambda: seed_directly(settings))
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    try:
        with serving(settings, log) as base_url:
            ids = seed_through_api(base_url, world, extra)
            people = {"BASE": "client", "DRIVER": "driver", "MANAGER": "manager_a", "ADMIN": "admin"}
            yield Target(
                base_url,
                {role: world.users[name]["username"] for role, name in people.items()},
                {role: world.tokens[name] for role, name in people.items()},
                ids,
            )
    finally:
        run_async(lambda: drop(settings))
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, "\n".join(tracebacks(text))[:20000]


def tracebacks(log: str) -> list[str]:
    """Each error logged with its traceback: the log line before it and the traceback's last line."""
    lines = log.splitlines()
    return [
        f"{lines[n - 1]}\n  ... {next((t for t in lines[n + 1 :] if t and not t.startswith(' ')), '')}"
        for n, line in enumerate(lines)
        if line.startswith("Traceback") and n
    ]


async def drop(settings: Settings) -> None:
    stores = open_stores(settings)
    await stores.mongo.drop_database(settings.mongodb_db)
    await stores.close()


def with_known_ids(document: dict[str, Any], ids: dict[str, list[str]]) -> dict[str, Any]:
    """The document with each object-id path parameter drawn from existing ids or any string.

    Only generation changes: random strings alone would almost never name a stored object.
    """
    for item in document["paths"].values():
        for parameter in item.get("parameters", []):
            known = ids.get(ID_PARAMETERS.get(parameter["name"], ""))
            if parameter["in"] == "path" and known:
                parameter["schema"] = {"anyOf": [{"type": "string", "enum": known}, parameter["schema"]]}
    return document


def boundary_role() -> dict[tuple[str, str], str]:
    """For each documented operation, the role that gets its boundary cases: the widest one admitted."""
    owners = {}
    for pattern, handler in handlers.all_routes():
        for method in DOCUMENTED_METHODS:
            rule = rule_of(handler, method)
            if rule is not None:
                owners[(openapi_path(pattern), method)] = next(r for r in WIDEST_FIRST if rule.allows(r))
    return owners


def load_schema(target: Target, role: str, *, boundaries: bool) -> Any:
    """The published document as a schemathesis schema that signs in as `role` and checks every answer.

    With `boundaries`, only the coverage phase runs, over the operations this role is the widest
    admitted role of; without, the random phases run over every operation.
    """
    document = requests.get(target.base_url + "/api/openapi.json", timeout=30).json()
    phases = {"coverage": boundaries, "examples": not boundaries, "fuzzing": not boundaries}
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "base-url": target.base_url,
            "continue-on-failure": True,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}, **{name: {"enabled": on} for name, on in phases.items()}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    schema = schemathesis.openapi.from_dict(with_known_ids(document, target.ids), config=config)
    if boundaries:
        owners = boundary_role()
        documented = {(path, m) for path, item in document["paths"].items() for m in item if m in DOCUMENTED_METHODS}
        assert documented <= owners.keys(), sorted(documented - owners.keys())
        mine = {op for op, owner in owners.items() if owner == role}
        schema = schema.include(lambda ctx: (ctx.operation.path, ctx.operation.method.lower()) in mine)

    @schema.auth(refresh_interval=None)
    class RoleToken:
        def get(self, case: Any, ctx: Any) -> str:
            return target.token(role)

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        target.sent[role] += 1
        if response.status_code == 401:
            target.relogin(role, (case.headers or {}).get("Authorization", "").removeprefix("Bearer "))

    return schema


def run_engine(schema: Any) -> tuple[list[str], set[str]]:
    """Run every phase; the failures as readable text, and the operations that were exercised."""
    failures: list[str] = []
    tested: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            if event.recorder.interactions:
                tested.add(event.label or "")
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failures.append(describe(event.label or "", check.name, check.failure_info))
        elif isinstance(event, (events.FatalError, events.NonFatalError)):
            failures.append(f"engine error: {event!r}")
    return failures, tested


def describe(label: str, check: str, info: Any) -> str:
    """One failure, short: the operation, the check, what went wrong and a curl line to reproduce it."""
    message = info.failure.message if len(info.failure.message) < 1500 else info.failure.message[:1500] + " …"
    sample = info.code_sample if len(info.code_sample) < 1000 else info.code_sample[:1000] + " …"
    return f"{label}: {check}: {info.failure.title}\n{message}\n{sample}"


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(target: Target, role: str) -> None:
    schema = load_schema(target, role, boundaries=False)
    failures, tested = run_engine(schema)
    failures += run_engine(load_schema(target, role, boundaries=True))[0]
    unique = list(dict.fromkeys(failures))
    assert not unique, f"{len(unique)} failures:\n\n" + "\n\n".join(unique)
    operations = {
        f"{method.upper()} {path}"
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations <= tested, sorted(operations - tested)
    assert target.sent[role] >= len(operations)
    print(f"{role}: {target.sent[role]} requests over {len(tested)} operations")
