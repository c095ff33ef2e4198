"""The `dispatch` command line: serve, worker, openapi, create-admin, seed-demo, simulate."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from dispatch.settings import Settings, SettingsError

Command = Callable[[argparse.Namespace, Settings], int]


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve HTTP and websockets in the foreground."""
    from dispatch.server import serve

    overrides = {
        k: v for k, v in (("port", args.port), ("processes", args.processes), ("bind", args.bind)) if v is not None
    }
    serve(settings.replace(**overrides))
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run a Celery worker with the same settings."""
    # The worker is its own program (`python -m tasks`): the server's package never imports it.
    # exec keeps this process id, so whoever started `dispatch worker` still holds the worker.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "tasks", f"--concurrency={args.concurrency}"])


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    """Print the OpenAPI document (JSON, or YAML with --yaml)."""
    import handlers
    from dispatch.core import jsonutil
    from dispatch.openapi import build_spec
    from models.common import SCHEMAS

    spec = build_spec(handlers.all_routes(), SCHEMAS, settings.public_url)
    if args.yaml:
        import yaml

        sys.stdout.write(yaml.safe_dump(spec, sort_keys=False))
    else:
        sys.stdout.write(jsonutil.dumps(spec).decode() + "\n")
    return 0


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    """Create an active, verified ADMIN (prompts for missing flags)."""
    from dispatch.tools.create_admin import run

    return run(args, settings)


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Seed a demo organization, manager, drivers with trucks, clients and orders (idempotent)."""
    import asyncio

    from pymongo.errors import PyMongoError
    from redis.exceptions import RedisError

    from dispatch.tools.seed import seed_demo

    try:
        asyncio.run(seed_demo(settings, sys.stdout, sys.stderr))
    except (PyMongoError, RedisError) as exc:
        print(f"dispatch: seed-demo could not reach a store: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Stream GPS from N virtual drivers along plausible routes over the real websocket protocol."""
    import asyncio

    from dispatch.tools.seed import PASSWORD
    from dispatch.tools.simulate import simulate

    url = args.url or f"http://127.0.0.1:{settings.port}"
    names = [args.username_template.format(n=n) for n in range(1, args.drivers + 1)]
    print(f"dispatch: {len(names)} virtual drivers → {url}, {args.rate} points/s each", flush=True)
    stats = asyncio.run(simulate(url, names, args.password or PASSWORD, args.rate, args.duration, seed=args.seed))
    return 0 if stats.acked or not stats.sent else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="dispatch", description="Real-time dispatch server.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("--port", type=int, help="port (default: DISPATCH_PORT or 8888)")
    serve.add_argument("--processes", type=int, help="processes sharing the port (0 = one per CPU)")
    serve.add_argument("--bind", help="address to bind (default: DISPATCH_BIND or 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help=cmd_worker.__doc__)
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.set_defaults(func=cmd_worker)
    openapi = sub.add_parser("openapi", help=cmd_openapi.__doc__)
    openapi.add_argument("--yaml", action="store_true", help="print YAML instead of JSON")
    openapi.set_defaults(func=cmd_openapi)
    admin = sub.add_parser("create-admin", help=cmd_create_admin.__doc__)
    admin.add_argument("--username", help="login name (asked when missing)")
    admin.add_argument("--email", help="email address (asked when missing)")
    admin.add_argument("--password", help="password (asked when missing; from stdin when it is not a terminal)")
    admin.set_defaults(func=cmd_create_admin)
    seed = sub.add_parser("seed-demo", help=cmd_seed_demo.__doc__)
    seed.set_defaults(func=cmd_seed_demo)
    sim = sub.add_parser("simulate", help=cmd_simulate.__doc__)
    sim.add_argument("--drivers", type=int, default=5, help="virtual drivers (default 5)")
    sim.add_argument("--rate", type=float, default=1.0, help="points per second per driver (default 1)")
    sim.add_argument("--duration", type=float, default=0, help="seconds to run (default: until Ctrl-C)")
    sim.add_argument("--url", help="server base URL (default: http://127.0.0.1:DISPATCH_PORT)")
    sim.add_argument(
        "--username-template",
        default="demo_driver{n}",
        help="driver logins, {n} = 1..N (default: the seed-demo drivers demo_driver{n})",
    )
    sim.add_argument("--password", help="the drivers' password (default: the seed-demo password)")
    sim.add_argument("--seed", type=int, help="random seed for repeatable routes")
    sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dispatch` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"dispatch: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args, settings)
    except SettingsError as exc:
        print(f"dispatch: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
