"""The create form: name, image and role from the backend's catalogs, resources prefilled with
the tier's defaults and checked as they are typed; then progress until the container runs."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from corral.client import ApiError
from tui.messages import BackendEvent
from tui.model import Fleet
from tui.screens.forms import FormScreen
from tui.widgets.fields import name_field, resource_field

RESOURCES = ("memory_mb", "cpu_shares", "disk_mb")


class CreateScreen(FormScreen):
    def __init__(self, fleet: Fleet, me: dict[str, Any]) -> None:
        super().__init__()
        self.fleet = fleet
        self.limits: dict[str, Any] = me.get("limits") or {}
        self.creating: str | None = None  # the new container's database ID, once accepted

    def compose(self) -> ComposeResult:
        images = [i for i in getattr(self.app, "images", []) if i.get("available", True)]
        with Vertical(id="dialog"):
            yield Label("New container", classes="title")
            yield name_field(optional=True)
            with Horizontal(classes="field-row"):
                yield Label("Image", classes="field-label")
                yield Select(
                    [(i["name"], i["name"]) for i in images],
                    allow_blank=True,
                    id="image",
                    compact=True,
                    prompt="(no image built)",
                )
            with Horizontal(classes="field-row"):
                yield Label("Role", classes="field-label")
                yield Select([], allow_blank=True, id="role", prompt="(no role)", compact=True)
            for resource in RESOURCES:
                yield resource_field(resource, self.limits, None)
            yield Static(id="form-error", classes="form-error")
            yield Static(id="form-status")
            yield ProgressBar(total=100, show_eta=False, id="form-progress")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="submit", classes="submit")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#form-progress").display = False
        images = self.query_one("#image", Select)
        first = next(iter(getattr(self.app, "images", [])), None)
        if first is not None:
            images.value = first["name"]
        self._fill_roles()
        self.query_one("#name", Input).focus()

    @on(Select.Changed, "#image")
    def _image_changed(self, _: Select.Changed) -> None:
        self._fill_roles()

    def _fill_roles(self) -> None:
        """The roles the chosen image supports, from the backend's catalog."""
        image = self.query_one("#image", Select)
        chosen = None if image.is_blank() else str(image.value)
        roles = [
            r
            for r in getattr(self.app, "roles", [])
            if chosen and (not r.get("images") or chosen in r.get("images", []))
        ]
        select = self.query_one("#role", Select)
        select.set_options(
            [(f"{r['name']} — {r.get('description', '')}"[:60], str(r["id"])) for r in roles]
        )
        if roles:
            select.value = str(roles[0]["id"])

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def _submit(self) -> None:
        if not self.fields_valid():
            return
        image = self.query_one("#image", Select)
        if image.is_blank():
            self.show_error("Choose an image (none is built on this host: run just images).")
            return
        role = self.query_one("#role", Select)
        name = self.query_one("#name", Input).value.strip()
        body = {r: self.int_value(r) for r in RESOURCES}
        self._create(
            str(image.value), None if role.is_blank() else str(role.value), name or None, body
        )

    @work(group="form")
    async def _create(
        self, image: str, role: str | None, name: str | None, resources: dict[str, int]
    ) -> None:
        self.busy(True, "Creating…", 0)
        try:
            made = await self.app.api.create_container(  # type: ignore[attr-defined]
                image, name=name, role=role, **resources
            )
        except ApiError as exc:
            self.show_api_error(exc)
            return
        self.creating = str(made["db_id"])
        self._follow()

    @on(BackendEvent)
    def _progress(self, event: BackendEvent) -> None:
        self._follow()

    def _follow(self) -> None:
        if self.creating is None:
            return
        progress = self.fleet.progress.get(self.creating)
        container = self.fleet.items.get(self.creating)
        if progress is not None:
            self.busy(True, str(progress.get("message", "")), int(progress.get("progress", 0)))
        if container is None:
            return
        status = container.get("status")
        if status in ("running", "configuring") and progress is None:
            self.app.notify(f"{container['name']} is {status}")
            self.dismiss(self.creating)
        elif status == "error":
            self.show_error(f"Creation failed: {container.get('error', 'unknown error')}")
            self.creating = None
