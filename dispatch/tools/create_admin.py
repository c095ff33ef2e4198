"""`dispatch create-admin`: make an active, email-verified ADMIN from flags or prompts.

Missing flags are asked for. On a terminal the password is read with getpass (no echo)
and asked twice; when stdin is a pipe, each answer is one line of it, so scripts and
tests can answer (`printf 'secret\\n' | dispatch create-admin --username u --email e`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any, TextIO

from marshmallow import ValidationError
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from dispatch.core.errors import ApiError
from dispatch.core.vocabulary import Category
from dispatch.settings import Settings


class Abort(Exception):
    """A problem to tell the operator; the command exits with 1."""


def ask(label: str, *, secret: bool = False, stdin: TextIO | None = None) -> str:
    """One answer: getpass for secrets on a terminal, otherwise a line of stdin."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        if not secret:
            return input(f"{label}: ")
        first, second = getpass.getpass(f"{label}: "), getpass.getpass(f"{label} (again): ")
        if first != second:
            raise Abort("The passwords do not match.")
        return first
    print(f"{label}: ", end="", file=sys.stderr, flush=True)
    line = stdin.readline()
    if not line:
        raise Abort(f"No {label.lower()} given (stdin ended).")
    return line.rstrip("\r\n")


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Username, email and password from the flags, asking for the missing ones; validated."""
    from models.users import RegisterIn

    raw = {
        "username": args.username if args.username is not None else ask("Username"),
        "email": args.email if args.email is not None else ask("Email"),
        "password": args.password if args.password is not None else ask("Password", secret=True),
    }
    try:
        return RegisterIn().load(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for field, msgs in exc.normalized_messages().items()
        )
        raise Abort(f"Not valid: {problems}") from None


async def create_admin(settings: Settings, data: dict[str, Any]) -> dict[str, Any]:
    """Insert the ADMIN account (active, verified: no activation email is sent)."""
    from dispatch.core.storage import ensure_indexes
    from dispatch.services import Services

    services = Services.open(settings)
    try:
        await ensure_indexes(services.db)  # uniqueness of username and email rests on these indexes
        return await services.identity.register(data, category=Category.ADMIN, verified=True)
    finally:
        await services.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The command: 0 when the admin was created, 1 with a message on stderr otherwise."""
    try:
        user = asyncio.run(create_admin(settings, collect(args)))
    except Abort as exc:
        return _fail(str(exc))
    except ApiError as exc:  # a taken username or email
        return _fail(exc.message)
    except (PyMongoError, RedisError, OSError) as exc:
        return _fail(f"Cannot reach the stores: {exc}")
    print(f"Created ADMIN {user['username']} <{user['email']}> (id {user['_id']}).")
    return 0


def _fail(message: str) -> int:
    print(f"dispatch create-admin: {message}", file=sys.stderr)
    return 1
