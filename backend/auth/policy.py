"""Who may call a route, declared on the handler and enforced by the auth middleware.

By default a route needs a signed-in caller; reads (GET) need the ``read`` scope and every other
method the ``write`` scope. ``@access`` marks the exceptions: public routes, admin-only routes, and
routes for agent tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from corral.shapes import Scope

F = TypeVar("F", bound=Callable[..., Any])

ACCESS_ATTR = "__corral_access__"


@dataclass(frozen=True)
class Access:
    public: bool = False
    admin: bool = False
    scope: Scope | None = None  # None: read for GET/HEAD, write otherwise


DEFAULT_ACCESS = Access()


def access(
    *, public: bool = False, admin: bool = False, scope: Scope | None = None
) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, ACCESS_ATTR, Access(public=public, admin=admin, scope=scope))
        return handler

    return mark


def access_of(handler: Any) -> Access:
    return getattr(handler, ACCESS_ATTR, DEFAULT_ACCESS)
