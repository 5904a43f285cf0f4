"""What the console knows, kept current by the event stream alone (no polling).

``Fleet`` holds every container and agent by its stable database ID (a Docker ID changes when a
container is rebuilt; the database ID never does), the recent events of each, and the progress of
long operations. ``apply`` turns one stream message into the list of rows that changed, so the
table repaints those rows and nothing else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from corral.shapes import EventType, RoleState, Status, is_agent

RECENT_EVENTS = 12
STATS_HISTORY = 60  # samples kept per container, for the details pane's sparkline


@dataclass(frozen=True)
class Change:
    kind: str  # "upsert", "remove"
    key: str


@dataclass
class Fleet:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    limit: int | None = None
    last_seq: int | None = None
    # What the console itself is doing to a row ("stopping…"), until the events say the rest.
    activity: dict[str, str] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)

    def shown_progress(self, key: str) -> dict[str, Any] | None:
        """The operation a row shows: the backend's progress, else the console's own activity
        (with no percentage: the backend did not say one)."""
        progress = self.progress.get(key)
        if progress is not None:
            return progress
        label = self.activity.get(key)
        return {"activity": label, "message": label} if label else None

    def set_activity(self, key: str, label: str | None) -> None:
        if label:
            self.activity[key] = label
        else:
            self.activity.pop(key, None)

    def add_stats(self, key: str, sample: dict[str, Any]) -> None:
        self.stats[key] = sample
        self.history.setdefault(key, deque(maxlen=STATS_HISTORY)).append(sample)

    def stats_history(self, key: str) -> list[dict[str, Any]]:
        return list(self.history.get(key, []))

    @staticmethod
    def key_of(container: dict[str, Any]) -> str:
        return str(container.get("db_id") or container.get("id"))

    def apply(self, message: dict[str, Any]) -> list[Change]:
        kind = message.get("type")
        payload = message.get("container") or {}
        if isinstance(message.get("seq"), int):
            self.last_seq = message["seq"]
        if kind == EventType.LIST:
            return self._replace_all(payload)
        key = self.key_of(payload)
        self.recent.setdefault(key, deque(maxlen=RECENT_EVENTS)).append(message)
        if kind == EventType.CONTAINER_PROGRESS:
            self.progress[key] = payload
            if payload.get("complete"):
                self.progress.pop(key, None)
            return [Change("upsert", key)] if key in self.items else []
        if kind == EventType.CONTAINER_DELETED or payload.get("status") == Status.DELETED:
            self.items.pop(key, None)
            self.progress.pop(key, None)
            self.stats.pop(key, None)
            self.history.pop(key, None)
            return [Change("remove", key)]
        if "status" not in payload:
            return []
        self.items[key] = payload
        if (
            payload.get("status") == Status.RUNNING
            and payload.get("role_state") != RoleState.INSTALLING
        ):
            self.progress.pop(key, None)
        return [Change("upsert", key)]

    def _replace_all(self, listing: dict[str, Any]) -> list[Change]:
        """A fresh list (first message, or after a long disconnect): a diff, never a reset, so
        the table keeps its rows, cursor and scroll."""
        if isinstance(listing.get("limit"), int):
            self.limit = listing["limit"]
        fresh = {self.key_of(c): c for c in listing.get("containers", [])}
        changes = [Change("remove", key) for key in self.items if key not in fresh]
        for key, container in fresh.items():
            if self.items.get(key) != container:
                changes.append(Change("upsert", key))
        for change in changes:
            if change.kind == "remove":
                self.progress.pop(change.key, None)
        self.items = fresh
        return changes

    def container_count(self) -> int:
        return sum(1 for c in self.items.values() if not is_agent(c))
