"""The containers table's rows, apart from drawing them: their cells, their order, the filter.

Pure data (no Textual), so the order rules are easy to test and the widget only turns what
changed into repaints. Every write answers with the ``Change`` it made: which row, and from
which position on the order moved (None when only the row's own cells changed).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import total_ordering
from typing import Any

from rich.text import Text

from corral.shapes import Status
from tui.widgets.columns import BY_KEY, COLUMNS, RowData, now

USAGE_COLUMNS = ("cpu", "memory")  # the cells a usage sample changes
FILTERED_FIELDS = ("name", "image", "status", "id", "db_id", "role")


def matches(container: dict[str, Any], text: str) -> bool:
    if not text:
        return True
    haystack = " ".join(str(container.get(k) or "") for k in FILTERED_FIELDS)
    return text.lower() in haystack.lower()


@dataclass
class Row:
    data: RowData
    cells: dict[str, Text]


@dataclass(frozen=True)
class Change:
    """What a write did: ``key``'s cells changed; ``moved_from`` is the first position whose
    row may differ (an insert, a removal, a move), or None when the order is as it was."""

    key: str
    moved_from: int | None = None


@total_ordering
class _Reversed:
    """A sort value that orders backwards, so one ascending search serves both directions."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.value == other.value)

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.value < self.value)


class Rows:
    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self._order: list[str] = []
        self._values: list[Any] = []  # the sort values of _order's rows, when sorted
        self._index: dict[str, int] = {}
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.cell_writes = 0  # cells written (added or changed), for the tests and benchmarks

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def key_at(self, index: int) -> str:
        return self._order[index]

    def index_of(self, key: str) -> int:
        return self._index[key]

    def row(self, key: str) -> Row:
        return self._rows[key]

    def get(self, key: str) -> Row | None:
        return self._rows.get(key)

    # -- writing ------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        container: dict[str, Any],
        progress: dict[str, Any] | None,
        stats: dict[str, Any] | None,
        moment: datetime | None = None,
    ) -> Change | None:
        """Add or update a row (a row the filter hides is removed); None when nothing
        changed. Only the cells that changed are replaced: the others keep their objects,
        so their renderings stay cached."""
        if not matches(container, self.filter_text):
            return self.remove(key)
        data = RowData(container, progress, stats)
        when = moment or now()
        cells = {column.key: column.cell(data, when) for column in COLUMNS}
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = Row(data, cells)
            self.cell_writes += len(cells)
            return Change(key, self._insert(key))
        row.data = data
        return self._write(key, row, {c: v for c, v in cells.items() if row.cells[c] != v})

    def put_stats(self, key: str, stats: dict[str, Any] | None) -> Change | None:
        """A usage sample: only the usage cells are computed (samples come for hundreds of
        rows at once, every couple of seconds)."""
        row = self._rows.get(key)
        if row is None:
            return None
        row.data = RowData(row.data.container, row.data.progress, stats)
        moment = now()
        changed = {}
        for column in USAGE_COLUMNS:
            cell = BY_KEY[column].cell(row.data, moment)
            if cell != row.cells[column]:
                changed[column] = cell
        return self._write(key, row, changed)

    def tick(self) -> list[Change]:
        """Advance the uptime column from a local clock: only rows whose shown uptime
        changed are written."""
        moment = now()
        uptime = BY_KEY["uptime"]
        changes = []
        for key in list(self._order):
            row = self._rows[key]
            if row.data.container.get("status") != Status.RUNNING:
                continue
            cell = uptime.cell(row.data, moment)
            if cell != row.cells["uptime"]:
                change = self._write(key, row, {"uptime": cell})
                if change is not None:
                    changes.append(change)
        return changes

    def _write(self, key: str, row: Row, changed: dict[str, Text]) -> Change | None:
        if not changed:
            return None
        self.cell_writes += len(changed)
        row.cells.update(changed)
        if self.sort_column in changed:
            before = self._remove_at(key)
            after = self._insert(key)
            return Change(key, min(before, after))
        return Change(key)

    def remove(self, key: str) -> Change | None:
        if self._rows.pop(key, None) is None:
            return None
        return Change(key, self._remove_at(key))

    def _remove_at(self, key: str) -> int:
        index = self._index.pop(key)
        del self._order[index]
        if self.sort_column is not None:
            del self._values[index]
        for position in range(index, len(self._order)):
            self._index[self._order[position]] = position
        return index

    # -- order --------------------------------------------------------------------------------

    def _sort_value(self, key: str, moment: datetime) -> Any:
        assert self.sort_column is not None
        value = BY_KEY[self.sort_column].sort(self._rows[key].data, moment)
        return _Reversed(value) if self.sort_reverse else value

    def _insert(self, key: str) -> int:
        if self.sort_column is None:
            index = len(self._order)
        else:
            value = self._sort_value(key, now())
            index = bisect.bisect_right(self._values, value)
            self._values.insert(index, value)
        self._order.insert(index, key)
        for position in range(index, len(self._order)):
            self._index[self._order[position]] = position
        return index

    def sort(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        moment = now()
        keyed = sorted(
            ((self._sort_value(key, moment), key) for key in self._order), key=lambda p: p[0]
        )
        self._values = [value for value, _ in keyed]
        self._order = [key for _, key in keyed]
        self._index = {key: i for i, key in enumerate(self._order)}
