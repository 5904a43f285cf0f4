"""This replica's part in the cluster: the bus, the cross-process locks, and leaderships.

``Cluster.for_database`` gives a cluster only for PostgreSQL; on SQLite there is none (None), and
every user of it keeps its single-process behaviour.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from backend.cluster.bus import NotificationBus
from backend.cluster.keys import HINTS_CHANNEL
from backend.cluster.locks import AdvisoryLocks

log = logging.getLogger(__name__)


Hint = Callable[[dict[str, Any]], None]


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://...``) as asyncpg's own DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Cluster:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.bus = NotificationBus(dsn)
        self.locks = AdvisoryLocks(dsn)
        self._hints: dict[str, list[Hint]] = {}
        self.bus.on(HINTS_CHANNEL, self._hint)

    @classmethod
    def for_database(cls, url: str) -> Cluster | None:
        if make_url(url).get_backend_name() != "postgresql":
            return None
        return cls(asyncpg_dsn(url))

    async def start(self) -> None:
        await self.bus.start()

    async def close(self) -> None:
        await self.bus.close()
        await self.locks.close()

    def on_hint(self, kind: str, handler: Hint) -> None:
        self._hints.setdefault(kind, []).append(handler)

    def hint(self, kind: str, **values: Any) -> None:
        """Tell every replica (this one too) ``kind`` with ``values``; from synchronous code."""
        self.bus.notify_soon(HINTS_CHANNEL, json.dumps({"kind": kind, **values}))

    def _hint(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            handlers = self._hints.get(str(message["kind"]), [])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed cluster hint")
            return
        for handler in handlers:
            handler(message)
