"""The containers table: a widget of our own, drawn line by line.

Why not DataTable: the console needs a thousand rows that change a cell at a time from the event
stream, sorting by the value behind a cell (not its text), several marked rows, and a header that
stays put; DataTable re-measured and re-rendered far more than one changed row, and reaching into
its caches tied us to its private attributes. Here each row is rendered once into a cached line
(``Strip``) and drawn again only when that row changed; a change repaints exactly that line on
screen, through Textual's public ``refresh(region)``. Rows are keyed by the container's database
ID, so a rebuild (new Docker ID) is the same row, and the cursor follows its row through sorts,
inserts and removals.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import total_ordering
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from corral.shapes import Status
from tui.widgets.columns import BY_KEY, COLUMNS, SORTABLE, RowData, layout, now

GAP = 1  # cells between columns
USAGE_COLUMNS = ("cpu", "memory")  # the cells a usage sample changes
MARK = "▌"


def matches(container: dict[str, Any], text: str) -> bool:
    if not text:
        return True
    needle = text.lower()
    haystack = " ".join(
        str(container.get(k) or "") for k in ("name", "image", "status", "id", "db_id", "role")
    )
    return needle in haystack.lower()


@dataclass
class _Row:
    data: RowData
    cells: dict[str, Text]


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


class ContainerTable(ScrollView, can_focus=True):
    """Rows of containers and agents; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("space", "toggle_mark", "Mark", show=False, id="mark"),
        Binding("shift+up", "extend_mark(-1)", "Mark up", show=False),
        Binding("shift+down", "extend_mark(1)", "Mark down", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "container-table--header",
        "container-table--cursor",
        "container-table--odd",
        "container-table--marked",
    }
    DEFAULT_CSS = """
    ContainerTable {
        background: $surface;
    }
    ContainerTable > .container-table--header {
        text-style: bold;
        background: $panel;
        color: $text;
    }
    ContainerTable > .container-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    ContainerTable:blur > .container-table--cursor {
        background: $block-cursor-blurred-background;
    }
    ContainerTable > .container-table--odd {
        background: $surface-lighten-1;
    }
    ContainerTable > .container-table--marked {
        color: $accent;
        text-style: bold;
    }
    """

    cursor_row: reactive[int] = reactive(0, init=False)

    class CursorMoved(Message):
        """The highlighted row changed (``key`` is None when the table is empty)."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    class MarksChanged(Message):
        def __init__(self, keys: frozenset[str]) -> None:
            super().__init__()
            self.keys = keys

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, _Row] = {}
        self._order: list[str] = []
        self._values: list[Any] = []  # the sort values of _order's rows, when sorted
        self._index: dict[str, int] = {}
        self._strips: dict[str, Strip] = {}
        # Each cell's rendering, by the cell object it was made from and its width: a row
        # whose CPU changed renders that cell again, not the other eight.
        self._cell_cache: dict[tuple[int, int], tuple[Text, list[Segment]]] = {}
        self._widths = [c.width for c in COLUMNS]
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.marked: set[str] = set()
        self.cell_writes = 0  # cells written (added or changed), for the tests and benchmarks
        self._cursor_key: str | None = None

    # -- reading ----------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def row_keys(self) -> list[str]:
        return list(self._order)

    def get_row_index(self, key: str) -> int:
        return self._index[key]

    def cell_text(self, key: str, column: str) -> str:
        return self._rows[key].cells[column].plain

    def row_texts(self, key: str) -> list[str]:
        """The row's cells as shown, in column order."""
        cells = self._rows[key].cells
        return [cells[column.key].plain for column in COLUMNS]

    def selected_key(self) -> str | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def selected_keys(self) -> list[str]:
        """The marked rows in table order, or the cursor's row when none is marked."""
        if self.marked:
            return [key for key in self._order if key in self.marked]
        key = self.selected_key()
        return [key] if key else []

    # -- writing ----------------------------------------------------------------------------

    def upsert(
        self,
        key: str,
        container: dict[str, Any],
        progress: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        moment: datetime | None = None,
    ) -> None:
        """Add or update one row; only the cells that changed are written and repainted."""
        if not matches(container, self.filter_text):
            self.drop(key)
            return
        data = RowData(container, progress, stats)
        when = moment or now()
        cells = {column.key: column.cell(data, when) for column in COLUMNS}
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = _Row(data, cells)
            self.cell_writes += len(cells)
            self._insert(key)
            return
        changed = [column for column, value in cells.items() if row.cells.get(column) != value]
        row.data = data
        if not changed:
            return
        self.cell_writes += len(changed)
        for column in changed:  # unchanged cells keep their object, and their rendering
            row.cells[column] = cells[column]
        self._strips.pop(key, None)
        if self.sort_column in changed:
            self._reposition(key)
        else:
            self._refresh_row(key)

    def drop(self, key: str) -> None:
        if self._rows.pop(key, None) is None:
            return
        self._strips.pop(key, None)
        if key in self.marked:
            self.marked.discard(key)
            self.post_message(self.MarksChanged(frozenset(self.marked)))
        index = self._remove_at(key)
        self._after_rows_changed(from_index=index)

    def _remove_at(self, key: str) -> int:
        index = self._index.pop(key)
        del self._order[index]
        if self.sort_column is not None:
            del self._values[index]
        for position in range(index, len(self._order)):
            self._index[self._order[position]] = position
        return index

    def show(self, items: Iterable[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Bring the rows in line with ``items`` (after a filter change): add, update, remove."""
        wanted = set()
        moment = now()
        for key, container, progress in items:
            if matches(container, self.filter_text):
                wanted.add(key)
            self.upsert(key, container, progress, self._stats_of(key), moment)
        for key in [k for k in self._order if k not in wanted]:
            self.drop(key)

    def set_stats(self, key: str, stats: dict[str, Any] | None) -> None:
        """A usage sample: only the usage cells are computed (samples come for hundreds of
        rows at once, every couple of seconds)."""
        row = self._rows.get(key)
        if row is None:
            return
        row.data = RowData(row.data.container, row.data.progress, stats)
        moment = now()
        changed = []
        for column in USAGE_COLUMNS:
            cell = BY_KEY[column].cell(row.data, moment)
            if cell != row.cells[column]:
                row.cells[column] = cell
                changed.append(column)
        if not changed:
            return
        self.cell_writes += len(changed)
        self._strips.pop(key, None)
        if self.sort_column in changed:
            self._reposition(key)
        else:
            self._refresh_row(key)

    def _stats_of(self, key: str) -> dict[str, Any] | None:
        row = self._rows.get(key)
        return row.data.stats if row else None

    def tick(self) -> None:
        """Advance the uptime column from a local clock (nothing is fetched): only the rows
        whose shown uptime changed are written."""
        moment = now()
        uptime = BY_KEY["uptime"]
        for key in list(self._order):
            row = self._rows[key]
            if row.data.container.get("status") != Status.RUNNING:
                continue
            cell = uptime.cell(row.data, moment)
            if cell != row.cells["uptime"]:
                row.cells["uptime"] = cell
                self.cell_writes += 1
                self._strips.pop(key, None)
                if self.sort_column == "uptime":
                    self._reposition(key)
                else:
                    self._refresh_row(key)

    # -- order --------------------------------------------------------------------------------

    def _sort_value(self, key: str, moment: datetime) -> Any:
        assert self.sort_column is not None
        value = BY_KEY[self.sort_column].sort(self._rows[key].data, moment)
        return _Reversed(value) if self.sort_reverse else value

    def _insert(self, key: str) -> None:
        if self.sort_column is None:
            index = len(self._order)
        else:
            value = self._sort_value(key, now())
            index = bisect.bisect_right(self._values, value)
            self._values.insert(index, value)
        self._order.insert(index, key)
        for position in range(index, len(self._order)):
            self._index[self._order[position]] = position
        self._after_rows_changed(from_index=index)

    def _reposition(self, key: str) -> None:
        before = self._remove_at(key)
        self._insert(key)
        self._after_rows_changed(from_index=min(before, self._index[key]))

    def sort_on(self, column: str, reverse: bool | None = None) -> None:
        """Sort by ``column`` (ascending; the same column again reverses)."""
        if column not in BY_KEY:
            return
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column, self.sort_reverse = column, reverse
        moment = now()
        keyed = sorted(
            ((self._sort_value(key, moment), key) for key in self._order), key=lambda p: p[0]
        )
        self._values = [value for value, _ in keyed]
        self._order = [key for _, key in keyed]
        self._index = {key: i for i, key in enumerate(self._order)}
        self._after_rows_changed(from_index=0)

    def cycle_sort(self) -> str:
        index = SORTABLE.index(self.sort_column) + 1 if self.sort_column in SORTABLE else 0
        self.sort_on(SORTABLE[index % len(SORTABLE)], reverse=False)
        assert self.sort_column is not None
        return self.sort_column

    def reverse_sort(self) -> None:
        self.sort_on(self.sort_column or "status", reverse=not self.sort_reverse)

    def _after_rows_changed(self, from_index: int) -> None:
        """Keep the cursor on its row, resize the scroll area, repaint from ``from_index``."""
        self.virtual_size = Size(self._content_width(), len(self._order) + 1)
        if self._cursor_key in self._index:
            target = self._index[self._cursor_key]
        else:
            target = min(self.cursor_row, max(0, len(self._order) - 1))
        if target != self.cursor_row:
            self.set_reactive(ContainerTable.cursor_row, target)
            self._scroll_cursor_into_view()
        self._remember_cursor()
        top = self.scroll_offset.y
        first = max(from_index - top + 1, 1)
        self.refresh(Region(0, first, self.size.width, max(0, self.size.height - first)))
        self.refresh(Region(0, 0, self.size.width, 1))

    # -- cursor and marks ---------------------------------------------------------------------

    def move_cursor(self, row: int) -> None:
        if not self._order:
            return
        self.cursor_row = max(0, min(row, len(self._order) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        for index in (old, new):
            if 0 <= index < len(self._order):
                self._refresh_row(self._order[index])
        self._scroll_cursor_into_view()
        self._remember_cursor()

    def _remember_cursor(self) -> None:
        key = self.selected_key()
        if key != self._cursor_key:
            self._cursor_key = key
            self.post_message(self.CursorMoved(key))

    def _scroll_cursor_into_view(self) -> None:
        visible = max(1, self.size.height - 1)
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self.size.height - 2))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._order) - 1)

    def action_toggle_mark(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        self._refresh_row(key)
        self.post_message(self.MarksChanged(frozenset(self.marked)))
        self.move_cursor(self.cursor_row + 1)

    def action_extend_mark(self, delta: int) -> None:
        key = self.selected_key()
        if key is None:
            return
        self.marked.add(key)
        self.move_cursor(self.cursor_row + delta)
        after = self.selected_key()
        if after is not None:
            self.marked.add(after)
            self._refresh_row(after)
        self._refresh_row(key)
        self.post_message(self.MarksChanged(frozenset(self.marked)))

    def clear_marks(self) -> None:
        if not self.marked:
            return
        keys, self.marked = self.marked, set()
        for key in keys:
            self._refresh_row(key)
        self.post_message(self.MarksChanged(frozenset()))

    # -- mouse --------------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            column = self._column_at(event.x + self.scroll_offset.x)
            if column is not None:
                self.sort_on(column)
            return
        row = self.scroll_offset.y + event.y - 1
        if 0 <= row < len(self._order):
            self.move_cursor(row)

    def _column_at(self, x: int) -> str | None:
        left = 1  # the mark column
        for column, width in zip(COLUMNS, self._widths, strict=True):
            if not width:
                continue
            if left <= x < left + width + GAP:
                return column.key
            left += width + GAP
        return None

    # -- drawing ------------------------------------------------------------------------------

    def on_resize(self, _: events.Resize) -> None:
        widths = layout(max(0, self.size.width - 2), GAP)  # the mark, and a scrollbar's room
        if widths != self._widths:
            self._widths = widths
            self._strips.clear()
        self.virtual_size = Size(self._content_width(), len(self._order) + 1)
        self._scroll_cursor_into_view()

    def _content_width(self) -> int:
        shown = [w for w in self._widths if w]
        return 1 + sum(shown) + GAP * (len(shown) - 1)

    def _refresh_row(self, key: str) -> None:
        index = self._index.get(key)
        if index is None:
            return
        y = index - self.scroll_offset.y + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _cell(self, text: Text, width: int, justify: str) -> list[Segment]:
        cached = self._cell_cache.get((id(text), width))
        if cached is not None and cached[0] is text:
            return cached[1]
        cell = text.copy()
        cell.truncate(width, overflow="ellipsis")
        pad = " " * (width - cell.cell_len)
        if justify == "right":
            cell = Text.assemble(pad, cell)
        else:
            cell.append(pad)
        segments = list(cell.render(self.app.console))
        if len(self._cell_cache) > 50_000:
            self._cell_cache.clear()
        self._cell_cache[(id(text), width)] = (text, segments)
        return segments

    def _line(self, cells: list[Text], style: Style | None = None) -> Strip:
        shown = [
            (text, width, column)
            for text, width, column in zip(cells, self._widths, COLUMNS, strict=True)
            if width
        ]
        gap = Segment(" " * GAP)
        segments: list[Segment] = []
        for index, (text, width, column) in enumerate(shown):
            if index:
                segments.append(gap)
            segments.extend(self._cell(text, width, column.justify))
        length = sum(width for _, width, _ in shown) + GAP * (len(shown) - 1)
        if style is not None:
            segments = list(Segment.apply_style(segments, post_style=style))
        return Strip(segments, length)

    def _header(self) -> Strip:
        labels = []
        for column in COLUMNS:
            label = column.label
            if column.key == self.sort_column:
                width = self._widths[COLUMNS.index(column)]
                label = label[: max(0, width - 1)] + ("▼" if self.sort_reverse else "▲")
            labels.append(Text(label))
        style = self.get_component_rich_style("container-table--header")
        strip = self._line(labels, style)
        return Strip([Segment(" ", style), *strip], strip.cell_length + 1)

    def _row_strip(self, key: str) -> Strip:
        strip = self._strips.get(key)
        if strip is None:
            row = self._rows[key]
            strip = self._line([row.cells[c.key] for c in COLUMNS])
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x = self.scroll_offset.x
        if y == 0:
            return self._header().crop_extend(scroll_x, scroll_x + width, None)
        index = self.scroll_offset.y + y - 1
        if index >= len(self._order):
            return Strip.blank(width, self.rich_style)
        key = self._order[index]
        base = self.rich_style
        if index == self.cursor_row:
            base = base + self.get_component_rich_style("container-table--cursor")
        elif index % 2:
            base = base + self.get_component_rich_style("container-table--odd")
        marked = key in self.marked
        mark_style = self.get_component_rich_style("container-table--marked")
        mark = Segment(MARK if marked else " ", base + mark_style if marked else base)
        body = self._row_strip(key)
        line = Strip([mark, *body], body.cell_length + 1).apply_style(base)
        if marked:
            line = line.apply_style(mark_style)
        return line.crop_extend(scroll_x, scroll_x + width, base)
