"""Delete confirmation: says what goes (every marked row, by name), and offers to keep the
volumes (the users' data)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, Switch

from corral.shapes import is_agent


class ConfirmDelete(ModalScreen[tuple[bool, bool] | None]):
    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, targets: list[dict[str, Any]]) -> None:
        super().__init__()
        self.targets = targets

    def compose(self) -> ComposeResult:
        agents = [c for c in self.targets if is_agent(c)]
        names = ", ".join(str(c.get("name")) for c in self.targets)
        with Vertical(id="dialog"):
            if len(self.targets) == 1 and agents:
                yield Label(f"Forget agent {names}?", classes="title", markup=False)
                yield Static(
                    "Its token is revoked: it cannot connect again until it gets a "
                    "new one. The machine itself is not touched."
                )
            else:
                what = names if len(self.targets) == 1 else f"{len(self.targets)}: {names}"
                yield Label(f"Delete {what}?", classes="title", markup=False)
                many = len(self.targets) > 1
                yield Static(
                    (
                        "The containers are removed. Without keeping the volumes, their data in "
                        "/home/user is deleted too."
                    )
                    if many
                    else "The container is removed. Without keeping the volume, its data in "
                    "/home/user is deleted too."
                )
                # A switch, not a checkbox: its two states look different in every theme.
                with Horizontal(classes="field-row switch-row"):
                    yield Switch(value=False, id="keep")
                    yield Label(
                        "Keep the volumes (the data in /home/user)"
                        if many
                        else "Keep the volume (the data in /home/user)",
                        id="keep-label",
                    )
            with Horizontal(classes="buttons"):
                yield Button("Delete", variant="error", id="confirm", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        keep = self.query("#keep")
        self.dismiss((True, bool(keep.first(Switch).value) if keep else False))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
