"""Help: every key binding (with the user's overrides) and what it does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        ("escape", "close", "Close"),
        ("question_mark", "close", "Close"),
        ("q", "close", "Close"),
    ]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, description in self.bindings:
            table.add_row(key, description)
        with Vertical(id="dialog"):
            yield Label("Keys", classes="title")
            yield Static(table)
            yield Static(
                "Click a column header to sort by it. Actions that do not apply to the "
                "selected row are greyed out in the footer. Keys can be changed in "
                "~/.config/corral/console.toml ([keys]).",
                classes="hint",
            )
            yield Static("esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
