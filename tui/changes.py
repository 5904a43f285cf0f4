"""What an event changed, in words, for the event log: "memory 512 MB → 1 GB" rather than the
same "container_updated web running" for a resize, a rename and a role install alike."""

from __future__ import annotations

from typing import Any

from corral.shapes import EventType
from tui import formatting as fmt

RESOURCE_WORDS = (
    ("memory_mb", "memory", fmt.megabytes),
    ("cpu_shares", "CPUs", fmt.millicores),
    ("disk_mb", "disk", fmt.megabytes),
)


# Events that say all there is to say about themselves.
QUIET_EVENTS = frozenset(
    {EventType.LIST, EventType.CONTAINER_PROGRESS, EventType.CONTAINER_CREATED}
)


def describe_change(
    message: dict[str, Any], before: dict[str, Any] | None, after: dict[str, Any] | None
) -> str | None:
    """The change from ``before`` to ``after`` in a few words; None when there is nothing to say
    beyond the event's own message (a create, a progress step, a list)."""
    if message.get("type") in QUIET_EVENTS:
        return None
    if before is None or after is None:
        return None
    parts: list[str] = []
    if before.get("name") != after.get("name"):
        parts.append(f"renamed {before.get('name')} → {after.get('name')}")
    old = before.get("resources") or {}
    new = after.get("resources") or {}
    for key, word, show in RESOURCE_WORDS:
        if old.get(key) != new.get(key) and key in new:
            parts.append(f"{word} {show(old.get(key))} → {show(new.get(key))}")
    if before.get("status") != after.get("status"):
        parts.append(f"{before.get('status')} → {after.get('status')}")
    if before.get("role_state") != after.get("role_state") and after.get("role_state"):
        parts.append(f"role {after.get('role')} {after.get('role_state')}")
    if before.get("id") != after.get("id") and after.get("id"):
        parts.append(f"new sandbox {fmt.short_id(str(after['id']))}")
    return ", ".join(parts) or None
