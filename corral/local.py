"""The one way a local command reaches the data directory's backend: the one already serving it
(a console, ``corral serve``, another command; found through its lock), else one started in
this process for as long as the command runs; signed in as the local admin.

The console and the container commands use ``local_session``; the benchmarks sign in with
``local_admin_token`` on a backend process of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from backend.admin import Admin
from backend.server import local_backend
from backend.settings import Settings


@dataclass(frozen=True)
class LocalSession:
    """Where the local backend listens, a token for it, and whether this process runs it."""

    url: str
    token: str
    embedded: bool


async def local_admin_token(settings: Settings) -> str:
    """A JWT of the data directory's local admin (made on first use)."""
    async with Admin(settings) as admin:
        return await admin.local_admin_jwt()


@contextlib.contextmanager
def local_session(settings: Settings) -> Iterator[LocalSession]:
    """The data directory's backend, signed in, for the block. Raises what ``local_backend``
    raises: ``DataDirBusy`` (its holder never published an address) and ``BackendDidNotStart``."""
    with local_backend(settings) as backend:
        token = asyncio.run(local_admin_token(settings))
        yield LocalSession(backend.url, token, backend.embedded)
