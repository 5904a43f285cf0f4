"""Delete confirmation: says what goes, and offers to keep the volume (the user's data)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, Static


class ConfirmDelete(ModalScreen[tuple[bool, bool] | None]):
    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, container: dict[str, Any]) -> None:
        super().__init__()
        self.container = container

    def compose(self) -> ComposeResult:
        agent = self.container.get("session_type") == "agent"
        name = self.container.get("name")
        with Vertical(id="dialog"):
            if agent:
                yield Label(f"Forget agent {name}?", classes="title")
                yield Static(
                    "Its token is revoked: it cannot connect again until it gets a "
                    "new one. The machine itself is not touched."
                )
            else:
                yield Label(f"Delete {name}?", classes="title")
                yield Static(
                    "The container is removed. Without 'keep the volume', its data in "
                    "/home/user is deleted too."
                )
                yield Checkbox("Keep the volume (the data in /home/user)", id="keep")
            with Horizontal(classes="buttons"):
                yield Button("Delete", variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        keep = self.query("#keep")
        self.dismiss((True, bool(keep.first(Checkbox).value) if keep else False))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
