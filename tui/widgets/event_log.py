"""The live event log: timestamped, coloured by type, scrollable, filterable.

The log keeps the last lines it was given; a filter shows the ones that match (the log is a
view over that memory, so filtering never loses a line)."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from corral.shapes import EventType
from tui import formatting as fmt
from tui.widgets.tail_log import TailLog

KEEP = 2000  # lines remembered, for the filter
SHOWN = 500  # lines in the scrollable view: once full, a new line no longer re-lays out the screen


def event_line(message: dict[str, Any], change: str | None = None) -> Text:
    moment = fmt.parse_time(message.get("timestamp"))
    stamp = moment.astimezone().strftime("%H:%M:%S") if moment else "--:--:--"
    kind = str(message.get("type", ""))
    payload = message.get("container") or {}
    if kind == EventType.LIST:
        detail = f"{payload.get('count', 0)} container(s)"
        name = ""
    else:
        name = str(payload.get("name", ""))
        if kind == EventType.CONTAINER_PROGRESS:
            detail = f"{payload.get('progress', 0)}% {payload.get('message', '')}"
        else:
            said = payload.get("message")
            detail = ", ".join(p for p in (said, change) if p) or str(payload.get("status") or "")
        if payload.get("error") and kind != EventType.CONTAINER_PROGRESS:
            detail += f" ({payload['error']})"
    return Text.assemble(
        (stamp, "dim"),
        " ",
        (f"{kind:<20}", fmt.EVENT_STYLE.get(kind, "")),
        " ",
        (name, "bold"),
        " ",
        detail,
    )


class EventLogPanel(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lines: deque[Text] = deque(maxlen=KEEP)
        self._filter = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter the log (type, name, text)", id="log-filter")
        yield TailLog(SHOWN, id="log")

    def add(self, message: dict[str, Any], change: str | None = None) -> None:
        """Log one event; ``change`` says what it changed, in words."""
        line = event_line(message, change)
        self._lines.append(line)
        if self._filter in line.plain.lower():
            self.query_one(TailLog).write(line)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "log-filter":
            return
        event.stop()
        self._filter = event.value.strip().lower()
        log = self.query_one(TailLog)
        log.clear()
        for line in [line for line in self._lines if self._filter in line.plain.lower()][-SHOWN:]:
            log.write(line)

    def on_key(self, event: events.Key) -> None:
        """esc leaves the log's filter (it keeps what was typed) and goes back to the table."""
        if event.key == "escape" and self.query_one("#log-filter", Input).has_focus:
            event.stop()
            self.screen.query_one("#containers").focus()

    @property
    def line_count(self) -> int:
        return len(self._lines)
