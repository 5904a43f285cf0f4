"""A container's output (``GET /api/containers/{id}/logs``), followed live: search, wrap, copy.

What the sandbox's first process prints, and anything a user sends to it
(``cmd >/proc/1/fd/1 2>&1 &``). The view keeps the last lines it was given; a search shows the
lines that match, highlighted, and never loses the others.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, RichLog, Static

from corral.client import ApiError
from tui.app_access import ReportsWorkerErrors, corral_app

KEEP = 10_000
TAIL = 500


class LogsScreen(ReportsWorkerErrors, ModalScreen[None]):
    BINDINGS = [
        ("escape", "close", "Close"),
        ("q", "close", "Close"),
        ("slash", "search", "Search"),
        ("w", "wrap", "Wrap"),
        ("f", "follow", "Follow"),
        ("c", "copy", "Copy"),
    ]

    def __init__(self, container: dict[str, Any]) -> None:
        super().__init__()
        self.container = container
        self.lines: deque[str] = deque(maxlen=KEEP)
        self.search = ""
        self.wrap = False
        self.following = True

    def compose(self) -> ComposeResult:
        with Vertical(id="logs-dialog"):
            yield Label(f"Logs · {self.container.get('name')}", classes="title", markup=False)
            yield Input(placeholder="search (esc leaves)", id="logs-search")
            yield RichLog(max_lines=KEEP, wrap=False, id="logs", auto_scroll=True)
            yield Static(self._hint(), id="logs-hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#logs-search").display = False
        self.query_one(RichLog).focus()
        self.stream()

    def _hint(self) -> str:
        state = "following" if self.following else "paused"
        wrap = "on" if self.wrap else "off"
        return f"{state} (f) · wrap {wrap} (w) · / search · c copies · esc closes"

    @work(group="logs", exclusive=True, exit_on_error=False)
    async def stream(self) -> None:
        api = corral_app(self).api
        ident = str(self.container.get("db_id") or self.container["id"])
        try:
            async for line in api.logs(ident, tail=TAIL, follow=True):
                self.add(line)
        except ApiError as exc:
            self.add(f"[corral: {exc.error}: {exc.message}]")
            return
        self.add("[corral: the container's output ended (it stopped)]")

    def add(self, line: str) -> None:
        self.lines.append(line)
        if self.search.lower() in line.lower():
            self.query_one(RichLog).write(self._shown(line), scroll_end=self.following)

    def _shown(self, line: str) -> Text:
        text = Text(line)
        if self.search:
            text.highlight_words([self.search], "reverse", case_sensitive=False)
        return text

    def _redraw(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        log.wrap = self.wrap
        for line in self.lines:
            if self.search.lower() in line.lower():
                log.write(self._shown(line), scroll_end=self.following)
        self.query_one("#logs-hint", Static).update(self._hint())

    def action_search(self) -> None:
        box = self.query_one("#logs-search", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#logs-search")
    def _searched(self, event: Input.Changed) -> None:
        self.search = event.value
        self._redraw()

    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#logs-search", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.display = bool(box.value)
            self.query_one(RichLog).focus()

    def action_wrap(self) -> None:
        self.wrap = not self.wrap
        self._redraw()

    def action_follow(self) -> None:
        self.following = not self.following
        log = self.query_one(RichLog)
        log.auto_scroll = self.following
        if self.following:
            log.scroll_end(animate=False)
        self.query_one("#logs-hint", Static).update(self._hint())

    def action_copy(self) -> None:
        shown = [line for line in self.lines if self.search.lower() in line.lower()]
        self.app.copy_to_clipboard("\n".join(shown))
        self.notify(f"Copied {len(shown)} line(s)")

    def action_close(self) -> None:
        self.dismiss(None)
