"""Values every replica on one database must share, kept in the database (``shared_values``):
the session signing key (a JWT issued by one replica is accepted by every one) and the instance
ID (the label on everything Corral makes on Docker: replicas must all recognise it).

Each is made once, by whichever process starts first; an existing installation's file in the data
directory is adopted then, so its sessions and Docker labels survive. The file is kept as a copy
of the database's value (the host's tools read it). A configured value (``jwt_secret``,
``instance_label``) wins and is never written anywhere.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db.models import SharedValue
from backend.settings import Settings

log = logging.getLogger(__name__)

SIGNING_KEY = "jwt_secret"
INSTANCE_ID = "instance_id"


async def shared_value(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    adopt: Callable[[], str | None],
    make: Callable[[], str],
) -> str:
    """The stored value of ``name``; when there is none yet, ``adopt()`` (an existing file's) or
    ``make()`` stored, unless another process stored its own first (then that one)."""
    async with sessions() as session:
        found = await session.get(SharedValue, name)
        if found is not None:
            return found.value
    candidate = adopt() or make()
    try:
        async with sessions() as session:
            session.add(SharedValue(name=name, value=candidate))
            await session.commit()
    except IntegrityError:
        async with sessions() as session:
            stored = await session.get(SharedValue, name)
            assert stored is not None, name
            return stored.value
    return candidate


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _mirror(path: Path, value: str, private: bool) -> None:
    """Keep ``path`` holding ``value`` (replaced atomically when it differs)."""
    current = _read(path)
    if current == value:
        return
    if current is not None:
        log.warning("%s differed from the database's value; the database's is used", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    partial.replace(path)


async def signing_key(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The key sessions are signed with: configured, else the database's."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    value = await shared_value(
        sessions,
        SIGNING_KEY,
        adopt=lambda: _read(settings.secret_path),
        make=lambda: secrets.token_bytes(32).hex(),
    )
    _mirror(settings.secret_path, value, private=True)
    return bytes.fromhex(value)


async def instance_id(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> str:
    """This installation's ID, labelled on everything it makes on Docker, so that backends
    sharing one engine (or tests) never touch each other's containers: configured, else the
    database's."""
    if settings.instance_label:
        return settings.instance_label
    path = settings.data_dir / "instance-id"
    value = await shared_value(
        sessions, INSTANCE_ID, adopt=lambda: _read(path), make=lambda: secrets.token_hex(8)
    )
    _mirror(path, value, private=False)
    return value
