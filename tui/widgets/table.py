"""The containers table: a widget of our own, drawn line by line.

Why not DataTable: the console needs a thousand rows that change a cell at a time from the event
stream, sorting by the value behind a cell (not its text), several marked rows, and a header that
stays put; DataTable re-measured and re-rendered far more than one changed row, and reaching into
its caches tied us to its private attributes. Here each row is rendered once into a cached line
(``Strip``) and drawn again only when that row changed; a change repaints exactly that line on
screen, through Textual's public ``refresh(region)``. Rows are keyed by the container's database
ID, so a rebuild (new Docker ID) is the same row, and the cursor follows its row through sorts,
inserts and removals. The rows themselves (cells, order, filter) live in ``tui.widgets.rows``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.widgets.columns import BY_KEY, COLUMNS, SORTABLE, now
from tui.widgets.rows import Change, Rows, matches
from tui.widgets.table_paint import GAP, LinePainter

MARK = "▌"


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
        self.rows = Rows()
        self.painter = LinePainter()
        self.marked: set[str] = set()
        self._cursor_key: str | None = None

    # -- reading ----------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def row_keys(self) -> list[str]:
        return list(self.rows)

    @property
    def cell_writes(self) -> int:
        return self.rows.cell_writes

    @property
    def sort_column(self) -> str | None:
        return self.rows.sort_column

    @property
    def sort_reverse(self) -> bool:
        return self.rows.sort_reverse

    @property
    def filter_text(self) -> str:
        return self.rows.filter_text

    @filter_text.setter
    def filter_text(self, text: str) -> None:
        self.rows.filter_text = text

    def get_row_index(self, key: str) -> int:
        return self.rows.index_of(key)

    def cell_text(self, key: str, column: str) -> str:
        return self.rows.row(key).cells[column].plain

    def row_texts(self, key: str) -> list[str]:
        """The row's cells as shown, in column order."""
        cells = self.rows.row(key).cells
        return [cells[column.key].plain for column in COLUMNS]

    def selected_key(self) -> str | None:
        if not self.rows:
            return None
        return self.rows.key_at(min(self.cursor_row, len(self.rows) - 1))

    def selected_keys(self) -> list[str]:
        """The marked rows in table order, or the cursor's row when none is marked."""
        if self.marked:
            return [key for key in self.rows if key in self.marked]
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
        existing = self.rows.get(key)
        if stats is None and existing is not None:
            stats = existing.data.stats
        self._apply(self.rows.put(key, container, progress, stats, moment))

    def drop(self, key: str) -> None:
        self._apply(self.rows.remove(key))

    def show(self, items: Iterable[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Bring the rows in line with ``items`` (after a filter change): add, update, remove."""
        wanted = set()
        moment = now()
        for key, container, progress in items:
            if matches(container, self.filter_text):
                wanted.add(key)
            self.upsert(key, container, progress, None, moment)
        for key in [k for k in self.rows if k not in wanted]:
            self.drop(key)

    def set_stats(self, key: str, stats: dict[str, Any] | None) -> None:
        self._apply(self.rows.put_stats(key, stats))

    def tick(self) -> None:
        """Advance the uptime column from a local clock (nothing is fetched)."""
        for change in self.rows.tick():
            self._apply(change)

    def _apply(self, change: Change | None) -> None:
        """Repaint what a write changed: its row, or every row from where the order moved."""
        if change is None:
            return
        self.painter.forget(change.key)
        if change.key not in self.rows and change.key in self.marked:
            self.marked.discard(change.key)
            self.post_message(self.MarksChanged(frozenset(self.marked)))
        if change.moved_from is None:
            self._refresh_row(change.key)
        else:
            self._after_rows_changed(change.moved_from)

    # -- order --------------------------------------------------------------------------------

    def sort_on(self, column: str, reverse: bool | None = None) -> None:
        """Sort by ``column`` (ascending; the same column again reverses)."""
        if column not in BY_KEY:
            return
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else False
        self.rows.sort(column, reverse)
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
        self.virtual_size = Size(1 + self.painter.content_width, len(self.rows) + 1)
        if self._cursor_key is not None and self._cursor_key in self.rows:
            target = self.rows.index_of(self._cursor_key)
        else:
            target = min(self.cursor_row, max(0, len(self.rows) - 1))
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
        if not self.rows:
            return
        self.cursor_row = max(0, min(row, len(self.rows) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        for index in (old, new):
            if 0 <= index < len(self.rows):
                self._refresh_row(self.rows.key_at(index))
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
        self.move_cursor(len(self.rows) - 1)

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
        if 0 <= row < len(self.rows):
            self.move_cursor(row)

    def _column_at(self, x: int) -> str | None:
        left = 1  # the mark column
        for column, width in zip(COLUMNS, self.painter.widths, strict=True):
            if not width:
                continue
            if left <= x < left + width + GAP:
                return column.key
            left += width + GAP
        return None

    # -- drawing ------------------------------------------------------------------------------

    def show_engines(self, shown: bool) -> None:
        """Show the Engine column (the backend has several engines) or hide it."""
        if self.painter.show(frozenset({"engine"}) if shown else frozenset()):
            self.virtual_size = Size(1 + self.painter.content_width, len(self.rows) + 1)
            self.refresh()

    def on_resize(self, _: events.Resize) -> None:
        self.painter.fit(self.size.width - 2)  # the mark, and a scrollbar's room
        self.virtual_size = Size(1 + self.painter.content_width, len(self.rows) + 1)
        self._scroll_cursor_into_view()

    def _refresh_row(self, key: str) -> None:
        if key not in self.rows:
            return
        index = self.rows.index_of(key)
        y = index - self.scroll_offset.y + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _header(self) -> Strip:
        labels = []
        for column, width in zip(COLUMNS, self.painter.widths, strict=True):
            label = column.label
            if column.key == self.sort_column:
                label = label[: max(0, width - 1)] + ("▼" if self.sort_reverse else "▲")
            labels.append(Text(label))
        style = self.get_component_rich_style("container-table--header")
        strip = self.painter.line(self.app.console, labels, style)
        return Strip([Segment(" ", style), *strip], strip.cell_length + 1)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x = self.scroll_offset.x
        if y == 0:
            return self._header().crop_extend(scroll_x, scroll_x + width, None)
        index = self.scroll_offset.y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        key = self.rows.key_at(index)
        base = self.rich_style
        if index == self.cursor_row:
            base = base + self.get_component_rich_style("container-table--cursor")
        elif index % 2:
            base = base + self.get_component_rich_style("container-table--odd")
        marked = key in self.marked
        mark_style = self.get_component_rich_style("container-table--marked")
        mark = Segment(MARK if marked else " ", base + mark_style if marked else base)
        body = self.painter.row(self.app.console, key, self.rows.row(key))
        line = Strip([mark, *body], body.cell_length + 1).apply_style(base)
        if marked:
            line = line.apply_style(mark_style)
        return line.crop_extend(scroll_x, scroll_x + width, base)
