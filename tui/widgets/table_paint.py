"""How the containers table draws a line: cells padded to their column, joined by a gap.

Kept apart from the widget (``tui.widgets.table``) because it is pure drawing: rows in, ``Strip``s
out, with the two caches that make a repaint cheap. A row's line is kept until that row changes or
the columns are laid out again; a cell's rendering is kept per value object, so a row whose CPU
changed renders that one cell again, not the other eight.
"""

from __future__ import annotations

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from tui.widgets.columns import COLUMNS, OPTIONAL, layout
from tui.widgets.rows import Row

GAP = 1  # cells between columns
CELL_CACHE_LIMIT = 50_000  # renderings kept before the cache starts over


class LinePainter:
    """Lines of the table at the current widths; see the module docstring."""

    def __init__(self) -> None:
        self.widths = [c.width if c.key not in OPTIONAL else 0 for c in COLUMNS]
        self.shown: frozenset[str] = frozenset()  # the optional columns shown (``OPTIONAL``)
        self._room = sum(self.widths)
        self._lines: dict[str, Strip] = {}
        self._cells: dict[tuple[int, int], tuple[Text, list[Segment]]] = {}

    def fit(self, room: int) -> bool:
        """Lay the columns out in ``room`` cells; True when the widths changed."""
        self._room = room
        widths = layout(max(0, room), GAP, self.shown)
        if widths == self.widths:
            return False
        self.widths = widths
        self._lines.clear()
        return True

    def show(self, shown: frozenset[str]) -> bool:
        """Show these optional columns (and hide the others); True when the widths changed."""
        self.shown = shown
        return self.fit(self._room)

    @property
    def content_width(self) -> int:
        shown = [w for w in self.widths if w]
        return sum(shown) + GAP * (len(shown) - 1)

    def forget(self, key: str) -> None:
        """The row changed: draw it again next time."""
        self._lines.pop(key, None)

    def row(self, console: Console, key: str, row: Row) -> Strip:
        line = self._lines.get(key)
        if line is None:
            line = self.line(console, [row.cells[c.key] for c in COLUMNS])
            self._lines[key] = line
        return line

    def line(self, console: Console, cells: list[Text], style: Style | None = None) -> Strip:
        shown = [
            (text, width, column)
            for text, width, column in zip(cells, self.widths, COLUMNS, strict=True)
            if width
        ]
        gap = Segment(" " * GAP)
        segments: list[Segment] = []
        for index, (text, width, column) in enumerate(shown):
            if index:
                segments.append(gap)
            segments.extend(self._cell(console, text, width, column.justify))
        length = sum(width for _, width, _ in shown) + GAP * (len(shown) - 1)
        if style is not None:
            segments = list(Segment.apply_style(segments, post_style=style))
        return Strip(segments, length)

    def _cell(self, console: Console, text: Text, width: int, justify: str) -> list[Segment]:
        cached = self._cells.get((id(text), width))
        if cached is not None and cached[0] is text:
            return cached[1]
        cell = text.copy()
        cell.truncate(width, overflow="ellipsis")
        pad = " " * (width - cell.cell_len)
        if justify == "right":
            cell = Text.assemble(pad, cell)
        else:
            cell.append(pad)
        segments = list(cell.render(console))
        if len(self._cells) > CELL_CACHE_LIMIT:
            self._cells.clear()
        self._cells[(id(text), width)] = (text, segments)
        return segments
