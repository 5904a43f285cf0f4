"""A container's files (``/api/containers/{id}/files``): browse, upload, download, delete, mkdir.

It opens in the sandbox's home (the volume: what outlives every rebuild). Folders come first;
``..`` goes up. Transfers stream through the client a chunk at a time, with a progress bar, so a
large file never sits in the console's memory; one runs at a time, and leaving the view while
one runs asks first (leaving cancels it). Works on a stopped container too, as far as the backend
allows (it says what it cannot do).
"""

from __future__ import annotations

import posixpath
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, ProgressBar, Static

from tui import formatting as fmt
from tui.app_access import ReportsWorkerErrors, corral_app
from tui.screens.ask_path import AskPath
from tui.screens.confirm import Confirm

HOME = "/home/user"
PARENT = ".."
COLUMNS = (("name", "Name"), ("size", "Size"), ("mode", "Mode"), ("modified", "Modified"))
REPAINT_S = 0.1  # progress is redrawn at most this often (a chunk arrives every few ms)


class FilesScreen(ReportsWorkerErrors, ModalScreen[None]):
    BINDINGS = [
        ("escape", "close", "Close"),
        ("q", "close", "Close"),
        ("backspace,left,h", "parent", "Up"),
        ("u", "upload", "Upload"),
        ("s", "download", "Save"),
        ("d", "delete", "Delete"),
        ("m", "mkdir", "New folder"),
        ("r", "reload", "Reload"),
        ("tilde", "home", "Home"),
    ]

    def __init__(self, container: dict[str, Any], path: str = HOME) -> None:
        super().__init__()
        self.container = container
        self.ident = str(container.get("db_id") or container["id"])
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.transferring = False
        self._painted = 0.0

    def compose(self) -> ComposeResult:
        with Vertical(id="files-dialog"):
            yield Label(f"Files · {self.container.get('name')}", classes="title", markup=False)
            yield Static(self.path, id="files-path", markup=False)
            yield DataTable(id="files", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="files-transfer"):
                yield Static("", id="files-transfer-label", markup=False)
                yield ProgressBar(id="files-progress", show_eta=True)
            yield Static(
                "enter open/save · ← up · u upload · s save · d delete · m mkdir · r reload · "
                "~ home · esc",
                classes="hint",
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#files-transfer").display = False
        table.focus()
        self.load(self.path)

    # -- browsing -------------------------------------------------------------------------------

    @work(group="files-list", exclusive=True, exit_on_error=False)
    async def load(self, path: str, select: str | None = None) -> None:
        listing = await corral_app(self).api.list_files(self.ident, path)
        self.path = str(listing["path"])
        files = sorted(listing["files"], key=lambda f: (not f["is_dir"], str(f["name"]).lower()))
        self.entries = {str(f["path"]): dict(f) for f in files}
        count = listing["count"]
        noun = "entry" if count == 1 else "entries"
        self.query_one("#files-path", Static).update(f"{self.path}  ({count} {noun})")
        table = self.query_one(DataTable)
        table.clear()
        if self.path != "/":
            table.add_row("..", "", "", "", key=PARENT)
        for entry in self.entries.values():
            name = str(entry["name"]) + ("/" if entry["is_dir"] else "")
            table.add_row(
                name.replace("\n", "␤"),
                Text("" if entry["is_dir"] else fmt.byte_size(entry["size"]), justify="right"),
                str(entry["mode"]),
                fmt.local_time(entry["mod_time"]),
                key=str(entry["path"]),
            )
        if select is not None and select in self.entries:
            table.move_cursor(row=table.get_row_index(select))
        elif self.entries and self.path != "/":
            table.move_cursor(row=1)  # the first entry, not ``..``

    def selected(self) -> dict[str, Any] | None:
        """The entry under the cursor (None on ``..`` or in an empty folder)."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self.entries.get(str(row_key.value))

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value == PARENT:
            self.action_parent()
            return
        entry = self.entries.get(str(event.row_key.value))
        if entry is None:
            return
        if entry["is_dir"]:
            self.load(str(entry["path"]))
        else:
            self.action_download()

    def action_parent(self) -> None:
        if self.path != "/":
            self.load(posixpath.dirname(self.path.rstrip("/")) or "/", select=self.path)

    def action_home(self) -> None:
        self.load(HOME)

    def action_reload(self) -> None:
        entry = self.selected()
        self.load(self.path, select=str(entry["path"]) if entry else None)

    # -- changes --------------------------------------------------------------------------------

    def action_mkdir(self) -> None:
        def made(name: str | None) -> None:
            if name:
                self._mkdir(posixpath.join(self.path, name))

        self.app.push_screen(
            AskPath("New folder", f"A folder in {self.path} (missing parents are made too)."),
            made,
        )

    @work(group="files-change", exit_on_error=False)
    async def _mkdir(self, path: str) -> None:
        answer = await corral_app(self).api.mkdir(self.ident, path)
        self.notify(f"Made {answer['path']}")
        self.load(self.path, select=str(answer["path"]))

    def action_delete(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        what = "the folder and everything in it" if entry["is_dir"] else "the file"

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(str(entry["path"]))

        self.app.push_screen(
            Confirm(f"Delete {entry['name']}?", f"{entry['path']}: {what}, for good.", "Delete"),
            done,
        )

    @work(group="files-change", exit_on_error=False)
    async def _delete(self, path: str) -> None:
        await corral_app(self).api.delete_file(self.ident, path)
        self.notify(f"Deleted {path}")
        self.load(self.path)

    # -- transfers ------------------------------------------------------------------------------

    def action_upload(self) -> None:
        if self._busy():
            return

        def chosen(local: str | None) -> None:
            if local:
                self._upload(Path(local).expanduser())

        self.app.push_screen(
            AskPath(
                f"Upload into {self.path}",
                "A local file (tab completes). A file of the same name is replaced.",
                str(Path.cwd()) + "/",
                local=True,
                check=_readable_file,
            ),
            chosen,
        )

    @work(group="files-transfer", exit_on_error=False)
    async def _upload(self, local: Path) -> None:
        self._begin(f"uploading {local.name}")
        try:
            answer = await corral_app(self).api.upload_file(
                self.ident, self.path, local, progress=self._progress
            )
        finally:
            self._end()
        self.notify(f"Uploaded {answer['path']} ({fmt.byte_size(answer['size'])})")
        self.load(self.path, select=str(answer["path"]))

    def action_download(self) -> None:
        entry = self.selected()
        if entry is None or self._busy():
            return
        if entry["is_dir"]:
            self.notify(
                f"{entry['name']} is a folder: open it and save its files, or copy it whole "
                f"with 'corral cp {self.container.get('name')}:{entry['path']} .'",
                severity="warning",
            )
            return

        def chosen(local: str | None) -> None:
            if local:
                self._download(entry, _save_target(local, str(entry["name"])))

        self.app.push_screen(
            AskPath(
                f"Save {entry['name']}",
                "Where on this machine (a folder keeps the name). An existing file is replaced.",
                str(Path.cwd() / _local_name(str(entry["name"]))),
                local=True,
                check=_writable_target,
            ),
            chosen,
        )

    @work(group="files-transfer", exit_on_error=False)
    async def _download(self, entry: dict[str, Any], target: Path) -> None:
        self._begin(f"saving {entry['name']}")
        try:
            written = await corral_app(self).api.download_file(
                self.ident, str(entry["path"]), target, progress=self._progress
            )
        finally:
            self._end()
        self.notify(f"Saved {target} ({fmt.byte_size(written)})")

    def _busy(self) -> bool:
        if self.transferring:
            self.notify("A transfer is running: wait for it to end.", severity="warning")
        return self.transferring

    def _begin(self, label: str) -> None:
        self.transferring = True
        self.query_one("#files-transfer-label", Static).update(label)
        bar = self.query_one("#files-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.query_one("#files-transfer").display = True

    def _progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._painted < REPAINT_S and done != total:
            return
        self._painted = now
        self.query_one("#files-progress", ProgressBar).update(total=total, progress=done)

    def _end(self) -> None:
        self.transferring = False
        self.query_one("#files-transfer").display = False

    def action_close(self) -> None:
        if not self.transferring:
            self.dismiss(None)
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.dismiss(None)

        self.app.push_screen(
            Confirm("Leave while a transfer runs?", "Leaving cancels the transfer.", "Leave"),
            done,
        )


def _local_name(name: str) -> str:
    """A sandbox file's name made safe as a local one (a newline or a slash cannot be kept)."""
    return name.replace("/", "_").replace("\n", "_") or "download"


def _readable_file(answer: str) -> str | None:
    path = Path(answer).expanduser()
    if path.is_dir():
        return "that is a folder: pick a file (folders go whole with 'corral cp')"
    if not path.is_file():
        return f"no such file: {path}"
    return None


def _save_target(answer: str, name: str) -> Path:
    path = Path(answer).expanduser()
    return path / _local_name(name) if path.is_dir() else path


def _writable_target(answer: str) -> str | None:
    path = Path(answer).expanduser()
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        return f"no such folder: {folder}"
    return None
