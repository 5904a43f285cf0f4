"""The settings form: rename and resize, each resource showing its range on the user's tier (as
the backend reports it), checked as it is typed. A resource change on a running container
rebuilds it, so the form says so, and shows progress until the container is back."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Static

from corral.client import ApiError
from corral.shapes import RUNNING_STATUSES
from tui.app_access import corral_app
from tui.model import Fleet
from tui.screens.forms import FormScreen
from tui.widgets.fields import name_field, resource_field

RESOURCES = ("memory_mb", "cpu_shares", "disk_mb")
RESTART_WARNING = (
    "Changing memory, CPU or disk restarts this running container (it is rebuilt with the new "
    "limits); everything in /home/user is kept."
)


class SettingsScreen(FormScreen):
    def __init__(self, fleet: Fleet, container: dict[str, Any], limits: dict[str, Any]) -> None:
        super().__init__()
        self.fleet = fleet
        self.container = container
        self.limits = limits

    def compose(self) -> ComposeResult:
        resources = self.container.get("resources") or {}
        with Vertical(id="dialog"):
            yield Label(f"Settings · {self.container.get('name')}", classes="title", markup=False)
            yield Static(id="form-error", classes="form-error")
            yield name_field(str(self.container.get("name", "")))
            for resource in RESOURCES:
                yield resource_field(resource, self.limits, resources.get(resource))
            running = self.container.get("status") in RUNNING_STATUSES
            yield Static(
                RESTART_WARNING
                if running
                else "The container is stopped: new limits apply when it next starts.",
                id="restart-warning",
            )
            yield Static(id="form-status")
            yield ProgressBar(total=100, show_eta=False, id="form-progress")
            with Horizontal(classes="buttons"):
                yield Button(
                    "Apply", variant="primary", id="submit", classes="submit", compact=True
                )
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#form-progress").display = False

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def _submit(self) -> None:
        if not self.fields_valid():
            return
        current = self.container.get("resources") or {}
        changes: dict[str, Any] = {}
        name = self.query_one("#name", Input).value.strip()
        if name != self.container.get("name"):
            changes["name"] = name
        for resource in RESOURCES:
            value = self.int_value(resource)
            if value != current.get(resource):
                changes[resource] = value
        if not changes:
            self.dismiss(None)
            return
        self._apply(changes)

    @work(group="form", exit_on_error=False)
    async def _apply(self, changes: dict[str, Any]) -> None:
        resizing = bool(set(changes) & set(RESOURCES))
        running = self.container.get("status") in RUNNING_STATUSES
        text = "Rebuilding with the new limits…" if resizing and running else "Saving…"
        self.busy(True, text)
        main = corral_app(self).main_screen
        key = self.fleet.key_of(self.container)
        if resizing and running:
            main.show_activity(key, "rebuilding…")
        try:
            result = await corral_app(self).api.update_settings(
                str(self.container.get("db_id") or self.container["id"]), **changes
            )
        except ApiError as exc:
            self.show_api_error(exc)
            return
        finally:
            main.show_activity(key, None)
        restarted = " and restarted" if result.get("restarted") else ""
        self.app.notify(f"{result['container']['name']}: settings updated{restarted}")
        self.dismiss(result)
