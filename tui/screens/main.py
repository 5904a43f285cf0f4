"""The dashboard: header, containers table, details pane, live event log, footer.

Everything on it changes from the event stream alone; the user's actions go out through the
client in workers, and their results come back as events like anyone else's changes."""

from __future__ import annotations

from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from tui.messages import BackendEvent, ConnectionChanged, ProfileLoaded
from tui.model import Fleet
from tui.widgets.details import DetailsPane
from tui.widgets.event_log import EventLogPanel
from tui.widgets.header import StatusHeader
from tui.widgets.table import ContainerTable

NARROW = 130
STARTABLE = {"stopped", "missing", "error"}
STOPPABLE = {"running", "configuring"}


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("n", "create", "New", id="create"),
        Binding("s", "start", "Start", id="start"),
        Binding("x", "stop", "Stop", id="stop"),
        Binding("r", "restart", "Restart", id="restart"),
        Binding("d", "delete", "Delete", id="delete"),
        Binding("e", "settings", "Settings", id="settings"),
        Binding("enter", "shell", "Shell", id="shell", priority=True),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("o", "sort", "Sort", id="sort"),
        Binding("c", "copy_id", "Copy ID", id="copy_id"),
        Binding("l", "toggle_log", "Log", id="toggle_log"),
        Binding("i", "toggle_details", "Details", id="toggle_details"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    ]

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet
        self.limits: dict[str, Any] = {}
        self.me: dict[str, Any] = {}
        self._bindings_for: tuple[Any, Any] | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Input(
            placeholder="filter containers (name, image, status, ID); esc clears", id="table-filter"
        )
        with Horizontal(id="body"):
            yield ContainerTable(id="containers")
            yield DetailsPane(id="details")
        yield EventLogPanel(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#table-filter").display = False
        self.set_interval(30, self._tick)
        self.table.focus()
        self._show_selected()

    def on_resize(self, event: events.Resize) -> None:
        """Below 130 columns the details pane makes way for the table (i brings it back)."""
        self.query_one(DetailsPane).display = event.size.width >= NARROW

    @property
    def table(self) -> ContainerTable:
        return self.query_one(ContainerTable)

    @property
    def header(self) -> StatusHeader:
        return self.query_one(StatusHeader)

    # -- what arrives ---------------------------------------------------------------------------

    @on(BackendEvent)
    def apply_event(self, event: BackendEvent) -> None:
        message = event.message
        changes = self.fleet.apply(message)
        for change in changes:
            if change.kind == "remove":
                self.table.drop(change.key)
            else:
                container = self.fleet.items[change.key]
                self.table.upsert(change.key, container, self.fleet.progress.get(change.key))
        self.query_one(EventLogPanel).add(message)
        self._update_usage()
        selected = self.table.selected_key()
        if selected is None or any(c.key == selected for c in changes):
            self._show_selected()
        self._refresh_bindings_if_needed()
        if self.app.screen is not self:
            self.app.screen.post_message(BackendEvent(message))

    @on(ConnectionChanged)
    def connection_changed(self, event: ConnectionChanged) -> None:
        self.header.connection = event.state

    @on(ProfileLoaded)
    def profile_loaded(self, event: ProfileLoaded) -> None:
        self.me = event.me
        self.limits = event.me.get("limits") or {}
        user = event.me.get("user") or {}
        admin = " (admin)" if user.get("admin") else ""
        self.header.user = f"{user.get('username', '?')}{admin}"
        self.header.tier = str(event.me.get("tier", ""))
        health = event.health
        if health.get("docker") != "ok":
            self.header.engine = "engine down: run just engine"
        self._update_usage()
        self._show_selected()

    def _update_usage(self) -> None:
        limit = self.limits.get("containers") or self.fleet.limit
        if limit:
            self.header.usage = f"{self.fleet.container_count()}/{limit}"

    @on(DataTable.RowHighlighted)
    def row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_selected()
        self._refresh_bindings_if_needed()

    def _refresh_bindings_if_needed(self) -> None:
        """Refresh the footer only when what applies to the selected row changed: rebuilding
        the footer on every event would cost more than everything else an event does."""
        container = self.selected()
        signature = (
            None if container is None else (container.get("status"), container.get("session_type"))
        )
        if signature != self._bindings_for:
            self._bindings_for = signature
            self.refresh_bindings()

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.table.sort_on(str(event.column_key.value))

    def _show_selected(self) -> None:
        key = self.table.selected_key()
        container = self.fleet.items.get(key) if key else None
        recent = list(self.fleet.recent.get(key, [])) if key else []
        progress = self.fleet.progress.get(key) if key else None
        self.query_one(DetailsPane).show(container, self.limits, recent, progress)

    def _tick(self) -> None:
        self.table.tick(self.fleet.items)

    # -- which actions apply --------------------------------------------------------------------

    def selected(self) -> dict[str, Any] | None:
        key = self.table.selected_key()
        return self.fleet.items.get(key) if key else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions that do not apply to the selected row are disabled (greyed in the footer)."""
        needs_row = {"start", "stop", "restart", "delete", "settings", "shell", "copy_id"}
        if action not in needs_row:
            return True
        container = self.selected()
        if container is None:
            return None
        status = container.get("status")
        agent = container.get("session_type") == "agent"
        applies = {
            "start": not agent and status in STARTABLE,
            "stop": status in STOPPABLE or (agent and status == "running"),
            "restart": not agent and status == "running",
            "delete": True,
            "settings": not agent and status not in ("creating",),
            "shell": status in STOPPABLE,
            "copy_id": True,
        }
        return True if applies[action] else None

    # -- actions --------------------------------------------------------------------------------

    def action_create(self) -> None:
        from tui.screens.create import CreateScreen

        if not self.me:
            self.notify("Still loading the backend's catalog; try again in a moment.", timeout=3)
            return
        self.app.push_screen(CreateScreen(self.fleet, self.me))

    def action_settings(self) -> None:
        from tui.screens.settings import SettingsScreen

        container = self.selected()
        if container is not None:
            self.app.push_screen(SettingsScreen(self.fleet, container, self.limits))

    def action_delete(self) -> None:
        from tui.screens.confirm_delete import ConfirmDelete

        container = self.selected()
        if container is None:
            return

        def done(answer: tuple[bool, bool] | None) -> None:
            if answer and answer[0]:
                self._delete(container, keep_volume=answer[1])

        self.app.push_screen(ConfirmDelete(container), done)

    def action_start(self) -> None:
        if (container := self.selected()) is not None:
            self._lifecycle("start", container)

    def action_stop(self) -> None:
        if (container := self.selected()) is not None:
            self._lifecycle("stop", container)

    def action_restart(self) -> None:
        if (container := self.selected()) is not None:
            self._lifecycle("restart", container)

    def action_shell(self) -> None:
        container = self.selected()
        if container is not None:
            self.app.call_later(self.app.open_shell, container)  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        box = self.query_one("#table-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#table-filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.table.focus()

    @on(Input.Changed, "#table-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value.strip()
        self.table.show(
            (key, c, self.fleet.progress.get(key)) for key, c in self.fleet.items.items()
        )
        self._show_selected()

    @on(Input.Submitted, "#table-filter")
    def filter_done(self, _: Input.Submitted) -> None:
        self.table.focus()

    def action_sort(self) -> None:
        column = self.table.cycle_sort()
        self.notify(f"Sorted by {column}", timeout=2)

    def action_copy_id(self) -> None:
        container = self.selected()
        if container is not None:
            self.app.copy_to_clipboard(str(container["id"]))
            self.notify(f"Copied {container['id']}", timeout=3)

    def action_toggle_details(self) -> None:
        pane = self.query_one(DetailsPane)
        pane.display = not pane.display

    def action_toggle_log(self) -> None:
        panel = self.query_one(EventLogPanel)
        panel.display = not panel.display

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.active_bindings_help()))

    def active_bindings_help(self) -> list[tuple[str, str]]:
        rows = []
        keymap = getattr(self.app, "keymap", {}) or {}
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.show:
                keys = keymap.get(binding.id or "", binding.key)
                rows.append((self.app.get_key_display(Binding(keys, "")), binding.description))
        rows.append(("ctrl+p", "Command palette: every action, searchable"))
        return rows

    async def action_quit(self) -> None:
        self.app.exit()

    # -- workers --------------------------------------------------------------------------------

    @work(group="actions")
    async def _lifecycle(self, verb: str, container: dict[str, Any]) -> None:
        api = self.app.api  # type: ignore[attr-defined]
        name = container.get("name")
        ident = str(container["id"])
        if verb == "restart":
            self.notify(f"Restarting {name}…", timeout=3)
            await api.stop_container(ident)
            result = await api.start_container(ident)
            self.notify(f"{name}: restarted ({result['message']})")
            return
        self.notify(
            f"{verb.capitalize()}ing {name}…" if verb == "stop" else f"Starting {name}…", timeout=3
        )
        call = api.start_container if verb == "start" else api.stop_container
        result = await call(ident)
        self.notify(f"{name}: {result['message']}")

    @work(group="actions")
    async def _delete(self, container: dict[str, Any], keep_volume: bool) -> None:
        api = self.app.api  # type: ignore[attr-defined]
        self.notify(f"Deleting {container.get('name')}…", timeout=3)
        result = await api.delete_container(str(container["id"]), keep_volume=keep_volume)
        kept = " (volume kept)" if keep_volume else ""
        self.notify(f"{container.get('name')}: {result['message']}{kept}")
