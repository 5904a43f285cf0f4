"""Several backend replicas on one PostgreSQL database (docs/scale-out.md).

On SQLite nothing here is used: one process serves the database, its locks are asyncio locks and
its events are delivered in process. On PostgreSQL the replicas share what must be shared through
the database itself: a notification bus (LISTEN/NOTIFY), per-container locks that hold across
processes (advisory locks), and one leader per engine for the work that must run once (advisory
locks held on a dedicated connection).
"""

from backend.cluster.bus import NotificationBus
from backend.cluster.keys import advisory_key
from backend.cluster.leader import Leadership
from backend.cluster.locks import AdvisoryLocks
from backend.cluster.node import Cluster, asyncpg_dsn

__all__ = [
    "AdvisoryLocks",
    "Cluster",
    "Leadership",
    "NotificationBus",
    "advisory_key",
    "asyncpg_dsn",
]
