"""Help: every key (with the user's overrides, as they are now) and what it does."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui import actions
from tui.app_access import corral_app


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        ("escape", "close", "Close"),
        ("question_mark", "close", "Close"),
        ("q", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        app = corral_app(self)
        for action in actions.ACTIONS:
            table.add_row(actions.key_display(app, action), action.help)
        for keys, what in actions.NAVIGATION:
            table.add_row(keys, what)
        path = app.config.path
        with VerticalScroll(id="dialog"):
            yield Label("Keys", classes="title")
            yield Static(table)
            yield Static(
                Text(
                    "Click a column header to sort by it (again to reverse). Actions that do "
                    "not apply to the selected row are greyed out. Keys can be changed in "
                    f"{path}, section [keys], by the IDs: {actions.key_ids()}."
                ),
                classes="hint",
            )
            yield Static("esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
