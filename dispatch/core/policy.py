"""Access rules declared per handler method, in one vocabulary, checked in one place.

Every HTTP method of every handler carries a rule (`@public`, `@authenticated` or
`@roles(...)`); `check_handlers` refuses to build an application where one is
missing, so no handler can forget its access check.

A rule also says whether an organization's API key may call the method, and with which
scope: `@authenticated(key=KeyScope.ORDERS_READ)`, `@roles(Category.MANAGER, key=...)`.
A rule without `key` refuses keys (403 `not_for_api_keys`): endpoints about a person
(`/users/me`, `/auth/*`) and everything an integration has no business with. Public
endpoints ignore a key (health, documents), except those for people signing up or in,
marked `@public(keys=False)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import tornado.web

from dispatch.core.errors import ApiError
from dispatch.core.vocabulary import Category, KeyScope

F = TypeVar("F", bound=Callable[..., Any])

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@dataclass(frozen=True)
class Rule:
    """Who may call a handler method: anyone, any signed-in user, or some categories; and which API key."""

    needs_user: bool
    categories: frozenset[Category] = frozenset()
    key_scope: KeyScope | None = None  # the scope that admits an API key (None: keys are refused)
    people_only: bool = False  # a public method that still refuses API keys (sign-up, sign-in)

    def allows(self, category: str | None) -> bool:
        """Whether a caller of this category passes (None: anonymous)."""
        if not self.needs_user:
            return True
        if category is None:
            return False
        return not self.categories or category in self.categories

    def key_refusal(self, held: Iterable[str]) -> ApiError | None:
        """Why an API key holding these scopes may not call the method (None: it may)."""
        if self.key_scope is None:
            return not_for_api_keys()
        if self.key_scope not in held:
            return ApiError(
                403,
                "insufficient_scope",
                f"This API key lacks the scope {str(self.key_scope)!r}.",
                {"required_scope": str(self.key_scope)},
            )
        return None


def not_for_api_keys() -> ApiError:
    """The 403 of an API key on a method no key may call."""
    return ApiError(403, "not_for_api_keys", "API keys may not call this endpoint; it is for people.")


def _mark(rule: Rule) -> Callable[[F], F]:
    def decorate(method: F) -> F:
        method.__access__ = rule  # type: ignore[attr-defined]
        return method

    return decorate


@overload
def public(method: F, /) -> F: ...
@overload
def public(*, keys: bool) -> Callable[[F], F]: ...
def public(method: F | None = None, /, *, keys: bool = True) -> F | Callable[[F], F]:
    """Allow anyone (`@public`); `@public(keys=False)`: anyone but an API key (endpoints for people)."""
    decorate = _mark(Rule(needs_user=False, people_only=not keys))
    return decorate if method is None else decorate(method)


@overload
def authenticated(method: F, /) -> F: ...
@overload
def authenticated(*, key: KeyScope) -> Callable[[F], F]: ...
def authenticated(method: F | None = None, /, *, key: KeyScope | None = None) -> F | Callable[[F], F]:
    """Allow any signed-in user (`@authenticated`), and API keys holding `key` (`@authenticated(key=...)`)."""
    decorate = _mark(Rule(needs_user=True, key_scope=_key_scope(key)))
    return decorate if method is None else decorate(method)


def roles(*categories: Category, key: KeyScope | None = None) -> Callable[[F], F]:
    """Allow only signed-in users of these categories (and API keys holding `key`); checked at import time."""
    unknown = set(categories) - set(Category)
    if unknown or not categories:
        raise ValueError(f"unknown categories in @roles: {sorted(unknown) or 'none given'}")
    return _mark(
        Rule(needs_user=True, categories=frozenset(Category(c) for c in categories), key_scope=_key_scope(key))
    )


def _key_scope(key: KeyScope | None) -> KeyScope | None:
    if key is not None and key not in set(KeyScope):
        raise ValueError(f"unknown API key scope: {key!r}")
    return None if key is None else KeyScope(key)


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
