"""How values look in the console: status markers, sizes, uptimes, short IDs.

Pure functions, so the table, the details pane and the tests agree on every cell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from corral.shapes import EventType, RoleState, Status

STATUS_STYLE: dict[str, tuple[str, str]] = {
    Status.RUNNING: ("●", "green"),
    Status.CONFIGURING: ("◐", "cyan"),
    Status.CREATING: ("◌", "cyan"),
    Status.STOPPED: ("○", "yellow"),
    Status.OFFLINE: ("○", "yellow"),
    Status.MISSING: ("✕", "magenta"),
    Status.UNKNOWN: ("?", "magenta"),
    Status.ERROR: ("✕", "red"),
    Status.DELETED: ("✕", "dim"),
}

EVENT_STYLE: dict[str, str] = {
    EventType.CONTAINER_CREATED: "cyan",
    EventType.CONTAINER_PROGRESS: "blue",
    EventType.CONTAINER_STARTED: "green",
    EventType.CONTAINER_STOPPED: "yellow",
    EventType.CONTAINER_DELETED: "red",
    EventType.CONTAINER_UPDATED: "magenta",
    EventType.AGENT_CONNECTED: "green",
    EventType.AGENT_DISCONNECTED: "yellow",
    EventType.LIST: "dim",
}


def status_cell(status: str) -> Text:
    marker, style = STATUS_STYLE.get(status, ("?", "white"))
    return Text.assemble((marker + " ", style), (status, style))


def megabytes(value: Any) -> str:
    if not isinstance(value, int):
        return "—"
    if value >= 1024 and value % 1024 == 0:
        return f"{value // 1024} GB"
    if value >= 1024:
        return f"{value / 1024:.1f} GB"
    return f"{value} MB"


def compact_megabytes(value: Any) -> str:
    """A short size for tight cells: ``512M``, ``1G``, ``1.5G``."""
    if not isinstance(value, int | float):
        return "—"
    if value >= 1024:
        text = f"{value / 1024:.1f}".removesuffix(".0")
        return f"{text}G"
    return f"{value:.0f}M"


def millicores(value: Any) -> str:
    """CPUs from millicores: 1000 → ``1``, 500 → ``0.5``, 250 → ``0.25``."""
    if not isinstance(value, int):
        return "—"
    return f"{value / 1000:.2f}".rstrip("0").rstrip(".")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def uptime(container: dict[str, Any], now: datetime | None = None) -> str:
    if container.get("status") != Status.RUNNING:
        return "—"
    started = parse_time(container.get("started_at"))
    if started is None:
        return "—"
    return duration(((now or datetime.now(UTC)) - started).total_seconds())


def short_id(ident: str) -> str:
    if ident.startswith("agent:"):
        return ident[:14]
    return ident[:12]


def local_time(value: Any) -> str:
    moment = parse_time(value)
    if moment is None:
        return "—"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def role_cell(container: dict[str, Any]) -> str:
    role = container.get("role")
    if not role:
        return "—"
    state = container.get("role_state")
    if state and state not in (RoleState.INSTALLED, RoleState.NONE):
        return f"{role} ({state})"
    return str(role)


def short_image(image: Any) -> str:
    """``corral/debian:bookworm`` → ``debian:bookworm``: the registry prefix is the same for all."""
    if not image:
        return "—"
    return str(image).removeprefix("corral/")


def short_event(kind: str) -> str:
    return kind.removeprefix("container_")


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], ceiling: float | None = None) -> str:
    """A one-line chart of ``values`` (scaled to ``ceiling``, or to their largest)."""
    if not values:
        return ""
    top = ceiling if ceiling else max(values)
    if top <= 0:
        return SPARKS[0] * len(values)
    last = len(SPARKS) - 1
    return "".join(SPARKS[max(0, min(last, round(v / top * last)))] for v in values)


def byte_size(value: Any) -> str:
    """A file's size as people read it: ``512 B``, ``14.2 KB``, ``3.0 MB``, ``1.2 GB``."""
    if not isinstance(value, int):
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
