"""What the dashboard does to its rows: start, stop, restart, delete, a shell.

Kept apart from the dashboard's layout and live updates (``tui.screens.main``), which this is the
base of: one container goes at once; several marked ones share one confirmation and one progress
line; a row says what is being done to it ("stopping…") until the events tell what happened. The
work runs in workers; a failure reaches the user through ``ReportsWorkerErrors``.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.screen import Screen
from textual.widgets import Static

from corral.shapes import RUNNING_STATUSES, STARTABLE_STATUSES, Status, is_agent
from tui.app_access import corral_app
from tui.model import Fleet
from tui.widgets.table import ContainerTable

VERBS = {
    "start": ("Starting", "started"),
    "stop": ("Stopping", "stopped"),
    "restart": ("Restarting", "restarted"),
    "delete": ("Deleting", "deleted"),
}


class RowActions(Screen[None]):
    """The verbs on the selected or marked rows; the dashboard supplies ``fleet`` and ``table``."""

    fleet: Fleet

    @property
    def table(self) -> ContainerTable:
        return self.query_one(ContainerTable)

    def selected(self) -> dict[str, Any] | None:
        key = self.table.selected_key()
        return self.fleet.items.get(key) if key else None

    def _targets(self) -> list[dict[str, Any]]:
        """The marked rows, or the cursor's row."""
        return [self.fleet.items[k] for k in self.table.selected_keys() if k in self.fleet.items]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions that apply to no selected row are disabled (greyed in the footer)."""
        single = {"settings", "shell", "copy_id", "logs", "files", "inspect"}
        bulk = {"start", "stop", "restart", "delete"}
        if action not in single | bulk:
            return True
        targets = self._targets()
        if action in single:
            targets = targets[:1] if not self.table.marked else [self.selected() or {}]
        if not targets or not targets[0]:
            return None
        return True if any(_applies(action, c) for c in targets) else None

    def action_delete(self) -> None:
        from tui.screens.confirm_delete import ConfirmDelete

        targets = [c for c in self._targets() if _applies("delete", c)]
        if not targets:
            return

        def done(answer: tuple[bool, bool] | None) -> None:
            if answer and answer[0]:
                self._bulk("delete", targets, keep_volume=answer[1])

        self.app.push_screen(ConfirmDelete(targets), done)

    def action_start(self) -> None:
        self._confirm_then("start")

    def action_stop(self) -> None:
        self._confirm_then("stop")

    def action_restart(self) -> None:
        self._confirm_then("restart")

    def _confirm_then(self, verb: str) -> None:
        """One container: at once. Several marked: one confirmation naming them all."""
        from tui.screens.confirm import Confirm

        targets = [c for c in self._targets() if _applies(verb, c)]
        if not targets:
            return
        if len(targets) == 1:
            self._bulk(verb, targets)
            return
        names = ", ".join(str(c.get("name")) for c in targets)
        question = f"{verb.capitalize()} {len(targets)} containers?"

        def done(yes: bool | None) -> None:
            if yes:
                self._bulk(verb, targets)

        self.app.push_screen(Confirm(question, names, verb.capitalize()), done)

    def action_shell(self) -> None:
        from tui.screens.confirm import Confirm

        container = self.selected()
        if container is None:
            return
        if container.get("status") in RUNNING_STATUSES:
            self._open_shell(container)
            return
        if is_agent(container) or container.get("status") not in STARTABLE_STATUSES:
            self.notify(f"{container.get('name')} is {container.get('status')}: no shell now.")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._start_then_shell(container)

        self.app.push_screen(
            Confirm(
                f"{container.get('name')} is {container.get('status')}.",
                "Start it and open a shell?",
                "Start",
            ),
            done,
        )

    def _open_shell(self, container: dict[str, Any]) -> None:
        # Leave any input first: a focused input's blinking cursor would keep repainting a
        # suspended screen.
        self.table.focus()
        self.app.call_later(corral_app(self).open_shell, container)

    @work(group="actions", exit_on_error=False)
    async def _bulk(
        self, verb: str, targets: list[dict[str, Any]], keep_volume: bool = False
    ) -> None:
        """Run one verb over containers, one after another, with one progress line."""
        api = corral_app(self).api
        doing, done_word = VERBS[verb]
        line = self.query_one("#bulk", Static)
        many = len(targets) > 1
        failures: list[str] = []
        for number, container in enumerate(targets, start=1):
            key = self.fleet.key_of(container)
            name = str(container.get("name"))
            self.show_activity(key, f"{doing.lower()}…")
            if many:
                line.display = True
                line.update(
                    f"{doing} {len(targets)} containers: {number} of {len(targets)} ({name})"
                )
            else:
                self.notify(f"{doing} {name}…", timeout=3)
            try:
                await self._one(api, verb, container, keep_volume)
            except Exception as exc:
                if not many:
                    raise
                failures.append(f"{name}: {exc}")
            finally:
                self.show_activity(key, None)
        line.display = False
        self.table.clear_marks()
        if failures:
            self.notify("; ".join(failures), title=f"{verb} failed for some", severity="error")
        elif many:
            self.notify(f"{len(targets)} containers {done_word}")
        else:
            kept = " (volume kept)" if verb == "delete" and keep_volume else ""
            self.notify(f"{targets[0].get('name')} {done_word}{kept}")

    async def _one(self, api: Any, verb: str, container: dict[str, Any], keep_volume: bool) -> None:
        ident = str(container.get("db_id") or container["id"])
        if verb == "restart":
            await api.stop_container(ident)
            await api.start_container(ident)
        elif verb == "start":
            await api.start_container(ident)
        elif verb == "stop":
            await api.stop_container(ident)
        else:
            await api.delete_container(ident, keep_volume=keep_volume)

    def show_activity(self, key: str, label: str | None) -> None:
        """Show (or clear) what the console is doing to a row, until the events tell."""
        self.fleet.set_activity(key, label)
        container = self.fleet.items.get(key)
        if container is not None:
            self.table.upsert(key, container, self.fleet.shown_progress(key))

    @work(group="actions", exit_on_error=False)
    async def _start_then_shell(self, container: dict[str, Any]) -> None:
        key = self.fleet.key_of(container)
        self.show_activity(key, "starting…")
        try:
            await corral_app(self).api.start_container(str(container.get("db_id")))
        finally:
            self.show_activity(key, None)
        self._open_shell(self.fleet.items.get(key, container))


def _applies(action: str, container: dict[str, Any]) -> bool:
    status = container.get("status")
    agent = is_agent(container)
    return {
        "start": not agent and status in STARTABLE_STATUSES,
        "stop": status in RUNNING_STATUSES or (agent and status == Status.RUNNING),
        "restart": not agent and status == Status.RUNNING,
        "delete": True,
        "settings": not agent and status != Status.CREATING,
        "shell": status in RUNNING_STATUSES or (not agent and status in STARTABLE_STATUSES),
        "copy_id": True,
        "logs": not agent,
        "files": not agent and status != Status.CREATING,
        "inspect": True,
    }.get(action, True)
