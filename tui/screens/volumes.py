"""Kept volumes: the data of containers deleted with "keep the volume". Each can be attached to a
new container (``n``) or deleted for good (``d``, after a confirmation)."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from tui import formatting as fmt
from tui.app_access import ReportsWorkerErrors, corral_app

COLUMNS = (
    ("name", "Volume"),
    ("size", "Size"),
    ("used", "Used"),
    ("from", "From"),
    ("kept", "Kept"),
)


class VolumesScreen(ReportsWorkerErrors, ModalScreen[None]):
    BINDINGS = [
        ("escape", "close", "Close"),
        ("q", "close", "Close"),
        ("d", "delete", "Delete"),
        ("n", "attach", "New container on it"),
        ("r", "reload", "Reload"),
    ]

    def __init__(self, limits: dict[str, Any]) -> None:
        super().__init__()
        self.limits = limits
        self.volumes: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="volumes-dialog"):
            yield Label("Kept volumes", classes="title")
            yield DataTable(id="volumes", cursor_type="row", zebra_stripes=True)
            yield Static(
                "n new container on the volume · d delete · r reload · esc closes", classes="hint"
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self.action_reload()

    @work(group="volumes", exclusive=True, exit_on_error=False)
    async def action_reload(self) -> None:
        listing = await corral_app(self).api.volumes()
        self.volumes = {str(v["name"]): dict(v) for v in listing["volumes"]}
        table = self.query_one(DataTable)
        table.clear()
        for name, volume in self.volumes.items():
            used = volume.get("used_mb")
            table.add_row(
                name,
                fmt.megabytes(volume.get("size_mb")),
                fmt.megabytes(round(used)) if isinstance(used, int | float) else "—",
                str(volume.get("container_name") or "—"),
                fmt.local_time(volume.get("kept_at")),
                key=name,
            )
        if not self.volumes:
            self.notify("No kept volumes: a delete that keeps the volume puts one here.")

    def _selected(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self.volumes.get(str(row_key.value))

    def action_delete(self) -> None:
        from tui.screens.confirm import Confirm

        volume = self._selected()
        if volume is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(str(volume["name"]))

        self.app.push_screen(
            Confirm(
                f"Delete volume {volume['name']}?",
                f"The data of {volume.get('container_name') or 'its container'} is deleted for "
                "good.",
                "Delete",
            ),
            done,
        )

    @work(group="volumes", exit_on_error=False)
    async def _delete(self, name: str) -> None:
        await corral_app(self).api.delete_volume(name)
        self.notify(f"Volume {name} deleted")
        self.action_reload()

    def action_attach(self) -> None:
        from tui.screens.create import CreateScreen

        volume = self._selected()
        if volume is None:
            return
        main = corral_app(self).main_screen
        self.dismiss(None)
        self.app.push_screen(CreateScreen(main.fleet, main.me, volume=volume))

    @on(DataTable.RowSelected)
    def _chosen(self) -> None:
        self.action_attach()

    def action_close(self) -> None:
        self.dismiss(None)
