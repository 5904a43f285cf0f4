"""What a ``{id}`` in a path may be, and the one order in which it is looked up.

A person copies whatever the list shows, and a Docker ID changes with every rebuild, so every
container route accepts, in this order (the first that finds a container wins):

1. the database ID (a UUID; stable for the container's whole life),
2. a full Docker ID (64 hex),
3. an exact container name (names are unique per user; an administrator's own container of that
   name comes first, then one other user's if exactly one has it),
4. a unique Docker ID prefix of 12 or more hex characters.

Exact identifiers come before names so that a name can never shadow an ID, and names before
prefixes so that a name made of hex digits still means that container. Only containers the caller
may see are considered: another user's container answers exactly as an unknown one does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.principal import Principal
from backend.db.models import Container
from corral.shapes import Container as ContainerJson
from corral.shapes.containers import CONTAINER_NAME_PATTERN

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DOCKER_ID_RE = re.compile(r"^[0-9a-f]{64}$")
DOCKER_PREFIX_RE = re.compile(r"^[0-9a-f]{12,63}$")
NAME_RE = re.compile(CONTAINER_NAME_PATTERN)


def _visible(query: Select[Container], principal: Principal) -> Select[Container]:
    return query if principal.is_admin else query.where(Container.user_id == principal.user_id)


async def _only(session: AsyncSession, query: Select[Container]) -> Container | None:
    """The one row ``query`` finds; None when it finds none, or more than one (ambiguous)."""
    rows = (await session.execute(query.limit(2))).scalars().all()
    return rows[0] if len(rows) == 1 else None


async def find_container(
    session: AsyncSession, principal: Principal, ident: str
) -> Container | None:
    """The container ``ident`` names for ``principal``, in the order above; None if none."""
    text = ident
    key = text.lower()
    if UUID_RE.fullmatch(key):
        found = await _only(
            session, _visible(select(Container).where(Container.id == key), principal)
        )
        if found is not None:
            return found
    if DOCKER_ID_RE.fullmatch(key):
        query = select(Container).where(Container.docker_id == key)
        found = await _only(session, _visible(query, principal))
        if found is not None:
            return found
    if NAME_RE.fullmatch(text):
        found = await _by_name(session, principal, text)
        if found is not None:
            return found
    if DOCKER_PREFIX_RE.fullmatch(key):
        query = select(Container).where(Container.docker_id.startswith(key, autoescape=True))
        return await _only(session, _visible(query, principal))
    return None


async def _by_name(session: AsyncSession, principal: Principal, name: str) -> Container | None:
    named = select(Container).where(Container.name == name)
    own = await _only(session, named.where(Container.user_id == principal.user_id))
    if own is not None or not principal.is_admin:
        return own
    return await _only(session, named)


def names_row(row: Container, ident: str) -> bool:
    """Whether ``ident`` still names ``row`` (checked again under the row's lock: a rename or a
    rebuild between the lookup and the lock must not act on a container the caller no longer
    means)."""
    text = ident
    key = text.lower()
    docker_id = row.docker_id or ""
    return (
        row.id == key
        or row.name == text
        or (
            bool(DOCKER_PREFIX_RE.fullmatch(key) or DOCKER_ID_RE.fullmatch(key))
            and docker_id.startswith(key)
        )
    )


def find_listed(items: Sequence[ContainerJson], ident: str) -> ContainerJson | None:
    """``find_container``'s order over one user's listed containers. A caller who is not an
    administrator sees only their own, so their remembered list (``ContainerRepository``)
    answers a ``GET`` by any identifier without a query; ``tests/test_lookup.py`` holds the two
    to the same answers."""
    text = ident
    key = text.lower()
    steps = (
        (UUID_RE.fullmatch(key), lambda c: c["db_id"] == key),
        (DOCKER_ID_RE.fullmatch(key), lambda c: _docker_id(c) == key),
        (NAME_RE.fullmatch(text), lambda c: c["name"] == text),
        (DOCKER_PREFIX_RE.fullmatch(key), lambda c: _docker_id(c).startswith(key)),
    )
    for applies, matches in steps:
        if applies:
            found = [c for c in items if matches(c)]
            if len(found) == 1:
                return found[0]
    return None


def _docker_id(item: ContainerJson) -> str:
    """The listed container's Docker ID ("" before it has one: ``id`` is then the row's)."""
    return item["id"] if item["id"] != item["db_id"] else ""
