"""Advisory lock keys: PostgreSQL's advisory locks are named by one 64-bit integer."""

from __future__ import annotations

import hashlib

# The event log's write lock: every transaction that records events takes it (exclusive, until
# its commit), so row IDs are assigned in commit order and each user's seq is max + 1 safely.
EVENT_LOG = "corral:event-log"
# Schema migrations: one process at a time (replicas starting together).
MIGRATION = "corral:migration"

# The notification channels: an event committed (read the log from where you are), and hints
# ({"kind": ...}: a cache to drop, a token revoked).
EVENTS_CHANNEL = "corral_events"
HINTS_CHANNEL = "corral_hints"
# Agent shells relayed between replicas (backend.agents.relay): each message names its replica.
AGENTS_CHANNEL = "corral_agents"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name``. Two names that collide only share a lock (they
    wait for each other needlessly); they are never wrong."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
