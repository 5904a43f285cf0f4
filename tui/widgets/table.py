"""The containers table: one row per container or agent, keyed by its database ID, updated cell
by cell. Nothing here ever clears the table: a change repaints the cells that changed, so the
cursor and the scroll stay where the user left them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from tui import formatting as fmt

# Fixed widths: the table never measures a thousand cells to size its columns, and a cell that
# changes never shifts the others. Longer values are cut with an ellipsis.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("status", "Status", 14),
    ("name", "Name", 15),
    ("image", "Image", 13),
    ("role", "Role", 9),
    ("memory", "Memory", 6),
    ("cpu", "CPUs", 4),
    ("disk", "Disk", 6),
    ("uptime", "Uptime", 6),
    ("id", "ID", 12),
)
SORT_KEYS = ("name", "status", "image", "memory", "uptime")


def cells(
    container: dict[str, Any], progress: dict[str, Any] | None, now: datetime | None = None
) -> dict[str, Text | str]:
    resources = container.get("resources") or {}
    status = fmt.status_cell(str(container.get("status", "?")))
    if progress is not None and not progress.get("complete"):
        status.append(f" {progress.get('progress', 0)}%", "dim")
    # Text, not str: a str cell would be parsed as Rich markup on every render.
    return {
        "status": status,
        "name": Text(str(container.get("name", "")), overflow="ellipsis", no_wrap=True),
        "image": Text(fmt.short_image(container.get("image")), overflow="ellipsis"),
        "role": Text(fmt.role_cell(container), overflow="ellipsis"),
        "memory": Text(fmt.megabytes(resources.get("memory_mb"))),
        "cpu": Text(fmt.millicores(resources.get("cpu_shares"))),
        "disk": Text(fmt.megabytes(resources.get("disk_mb"))),
        "uptime": Text(fmt.uptime(container, now)),
        "id": Text(fmt.short_id(str(container.get("id", "")))),
    }


def matches(container: dict[str, Any], text: str) -> bool:
    if not text:
        return True
    needle = text.lower()
    haystack = " ".join(
        str(container.get(k) or "") for k in ("name", "image", "status", "id", "role")
    )
    return needle in haystack.lower()


class ContainerTable(DataTable[Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, dict[str, Text | str]] = {}
        self.filter_text = ""
        self.sort_column: str | None = None
        self.cell_writes = 0  # every update_cell and add_row, for the tests and benchmarks

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    # -- rows -----------------------------------------------------------------------------------

    def upsert(self, key: str, container: dict[str, Any], progress: dict[str, Any] | None) -> None:
        if not matches(container, self.filter_text):
            self.drop(key)
            return
        new = cells(container, progress)
        old = self._shown.get(key)
        if old is None:
            self.add_row(*(new[k] for k, _, _ in COLUMNS), key=key)
            self.cell_writes += len(COLUMNS)
            self._shown[key] = new
            if self.sort_column:
                self._sort()
            return
        changed = False
        for column, value in new.items():
            if old.get(column) != value:
                self._set_cell(key, column, value)
                self.cell_writes += 1
                old[column] = value
                changed = True
        if changed:
            with contextlib.suppress(RowDoesNotExist):
                self.refresh_row(self.get_row_index(key))

    def _set_cell(self, key: str, column: str, value: Text | str) -> None:
        """``update_cell`` without its whole-table invalidation.

        DataTable's ``update_cell`` bumps a counter that is part of every render cache key, so
        one changed cell makes the next frame re-render every visible cell and recompute every
        row's offset: with a thousand rows that is most of an event's cost. Here only the
        changed row's cached renders are dropped, and only its line is repainted (by the
        caller). Sorting and adding rows still go through DataTable's own paths."""
        row_key, column_key = RowKey(key), ColumnKey(column)
        row = self._data.get(row_key)
        if row is None or column_key not in row:
            return
        row[column_key] = value
        caches: tuple[Any, ...] = (self._cell_render_cache, self._row_render_cache)
        for cache in caches:
            for cache_key in [k for k in cache.keys() if k[0] == row_key]:  # noqa: SIM118
                cache.discard(cache_key)
        index = self.get_row_index(row_key)
        renderables: Any = self._row_renderable_cache
        for cache_key in [k for k in renderables.keys() if k[1] == index]:  # noqa: SIM118
            renderables.discard(cache_key)
        self._line_cache.clear()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Nothing to measure: every column has a fixed width and every row is one line.

        DataTable measures every cell of every new row to size its columns; for a thousand
        rows that is a large part of the console's first paint, spent on widths that are fixed.
        """

    def drop(self, key: str) -> None:
        if self._shown.pop(key, None) is not None:
            with contextlib.suppress(RowDoesNotExist):
                self.remove_row(key)

    def show(self, items: Iterable[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Bring the rows in line with ``items`` (after a filter change): add, update, remove."""
        wanted = set()
        for key, container, progress in items:
            if matches(container, self.filter_text):
                wanted.add(key)
            self.upsert(key, container, progress)
        for key in list(self._shown):
            if key not in wanted:
                self.drop(key)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return None if row_key.value is None else str(row_key.value)

    # -- sorting and time -----------------------------------------------------------------------

    def cycle_sort(self) -> str:
        index = SORT_KEYS.index(self.sort_column) + 1 if self.sort_column in SORT_KEYS else 0
        self.sort_column = SORT_KEYS[index % len(SORT_KEYS)]
        self._sort()
        return self.sort_column

    def sort_on(self, column: str) -> None:
        self.sort_column = column
        self._sort()

    def _sort(self) -> None:
        if self.sort_column:
            self.sort(self.sort_column, key=_sort_key)

    def tick(self, items: dict[str, dict[str, Any]]) -> None:
        """Advance the uptime column (a local clock: nothing is fetched)."""
        now = datetime.now(UTC)
        for key in list(self._shown):
            container = items.get(key)
            if container is not None and container.get("status") == "running":
                value = Text(fmt.uptime(container, now))
                if self._shown[key].get("uptime") != value:
                    self._set_cell(key, "uptime", value)
                    self._shown[key]["uptime"] = value
                    with contextlib.suppress(RowDoesNotExist):
                        self.refresh_row(self.get_row_index(key))


def _sort_key(value: Any) -> Any:
    return value.plain.lower() if isinstance(value, Text) else str(value).lower()
