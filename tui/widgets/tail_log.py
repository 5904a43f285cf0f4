"""A log drawn line by line at a fixed size: the newest lines at the bottom, scrolled back by
its own offset (mouse wheel, or keys when it has the focus).

Why not RichLog: every line it takes grows its virtual size, and a widget's virtual size is a
layout property in Textual, so each event lay out the whole dashboard again (13 ms a time with
1,000 rows: most of an event's cost). This widget's size never changes with its content: a new
line repaints the widget's own few lines and nothing else.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.strip import Strip
from textual.widget import Widget


class TailLog(Widget, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll(1)", "Older", show=False),
        Binding("down,j", "scroll(-1)", "Newer", show=False),
        Binding("pageup", "page(1)", "Page up", show=False),
        Binding("pagedown", "page(-1)", "Page down", show=False),
        Binding("end,G", "follow", "Newest", show=False),
    ]

    def __init__(self, keep: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._lines: deque[Text] = deque(maxlen=keep)
        self._strips: dict[int, Strip] = {}
        self.back = 0  # lines scrolled back from the newest (0: following)

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def lines(self) -> list[Text]:
        return list(self._lines)

    def write(self, line: Text) -> None:
        if len(self._lines) == self._lines.maxlen:
            dropped = self._lines[0]
            self._strips.pop(id(dropped), None)
        self._lines.append(line)
        if self.back:
            self.back = min(self.back + 1, self._max_offset())  # the view stays put
        self.refresh()

    def clear(self) -> None:
        self._lines.clear()
        self._strips.clear()
        self.back = 0
        self.refresh()

    def _max_offset(self) -> int:
        return max(0, len(self._lines) - self.size.height)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = len(self._lines) - self.size.height - self.back + y
        if not 0 <= index < len(self._lines):
            return Strip.blank(width, self.rich_style)
        line = self._lines[index]
        strip = self._strips.get(id(line))
        if strip is None or strip.cell_length != width:
            text = line.copy()
            text.truncate(width, overflow="ellipsis", pad=True)
            strip = Strip(list(text.render(self.app.console)), width)
            self._strips[id(line)] = strip
        return strip.apply_style(self.rich_style)

    def on_resize(self, _: events.Resize) -> None:
        self._strips.clear()
        self.back = min(self.back, self._max_offset())

    def action_scroll(self, lines: int) -> None:
        self.back = max(0, min(self.back + lines, self._max_offset()))
        self.refresh()

    def action_page(self, pages: int) -> None:
        self.action_scroll(pages * max(1, self.size.height - 1))

    def action_follow(self) -> None:
        self.back = 0
        self.refresh()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.action_scroll(3)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.action_scroll(-3)
