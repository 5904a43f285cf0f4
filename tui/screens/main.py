"""The dashboard: header, containers table, details pane, live event log, footer.

Everything on it changes from the event stream alone; the user's actions go out through the
client in workers, and their results come back as events like anyone else's changes. While an
action runs, its row says so ("stopping…") until the events tell what happened."""

from __future__ import annotations

from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static

from corral.shapes import Status
from tui import actions
from tui.app_access import ReportsWorkerErrors, corral_app
from tui.changes import describe_change
from tui.commands import CommandLine
from tui.messages import (
    BackendEvent,
    ConnectionChanged,
    HealthChanged,
    ProfileLoaded,
    StatsUpdate,
)
from tui.model import Fleet
from tui.screens.row_actions import RowActions
from tui.widgets.details import DetailsPane
from tui.widgets.event_log import EventLogPanel
from tui.widgets.header import StatusHeader
from tui.widgets.table import ContainerTable

NARROW = 130


class MainScreen(ReportsWorkerErrors, RowActions):
    BINDINGS = actions.bindings()

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet
        self.limits: dict[str, Any] = {}
        self.me: dict[str, Any] = {}
        self._bindings_for: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Input(
            placeholder="filter containers (name, image, status, ID); esc clears", id="table-filter"
        )
        with Horizontal(id="body"):
            yield ContainerTable(id="containers")
            yield DetailsPane(id="details")
        yield Static(id="bulk")
        yield EventLogPanel(id="events")
        yield CommandLine(id="command")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#table-filter").display = False
        self.query_one("#bulk").display = False
        self.set_interval(1, self._tick)
        self.table.focus()
        self._show_selected()

    def on_resize(self, event: events.Resize) -> None:
        """Below 130 columns the details pane makes way for the table (i brings it back)."""
        self.query_one(DetailsPane).display = event.size.width >= NARROW

    @property
    def header(self) -> StatusHeader:
        return self.query_one(StatusHeader)

    # -- what arrives ---------------------------------------------------------------------------

    @on(BackendEvent)
    def apply_event(self, event: BackendEvent) -> None:
        message = event.message
        payload = message.get("container") or {}
        before = self.fleet.items.get(self.fleet.key_of(payload)) if payload else None
        changes = self.fleet.apply(message)
        for change in changes:
            if change.kind == "remove":
                self.table.drop(change.key)
            else:
                container = self.fleet.items[change.key]
                self.table.upsert(change.key, container, self.fleet.shown_progress(change.key))
        after = self.fleet.items.get(self.fleet.key_of(payload)) if payload else None
        self.query_one(EventLogPanel).add(message, describe_change(message, before, after))
        self._update_usage()
        if any(c.key == self.table.selected_key() for c in changes):
            self._show_selected()
        self._refresh_bindings_if_needed()
        if self.app.screen is not self:
            self.app.screen.post_message(BackendEvent(message))

    @on(StatsUpdate)
    def apply_stats(self, event: StatsUpdate) -> None:
        for sample in event.samples:
            key = str(sample.get("db_id") or sample.get("id"))
            self.fleet.add_stats(key, sample)
            self.table.set_stats(key, sample)
        self._show_selected()

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
        self._show_health(event.health)
        self._update_usage()
        self._show_selected()

    @on(HealthChanged)
    def health_changed(self, event: HealthChanged) -> None:
        self._show_health(event.health)

    def _show_health(self, health: dict[str, Any]) -> None:
        """With several engines: each one's state in the header, and the Engine column; with
        one, the header says only when it is down (and how to start it)."""
        engines = health.get("engines") or {}
        several = len(engines) > 1
        self.header.engines = tuple(
            (str(name), state.get("docker") == "ok" and state.get("runtime") == "ok")
            for name, state in engines.items()
            if several
        )
        self.table.show_engines(several)
        down = health.get("docker") != "ok"
        self.header.engine = "engine down: run just engine" if down and not several else ""

    def _update_usage(self) -> None:
        limit = self.limits.get("containers") or self.fleet.limit
        if limit:
            self.header.usage = f"{self.fleet.container_count()}/{limit}"

    @on(ContainerTable.CursorMoved)
    def row_highlighted(self, _: ContainerTable.CursorMoved) -> None:
        self._show_selected()
        self._refresh_bindings_if_needed()

    @on(ContainerTable.MarksChanged)
    def marks_changed(self, event: ContainerTable.MarksChanged) -> None:
        count = len(event.keys)
        self.header.marked = f"{count} marked" if count else ""
        self._refresh_bindings_if_needed()

    def _refresh_bindings_if_needed(self) -> None:
        """Refresh the footer only when what applies changed: rebuilding the footer on every
        event would cost more than everything else an event does."""
        states = [(c.get("status"), c.get("session_type")) for c in self._targets()]
        signature = (*states, len(self.table.marked))
        if signature != self._bindings_for:
            self._bindings_for = signature
            self.refresh_bindings()

    def _show_selected(self) -> None:
        key = self.table.selected_key()
        container = self.fleet.items.get(key) if key else None
        recent = list(self.fleet.recent.get(key, [])) if key else []
        progress = self.fleet.shown_progress(key) if key else None
        stats = self.fleet.stats_history(key) if key else []
        self.query_one(DetailsPane).show(container, self.limits, recent, progress, stats)

    def _tick(self) -> None:
        self.table.tick()
        selected = self.selected()
        if selected is not None and selected.get("status") == Status.RUNNING:
            self._show_selected()  # its uptime moves on

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
        else:
            self.table.clear_marks()

    def key_escape(self) -> None:
        self.action_clear_filter()

    @on(Input.Changed, "#table-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value.strip()
        self.table.show(
            (key, c, self.fleet.shown_progress(key)) for key, c in self.fleet.items.items()
        )
        self._show_selected()

    @on(Input.Submitted, "#table-filter")
    def filter_done(self, _: Input.Submitted) -> None:
        self.table.focus()

    def action_sort(self) -> None:
        column = self.table.cycle_sort()
        self.notify(f"Sorted by {column} (O reverses)", timeout=2)

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()

    def action_mark(self) -> None:
        self.table.action_toggle_mark()

    def action_copy_id(self) -> None:
        container = self.selected()
        if container is None:
            return
        ident = str(container.get("db_id") or container["id"])
        self.app.copy_to_clipboard(ident)
        self.notify(
            f"Copied {ident}: the database ID, which stays the same when the container is "
            "rebuilt (the Docker ID changes).",
            timeout=5,
        )

    def action_toggle_details(self) -> None:
        pane = self.query_one(DetailsPane)
        pane.display = not pane.display

    def action_toggle_log(self) -> None:
        panel = self.query_one(EventLogPanel)
        panel.display = not panel.display

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_logs(self) -> None:
        container = self.selected()
        if container is not None:
            corral_app(self).open_logs(container)

    def action_files(self) -> None:
        container = self.selected()
        if container is not None:
            corral_app(self).open_files(container)

    def action_inspect(self) -> None:
        from tui.screens.inspect import InspectScreen

        container = self.selected()
        if container is not None:
            self.app.push_screen(InspectScreen(container))

    def action_volumes(self) -> None:
        corral_app(self).open_volumes()

    def action_command(self) -> None:
        self.query_one(CommandLine).open()

    async def action_quit(self) -> None:
        self.app.exit()

    def find(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """A row by database ID, Docker ID or name, else by a unique prefix of a name or an
        ID (for commands)."""
        for key, container in self.fleet.items.items():
            if name in (key, container.get("id"), container.get("name")):
                return key, container
        found = [
            (k, c)
            for k, c in self.fleet.items.items()
            if any(str(v).startswith(name) for v in (k, c.get("id"), c.get("name")))
        ]
        return found[0] if len(found) == 1 else None

    def select(self, key: str) -> None:
        if key in self.table.row_keys:
            self.table.move_cursor(self.table.get_row_index(key))
