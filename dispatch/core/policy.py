"""Access rules declared per handler method, in one vocabulary, checked in one place.

Every HTTP method of every handler carries a rule (`@public`, `@authenticated` or
`@roles(...)`); `check_handlers` refuses to build an application where one is
missing, so no handler can forget its access check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import tornado.web

from dispatch.core.vocabulary import Category

F = TypeVar("F", bound=Callable[..., Any])

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@dataclass(frozen=True)
class Rule:
    """Who may call a handler method: anyone, any signed-in user, or some categories."""

    needs_user: bool
    categories: frozenset[Category] = frozenset()

    def allows(self, category: str | None) -> bool:
        """Whether a caller of this category passes (None: anonymous)."""
        if not self.needs_user:
            return True
        if category is None:
            return False
        return not self.categories or category in self.categories


def _mark(rule: Rule) -> Callable[[F], F]:
    def decorate(method: F) -> F:
        method.__access__ = rule  # type: ignore[attr-defined]
        return method

    return decorate


public = _mark(Rule(needs_user=False))
authenticated = _mark(Rule(needs_user=True))


def roles(*categories: Category) -> Callable[[F], F]:
    """Allow only signed-in users of these categories; names are checked at import time."""
    unknown = set(categories) - set(Category)
    if unknown or not categories:
        raise ValueError(f"unknown categories in @roles: {sorted(unknown) or 'none given'}")
    return _mark(Rule(needs_user=True, categories=frozenset(Category(c) for c in categories)))


def rule_of(handler: tornado.web.RequestHandler, method_name: str) -> Rule | None:
    """The rule declared on a handler's method, or None if it declares none."""
    return getattr(getattr(handler, method_name, None), "__access__", None)


def is_implemented(handler_class: type, method_name: str) -> bool:
    """Whether a handler class implements an HTTP method itself (not Tornado's 405 default)."""
    method = getattr(handler_class, method_name, None)
    default = getattr(tornado.web.RequestHandler, method_name, None)
    return method is not None and method is not default


def check_handlers(handler_classes: Iterable[type]) -> None:
    """Refuse start-up if any implemented HTTP method lacks an access rule."""
    missing = [
        f"{cls.__module__}.{cls.__name__}.{name}"
        for cls in handler_classes
        for name in HTTP_METHODS
        if is_implemented(cls, name) and getattr(getattr(cls, name), "__access__", None) is None
    ]
    if missing:
        raise RuntimeError("handler methods without an access rule: " + ", ".join(missing))
