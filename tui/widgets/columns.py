"""The containers table's columns: how each cell looks and what it sorts by.

A column sorts by the value behind its cell, never by the text shown: memory by megabytes (512
MB before 1 GB), uptime by seconds, status by how alive the container is. Widths are minimums;
spare width goes to the columns with a ``grow`` share (name and image), so a wide terminal shows
long names rather than empty space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from corral.shapes import Status
from tui import formatting as fmt


@dataclass(frozen=True)
class RowData:
    """Everything a row shows: the container, its running operation, its latest usage sample."""

    container: dict[str, Any]
    progress: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    cell: Callable[[RowData, datetime], Text]
    sort: Callable[[RowData, datetime], Any]
    grow: int = 0
    justify: str = "left"


# Most alive first.
STATUS_ORDER: dict[str, int] = {
    Status.RUNNING: 0,
    Status.CONFIGURING: 1,
    Status.CREATING: 2,
    Status.STOPPED: 3,
    Status.OFFLINE: 4,
    Status.MISSING: 5,
    Status.UNKNOWN: 6,
    Status.ERROR: 7,
}


def _resources(row: RowData) -> dict[str, Any]:
    return row.container.get("resources") or {}


def _status(row: RowData, _: datetime) -> Text:
    progress = row.progress
    if progress is not None and progress.get("activity"):
        return Text.assemble(("◌ ", "cyan"), (str(progress["activity"]), "cyan"))
    cell = fmt.status_cell(str(row.container.get("status", "?")))
    if progress is not None and not progress.get("complete"):
        percent = progress.get("progress")
        cell.append(f" {percent}%" if isinstance(percent, int) else " …", "dim")
    return cell


def _uptime_seconds(row: RowData, now: datetime) -> float:
    if row.container.get("status") != Status.RUNNING:
        return -1.0
    started = fmt.parse_time(row.container.get("started_at"))
    return (now - started).total_seconds() if started else -1.0


def _cpu(row: RowData, _: datetime) -> Text:
    limit = fmt.millicores(_resources(row).get("cpu_shares"))
    stats = row.stats
    if stats is None or row.container.get("status") != Status.RUNNING:
        return Text(limit, style="dim")
    return Text(f"{stats.get('cpu_percent', 0):.0f}%")


def _memory(row: RowData, _: datetime) -> Text:
    limit = fmt.megabytes(_resources(row).get("memory_mb"))
    stats = row.stats
    if stats is None or row.container.get("status") != Status.RUNNING:
        return Text(limit)
    used = stats.get("memory_used_mb")
    if not isinstance(used, int | float):
        return Text(limit)
    return Text(
        f"{fmt.compact_megabytes(used)}/{fmt.compact_megabytes(_resources(row).get('memory_mb'))}"
    )


def _text(value: Any) -> Text:
    return Text(str(value), overflow="ellipsis", no_wrap=True)


COLUMNS: tuple[Column, ...] = (
    Column(
        "status",
        "Status",
        14,
        _status,
        lambda r, _: (STATUS_ORDER.get(str(r.container.get("status")), 9), r.container.get("name")),
    ),
    Column(
        "name",
        "Name",
        15,
        lambda r, _: _text(r.container.get("name", "")),
        lambda r, _: str(r.container.get("name", "")).lower(),
        grow=2,
    ),
    Column(
        "image",
        "Image",
        13,
        lambda r, _: _text(fmt.short_image(r.container.get("image"))),
        lambda r, _: str(r.container.get("image") or ""),
        grow=1,
    ),
    Column(
        "role",
        "Role",
        9,
        lambda r, _: _text(fmt.role_cell(r.container)),
        lambda r, _: str(r.container.get("role") or ""),
    ),
    Column(
        "cpu",
        "CPU",
        5,
        _cpu,
        lambda r, _: (
            (r.stats or {}).get("cpu_percent", -1.0)
            if r.stats and r.container.get("status") == Status.RUNNING
            else -1.0,
            _resources(r).get("cpu_shares") or 0,
        ),
        justify="right",
    ),
    Column(
        "memory",
        "Memory",
        9,
        _memory,
        lambda r, _: (
            (r.stats or {}).get("memory_used_mb", -1.0)
            if r.stats and r.container.get("status") == Status.RUNNING
            else -1.0,
            _resources(r).get("memory_mb") or 0,
        ),
        justify="right",
    ),
    Column(
        "disk",
        "Disk",
        6,
        lambda r, _: Text(fmt.megabytes(_resources(r).get("disk_mb"))),
        lambda r, _: _resources(r).get("disk_mb") or 0,
        justify="right",
    ),
    Column(
        "uptime",
        "Uptime",
        6,
        lambda r, now: Text(fmt.uptime(r.container, now)),
        _uptime_seconds,
        justify="right",
    ),
    Column(
        "engine",
        "Engine",
        8,
        lambda r, _: _text(r.container.get("engine") or "—"),
        lambda r, _: str(r.container.get("engine") or ""),
    ),
    Column(
        "id",
        "ID",
        12,
        lambda r, _: Text(fmt.short_id(str(r.container.get("id", ""))), style="dim"),
        lambda r, _: str(r.container.get("id", "")),
    ),
)
BY_KEY = {column.key: column for column in COLUMNS}
SORTABLE = tuple(column.key for column in COLUMNS)


def now() -> datetime:
    return datetime.now(UTC)


# Dropped first to last when the terminal is too narrow for every column (80 columns keep
# status, name, image, role, CPU, memory and uptime).
DROP_ORDER = ("id", "engine", "disk", "role", "uptime", "cpu")
# Shown only when it tells rows apart: the engine, when the backend has more than one.
OPTIONAL = frozenset({"engine"})


def layout(total: int, gap: int = 1, shown: frozenset[str] = frozenset()) -> list[int]:
    """Column widths for ``total`` cells: the minimums, with the spare shared by ``grow``; a
    width of 0 hides a column that does not fit (``DROP_ORDER``), or an ``OPTIONAL`` one not
    in ``shown``."""
    keys = [column.key for column in COLUMNS]
    widths = [0 if column.key in OPTIONAL - shown else column.width for column in COLUMNS]

    def needed() -> int:
        shown = [w for w in widths if w]
        return sum(shown) + gap * (len(shown) - 1)

    for key in DROP_ORDER:
        if needed() <= total:
            break
        widths[keys.index(key)] = 0
    spare = total - needed()
    shares = sum(column.grow for column, width in zip(COLUMNS, widths, strict=True) if width)
    if spare > 0 and shares:
        given = 0
        for index, column in enumerate(COLUMNS):
            if widths[index]:
                extra = spare * column.grow // shares
                widths[index] += extra
                given += extra
        widths[keys.index("name")] += spare - given
    return widths
