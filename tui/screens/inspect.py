"""The selected container as the API has it (``GET /api/containers/{id}``), as JSON: for people
who want every field, and to copy it (``c``)."""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from corral.shapes import is_agent
from tui.app_access import ReportsWorkerErrors, corral_app


class InspectScreen(ReportsWorkerErrors, ModalScreen[None]):
    BINDINGS = [
        ("escape", "close", "Close"),
        ("y", "close", "Close"),
        ("q", "close", "Close"),
        ("c", "copy", "Copy"),
    ]

    def __init__(self, container: dict[str, Any]) -> None:
        super().__init__()
        self.container = container
        self.text = json.dumps(container, indent=2, sort_keys=True)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="wide"):
            yield Label(f"Inspect · {self.container.get('name')}", classes="title", markup=False)
            yield Static(self._syntax(), id="inspect-body")
            yield Static("c copies · esc closes", classes="hint")

    def on_mount(self) -> None:
        self.refresh_from_api()

    def _syntax(self) -> Syntax:
        return Syntax(self.text, "json", theme="ansi_dark", word_wrap=True)

    @work(group="inspect", exclusive=True, exit_on_error=False)
    async def refresh_from_api(self) -> None:
        """The stored copy shows at once; the backend's fresh answer replaces it."""
        if is_agent(self.container):
            return
        fresh = await corral_app(self).api.get_container(str(self.container.get("db_id")))
        self.text = json.dumps(dict(fresh), indent=2, sort_keys=True)
        self.query_one("#inspect-body", Static).update(self._syntax())

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify("Copied the JSON")

    def action_close(self) -> None:
        self.dismiss(None)
