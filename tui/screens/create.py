"""The create form: name, image and role from the backend's catalogs, resources prefilled with
the tier's defaults and checked as they are typed; then progress until the container runs.

Only what can be created is offered: the images this host has built and the roles the chosen
image supports, never a blank choice. Opened from the volumes view, it attaches a kept volume."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from corral.client import ApiError
from corral.shapes import RUNNING_STATUSES, RoleState, Status
from tui import formatting as fmt
from tui.app_access import corral_app
from tui.messages import BackendEvent
from tui.model import Fleet
from tui.screens.forms import FormScreen
from tui.widgets.fields import name_field, resource_field

RESOURCES = ("memory_mb", "cpu_shares", "disk_mb")
ROLE_TEXT = 58  # characters of a role's name and description in the list


def role_label(role: dict[str, Any]) -> str:
    """``Name — description``, cut at a word (never mid-word) to fit the list."""
    text = f"{role['name']} — {role.get('description', '')}".rstrip(" —")
    if len(text) <= ROLE_TEXT:
        return text
    cut = text[: ROLE_TEXT - 1].rsplit(" ", 1)[0].rstrip(",;:—- ")
    return cut + "…"


class CreateScreen(FormScreen):
    def __init__(
        self, fleet: Fleet, me: dict[str, Any], volume: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.fleet = fleet
        self.limits: dict[str, Any] = me.get("limits") or {}
        self.volume = volume
        self.creating: str | None = None  # the new container's database ID, once accepted
        self.finished = False  # dismissed once: later events must not dismiss again

    def _images(self) -> list[dict[str, Any]]:
        return [i for i in corral_app(self).images if i.get("available", True)]

    def compose(self) -> ComposeResult:
        images = self._images()
        with Vertical(id="dialog"):
            yield Label("New container", classes="title")
            yield Static(id="form-error", classes="form-error")
            yield name_field(optional=True)
            with Horizontal(classes="field-row"):
                yield Label("Image", classes="field-label")
                yield Select(
                    [(i["name"], i["name"]) for i in images],
                    allow_blank=not images,
                    id="image",
                    compact=True,
                    prompt="none built: run just images",
                )
            roles = self._roles_for(images[0]["name"] if images else None)
            with Horizontal(classes="field-row"):
                yield Label("Role", classes="field-label")
                yield Select(
                    [(role_label(r), str(r["id"])) for r in roles],
                    allow_blank=not roles,
                    id="role",
                    compact=True,
                    prompt="—",
                )
            for resource in RESOURCES:
                value = None
                if resource == "disk_mb" and self.volume is not None:
                    value = max(int(self.volume.get("size_mb") or 0), self._default("disk_mb"))
                yield resource_field(resource, self.limits, value)
            if self.volume is not None:
                yield Static(
                    f"On kept volume {self.volume['name']} (from "
                    f"{self.volume.get('container_name') or '?'}, "
                    f"{fmt.megabytes(self.volume.get('size_mb'))})",
                    id="volume-note",
                    markup=False,
                )
            yield Static(id="form-status")
            yield ProgressBar(total=100, show_eta=False, id="form-progress")
            with Horizontal(classes="buttons"):
                yield Button(
                    "Create", variant="primary", id="submit", classes="submit", compact=True
                )
                yield Button("Cancel", id="cancel", compact=True)

    def _default(self, resource: str) -> int:
        return int((self.limits.get(resource) or {}).get("default", 0))

    def on_mount(self) -> None:
        self.query_one("#form-progress").display = False
        if not self._images():
            self.show_error("No image is built on this host: an operator runs 'just images'.")
            self.query_one("#submit", Button).disabled = True
        self._fill_roles()
        self.query_one("#name", Input).focus()

    @on(Select.Changed, "#image")
    def _image_changed(self, _: Select.Changed) -> None:
        self._fill_roles()
        self.clear_error()

    def _roles_for(self, image: str | None) -> list[dict[str, Any]]:
        """The roles ``image`` supports, from the backend's catalog."""
        return [
            r
            for r in corral_app(self).roles
            if image and (not r.get("images") or image in r.get("images", []))
        ]

    def _fill_roles(self) -> None:
        image = self.query_one("#image", Select)
        roles = self._roles_for(None if image.is_blank() else str(image.value))
        select = self.query_one("#role", Select)
        if not roles:
            return
        select.set_options([(role_label(r), str(r["id"])) for r in roles])
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
            self.show_error("No image is built on this host: an operator runs 'just images'.")
            return
        role = self.query_one("#role", Select)
        name = self.query_one("#name", Input).value.strip()
        body: dict[str, Any] = {r: self.int_value(r) for r in RESOURCES}
        if self.volume is not None:
            body["volume"] = str(self.volume["name"])
        self._create(
            str(image.value), None if role.is_blank() else str(role.value), name or None, body
        )

    @work(group="form", exit_on_error=False)
    async def _create(
        self, image: str, role: str | None, name: str | None, fields: dict[str, Any]
    ) -> None:
        self.busy(True, "Creating…", 0)
        try:
            made = await corral_app(self).api.create_container(
                image, name=name, role=role, **fields
            )
        except ApiError as exc:
            self.show_api_error(exc)
            return
        self.creating = str(made["db_id"])
        self._follow()

    @on(BackendEvent)
    def _progress(self, _: BackendEvent) -> None:
        self._follow()

    def _follow(self) -> None:
        if self.creating is None or self.finished:
            return
        progress = self.fleet.progress.get(self.creating)
        container = self.fleet.items.get(self.creating)
        if progress is not None:
            percent = progress.get("progress")
            self.busy(
                True,
                f"{progress.get('message', '')} ({percent}%)",
                int(percent) if isinstance(percent, int) else None,
            )
        if container is None:
            return
        status = container.get("status")
        if status in RUNNING_STATUSES and progress is None:
            self.finished = True
            role = container.get("role_state")
            note = f" (role {container.get('role')} failed)" if role == RoleState.FAILED else ""
            self.app.notify(f"{container['name']} is running{note}")
            self.dismiss(self.creating)
        elif status == Status.ERROR:
            self.show_error(f"Creation failed: {container.get('error', 'unknown error')}")
            self.creating = None
