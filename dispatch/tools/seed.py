"""`dispatch seed-demo`: a demo organization with a manager, drivers and their trucks (live around
Moscow), clients, vehicle types and a few orders — idempotent, so a second run adds nothing.

Everything is looked up by a fixed key first (organization name, username, plate, type name,
an order's client and notes) and made only when missing. Users go through `Identity.register`,
orders through the order domain layer (`OrderDesk`) of the process's services, so the demo data is
exactly what the API would have written, events and notifications included.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, TextIO

from bson import ObjectId
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from dispatch.core import live
from dispatch.core.pagination import Page
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.core.vocabulary import Category, OrderEvent, VehicleStatus
from dispatch.services import Services
from dispatch.settings import Settings
from models.orders import Orders
from models.organizations import Organizations
from models.users import orgs_of
from models.vehicles import Vehicles, VehicleTypes, plate_key

ORG_NAME = "Demo Towing Moscow"
ORG_DESCRIPTION = "Tow trucks around Moscow (demo data of `dispatch seed-demo`)."
CENTER = (55.75, 37.62)  # Moscow, by the Kremlin
SPREAD = (0.05, 0.08)  # degrees of latitude / longitude: trucks within about 5 km of the center
PASSWORD = "demo-tow-2025"  # every demo account's password (printed; demo data only)


@dataclass(frozen=True)
class Person:
    username: str
    category: Category
    first_name: str
    last_name: str


MANAGER = Person("demo_manager", Category.MANAGER, "Anna", "Petrova")
DRIVERS = (
    Person("demo_driver1", Category.DRIVER, "Ivan", "Sokolov"),
    Person("demo_driver2", Category.DRIVER, "Sergey", "Volkov"),
    Person("demo_driver3", Category.DRIVER, "Oleg", "Morozov"),
    Person("demo_driver4", Category.DRIVER, "Pavel", "Lebedev"),
    Person("demo_driver5", Category.DRIVER, "Dmitry", "Kozlov"),
)
CLIENTS = (
    Person("demo_client1", Category.BASE, "Maria", "Ivanova"),
    Person("demo_client2", Category.BASE, "Alexey", "Smirnov"),
    Person("demo_client3", Category.BASE, "Elena", "Kuznetsova"),
)
TRUCK_MODELS = (
    "GAZelle Next platform",
    "Isuzu Elf slide-bed",
    "Hino 300 wheel-lift",
    "KAMAZ 43253 tow",
    "Mercedes Atego platform",
)
VEHICLE_TYPES = (
    ("Passenger car", 2500.0, 80.0),
    ("SUV", 3500.0, 100.0),
    ("Motorcycle", 1800.0, 60.0),
    ("Minibus", 5000.0, 140.0),
)


@dataclass(frozen=True)
class DemoOrder:
    """An order of a demo client; `moves` are the statuses its driver takes it through after assignment."""

    client: int  # index in CLIENTS
    driver: int | None  # index in DRIVERS whose truck is assigned (None: left waiting)
    moves: tuple[OrderEvent, ...]
    pickup: tuple[float, float, str]
    dropoff: tuple[float, float, str]
    car: tuple[str, str, str]  # make, model, plate

    @property
    def notes(self) -> str:
        """Its notes, which also find it again on the next run."""
        return f"Demo order of {CLIENTS[self.client].username} from {self.pickup[2]}"


DEMO_ORDERS = (
    DemoOrder(
        0,
        None,
        (),
        (55.7558, 37.6173, "Red Square, 1"),
        (55.7963, 37.5382, "Leningradsky Ave, 39"),
        ("Lada", "Vesta", "A123BC77"),
    ),
    DemoOrder(
        1,
        0,
        (OrderEvent.ACCEPTED, OrderEvent.EN_ROUTE),
        (55.7339, 37.5880, "Komsomolsky Ave, 24"),
        (55.6900, 37.5600, "Profsoyuznaya St, 56"),
        ("Toyota", "Camry", "M456OP99"),
    ),
    DemoOrder(
        2,
        1,
        (OrderEvent.ACCEPTED, OrderEvent.EN_ROUTE, OrderEvent.ARRIVED, OrderEvent.IN_PROGRESS, OrderEvent.COMPLETED),
        (55.7700, 37.6500, "Sadovaya-Spasskaya St, 21"),
        (55.8200, 37.6400, "Prospekt Mira, 119"),
        ("Kia", "Rio", "K789TX177"),
    ),
)


@dataclass
class Report:
    """What one run made, by kind, and the logins it can print."""

    made: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # category, username, made now

    def count(self, kind: str, made: bool) -> None:
        """Count one thing of a kind (made now, or found from an earlier run)."""
        self.made[kind] = self.made.get(kind, 0) + int(made)


def plate(number: int) -> str:
    """The plate of demo truck `number`: DEMO-001, DEMO-002, ..."""
    return f"DEMO-{number:03d}"


def truck_point(number: int, driver_id: Any) -> dict[str, Any]:
    """A reproducible live position near the center for demo truck `number`."""
    rng = random.Random(number)
    return {
        "lat": round(CENTER[0] + rng.uniform(-SPREAD[0], SPREAD[0]), 6),
        "lon": round(CENTER[1] + rng.uniform(-SPREAD[1], SPREAD[1]), 6),
        "ts": isoformat(utcnow()),
        "speed": 0.0,
        "heading": float(rng.randrange(360)),
        "accuracy": 5.0,
        "driver_id": str(driver_id),
    }


class DemoSeeder:
    """Makes (or finds) the demo data through the process's stores and domain layer."""

    def __init__(self, services: Services, progress: Progress) -> None:
        self.db = services.db
        self.redis = services.redis
        self.identity = services.identity
        self.desk = services.orders
        self.progress = progress
        self.task = progress.add_task("Seeding demo data", total=self.steps())
        self.report = Report()

    @staticmethod
    def steps() -> int:
        """How many things a run makes or finds (the progress bar's length): one `done` call each."""
        organization, manager = 1, 1
        per_driver = 3  # the account, the truck, its live position
        return organization + manager + per_driver * len(DRIVERS) + len(CLIENTS) + len(VEHICLE_TYPES) + len(DEMO_ORDERS)

    def done(self, kind: str, made: bool) -> None:
        """One thing made or found: count it and move the bar."""
        self.report.count(kind, made)
        self.progress.advance(self.task)

    async def run(self) -> Report:
        """Make whatever is missing; returns what was made."""
        org = await self.organization()
        manager = await self.person(MANAGER, org["_id"])
        drivers = [await self.person(who, org["_id"]) for who in DRIVERS]
        trucks = [await self.truck(number, driver, org["_id"]) for number, driver in enumerate(drivers, 1)]
        types = [await self.vehicle_type(*spec) for spec in VEHICLE_TYPES]
        clients = [await self.person(who, None) for who in CLIENTS]
        for spec in DEMO_ORDERS:
            await self.order(spec, org, manager, clients, drivers, trucks, types[0])
        return self.report

    async def organization(self) -> dict[str, Any]:
        """The demo organization, by name."""
        orgs = Organizations(self.db)
        found = await orgs.collection.find_one({"name_lower": ORG_NAME.lower()})
        made = found is None
        if found is None:
            found = await orgs.insert(ORG_NAME, ORG_DESCRIPTION)
        self.done("organizations", made)
        return found

    async def person(self, who: Person, org_id: ObjectId | None) -> dict[str, Any]:
        """A demo account by username (verified, so it can log in at once), in the organization if given."""
        users = self.identity.users
        user = await users.find_for_login({"username_lower": who.username.lower()})
        made = user is None
        if user is None:
            user = await self.identity.register(
                {
                    "username": who.username,
                    "email": f"{who.username}@example.com",
                    "password": PASSWORD,
                    "first_name": who.first_name,
                    "last_name": who.last_name,
                },
                category=who.category,
                verified=True,
            )
        if org_id is not None and org_id not in orgs_of(user):
            user = await users.update(user["_id"], {}, extra={"$addToSet": {"organizations": org_id}}) or user
        self.report.logins.append((who.category, who.username, made))
        self.done("users", made)
        return user

    async def truck(self, number: int, driver: dict[str, Any], org_id: ObjectId) -> dict[str, Any]:
        """Demo truck `number` by plate, driven by `driver`, with a live position near the center."""
        vehicles = Vehicles(self.db)
        found = await vehicles.collection.find_one({"plate_key": plate_key(plate(number))})
        made = found is None
        if found is None:
            found = await vehicles.insert(
                {
                    "plate": plate(number),
                    "model": TRUCK_MODELS[(number - 1) % len(TRUCK_MODELS)],
                    "capacity_kg": 3500,
                    "organization": org_id,
                    "driver_id": driver["_id"],
                    "status": VehicleStatus.AVAILABLE,
                }
            )
        self.done("vehicles", made)
        async with self.redis.pipeline(transaction=False) as pipe:
            live.queue_position(pipe, str(found["_id"]), str(org_id), truck_point(number, driver["_id"]))
            await pipe.execute()
        self.done("positions", True)
        return found

    async def vehicle_type(self, name: str, base_price: float, price_per_km: float) -> dict[str, Any]:
        """A kind of towed car with its prices, by name, in the shared catalogue (the platform's, ADMIN-made)."""
        types = VehicleTypes(self.db)
        found = await types.collection.find_one({"name_lower": name.lower(), "organization": None})
        made = found is None
        if found is None:
            found = await types.insert(
                {"name": name, "base_price": base_price, "price_per_km": price_per_km, "organization": None}
            )
        self.done("vehicle_types", made)
        return found

    async def order(
        self,
        spec: DemoOrder,
        org: dict[str, Any],
        manager: dict[str, Any],
        clients: list[dict[str, Any]],
        drivers: list[dict[str, Any]],
        trucks: list[dict[str, Any]],
        car_type: dict[str, Any],
    ) -> None:
        """A demo order by its client and notes: placed by the client, assigned by the manager, driven along."""
        client = clients[spec.client]
        found, _ = await Orders(self.db).page({"client_id": client["_id"], "notes": spec.notes}, Page(1, 0))
        if not found:
            await self._place(spec, org, manager, client, drivers, trucks, car_type)
        self.done("orders", not found)

    async def _place(
        self,
        spec: DemoOrder,
        org: dict[str, Any],
        manager: dict[str, Any],
        client: dict[str, Any],
        drivers: list[dict[str, Any]],
        trucks: list[dict[str, Any]],
        car_type: dict[str, Any],
    ) -> None:
        make, model, car_plate = spec.car
        order = await self.desk.create(
            client,
            {
                "organization": org["_id"],
                "notes": spec.notes,
                "pickup": {"lat": spec.pickup[0], "lon": spec.pickup[1], "address": spec.pickup[2]},
                "dropoff": {"lat": spec.dropoff[0], "lon": spec.dropoff[1], "address": spec.dropoff[2]},
                "vehicle": {
                    "type_id": car_type["_id"],
                    "make": make,
                    "model": model,
                    "plate": car_plate,
                    "color": None,
                },
            },
        )
        if spec.driver is None:
            return
        await self.desk.assign(manager, order["_id"], trucks[spec.driver]["_id"])
        for status in spec.moves:
            await self.desk.change_status(drivers[spec.driver], order["_id"], status)


def print_logins(report: Report, out: Console) -> None:
    """The demo accounts, one per line: category, login, password, and whether this run made it."""
    out.print(f"Demo accounts (password for all: {PASSWORD}):", highlight=False)
    for category, username, made in report.logins:
        out.print(
            f"  {category:<8} login: {username:<14} password: {PASSWORD}  ({'created' if made else 'already there'})",
            highlight=False,
        )
    summary = ", ".join(f"{kind} {count}" for kind, count in report.made.items() if kind != "positions")
    out.print(
        f"Created now: {summary}. Live positions written for {report.made.get('positions', 0)} trucks.", highlight=False
    )


async def seed_demo(settings: Settings, stdout: TextIO, stderr: TextIO) -> Report:
    """Open the process's services on the configured stores and seed the demo data through them."""
    from dispatch.core.storage import ensure_indexes

    services = Services.open(settings)
    try:
        await ensure_indexes(services.db)  # idempotence rests on the unique indexes too
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=Console(file=stderr)) as progress:
            report = await DemoSeeder(services, progress).run()
        print_logins(report, Console(file=stdout, soft_wrap=True))
        return report
    finally:
        await services.close()
