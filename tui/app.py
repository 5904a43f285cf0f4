"""The Corral console: a Textual app over the backend's HTTP/WebSocket API (``corral.client``).

It knows nothing of the backend's code: embedded or remote, it gets a URL and a token. The event
stream feeds every change to the dashboard; actions go out in workers; a failed worker becomes a
notification here, in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SuspendNotSupported, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from corral.client import ApiError, CorralClient, CorralClientError, TransportError
from tui import actions
from tui.config import ConsoleConfig
from tui.messages import (
    BackendEvent,
    ConnectionChanged,
    HealthChanged,
    ProfileLoaded,
    StatsUpdate,
)
from tui.model import Fleet
from tui.screens.main import MainScreen

STYLES = Path(__file__).resolve().parent.parent / "styles"
HEALTH_INTERVAL_S = 15.0
ENGINE_HINT = "Start the Docker engine with 'just engine' (or scripts/engine.sh as root)."


def describe_error(error: BaseException) -> str:
    """What happened and what to do, for a notification."""
    if isinstance(error, ApiError):
        hint = {
            "docker unavailable": " " + ENGINE_HINT,
            "unauthorized": " Sign in again (the token is missing, expired or revoked).",
            "container limit reached": " Delete a container first.",
        }.get(error.error, "")
        return f"{error.error}: {error.message}{hint}"
    if isinstance(error, TransportError):
        return f"The backend cannot be reached: {error}. Check that it runs."
    return f"{type(error).__name__}: {error}"


class CorralApp(App[None]):
    TITLE = "Corral"
    CSS_PATH = [
        STYLES / "app.tcss",
        STYLES / "main.tcss",
        STYLES / "forms.tcss",
        STYLES / "widgets.tcss",
    ]

    def __init__(
        self,
        server: str,
        token: str,
        *,
        embedded: bool = False,
        config: ConsoleConfig | None = None,
        startup_error: str | None = None,
        api: CorralClient | None = None,
    ) -> None:
        super().__init__()
        self.server = server
        self.embedded = embedded
        self.config = config or ConsoleConfig.load()
        self.api = api or CorralClient(server, token)
        self.fleet = Fleet()
        self.images: list[dict[str, Any]] = []
        self.roles: list[dict[str, Any]] = []
        self.startup_error = startup_error
        self.main_screen = MainScreen(self.fleet)

    # -- start and stop -------------------------------------------------------------------------

    async def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        if self.config.keys:
            self.set_keymap(self.config.keys)
        await self.push_screen(self.main_screen)
        where = f"embedded {self.server}" if self.embedded else self.server
        self.main_screen.header.backend = where
        if self.startup_error:
            self.main_screen.header.connection = "failed"
            self.notify(self.startup_error, severity="error", timeout=30)
            return
        self.load_profile()
        self.follow_events()
        self.follow_stats()
        self.follow_health()

    async def on_unmount(self) -> None:
        await self.api.close()

    def watch_theme(self, theme: str) -> None:
        if theme != self.config.theme:
            self.config.save_theme(theme)

    # -- workers --------------------------------------------------------------------------------

    @work(group="profile", exclusive=True, exit_on_error=False)
    async def load_profile(self) -> None:
        """Who we are, and the catalogs. Only ``/api/me`` must answer: with the engine down the
        image list cannot be checked, and the console still opens and says why."""
        me, images, roles, health = await asyncio.gather(
            self.api.me(),
            self.api.images(),
            self.api.roles(),
            self.api.health(),
            return_exceptions=True,
        )
        if isinstance(me, BaseException):
            raise me
        self.images = (
            [] if isinstance(images, BaseException) else [dict(i) for i in images["images"]]
        )
        self.roles = [] if isinstance(roles, BaseException) else [dict(r) for r in roles["roles"]]
        status = {"docker": "unavailable"} if isinstance(health, BaseException) else dict(health)
        self.main_screen.post_message(ProfileLoaded(dict(me), self.images, self.roles, status))
        if status.get("docker") != "ok":
            self.notify(
                f"The Docker engine is not reachable. {ENGINE_HINT}", severity="warning", timeout=20
            )

    @work(group="events", exclusive=True, exit_on_error=False)
    async def follow_events(self) -> None:
        def state(value: str) -> None:
            self.main_screen.post_message(ConnectionChanged(value))

        try:
            async with self.api.events(on_state=state) as stream:
                async for message in stream:
                    self.main_screen.post_message(BackendEvent(dict(message)))
        except CorralClientError:
            state("failed")
            raise

    @work(group="stats", exclusive=True, exit_on_error=False)
    async def follow_stats(self) -> None:
        """Live usage (CPU, memory used) of running containers, from the backend's stats
        stream (it reconnects by itself). A backend without one leaves the limits shown."""
        try:
            async with self.api.stats() as stream:
                async for message in stream:
                    samples = message.get("stats")
                    if isinstance(samples, list):
                        self.main_screen.post_message(StatsUpdate([dict(s) for s in samples]))
        except ApiError:
            return  # an older backend: no stats stream

    @work(group="health", exclusive=True, exit_on_error=False)
    async def follow_health(self) -> None:
        """The engines' health in the header, read again on a slow timer (the events stream
        tells each container's change; this tells an engine's)."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_S)  # a polling period, not synchronisation
            try:
                health: dict[str, Any] = dict(await self.api.health())
            except CorralClientError:
                health = {"docker": "unavailable"}
            self.main_screen.post_message(HealthChanged(health))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_failed(event)

    def worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker becomes a notification (the app's own workers, and
        every screen's through ``ReportsWorkerErrors``; forms also show their own)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(
                describe_error(event.worker.error), title="Error", severity="error", timeout=10
            )

    # -- the shell ------------------------------------------------------------------------------

    async def open_shell(self, container: dict[str, Any]) -> None:
        """Suspend the dashboard, attach this terminal to the shell, come back when it ends.

        The session runs on this event loop (the embedded backend shares it), so the app keeps
        running while suspended: ``batch_update`` holds every repaint until the shell ends.
        Without it, a blinking cursor or an event's repaint queues output for a writer that
        is not running, and once its queue fills the console hangs for good."""
        from corral.client.terminal import attach

        name = container.get("name")
        try:
            with self.batch_update(), self.suspend():
                # A clean screen, so the shell does not open over the last one's output.
                print(
                    f"\x1b[H\x1b[2JShell in {name}; ctrl+] comes back to the console.\r", flush=True
                )
                end = await attach(self.api, str(container.get("db_id") or container["id"]))
        except (ApiError, TransportError) as exc:
            self.notify(describe_error(exc), severity="error")
            return
        except SuspendNotSupported:
            self.notify(f"A shell needs a real terminal: run 'corral shell {name}'.")
            return
        if end.detached:
            self.notify(f"Detached from {name}")
        else:
            self.notify(f"Shell in {name} ended ({end.message}, code {end.code})")

    # -- command palette ------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Corral's actions that apply now, each with its key as it is now; of Textual's own,
        only the theme switch (its key list, screenshot and maximize are not Corral's)."""
        for command in super().get_system_commands(screen):
            if command.title == "Theme":
                yield command
        if not isinstance(screen, MainScreen):
            return
        for action in actions.ACTIONS:
            if screen.check_action(action.id, ()):
                yield SystemCommand(
                    action.title,
                    f"{action.help} ({actions.key_display(self, action)})",
                    getattr(screen, f"action_{action.id}"),
                )

    # -- views ----------------------------------------------------------------------------------

    def open_logs(self, container: dict[str, Any]) -> None:
        from tui.screens.logs import LogsScreen

        self.push_screen(LogsScreen(container))

    def open_files(self, container: dict[str, Any]) -> None:
        from tui.screens.files import FilesScreen

        self.push_screen(FilesScreen(container))

    def open_volumes(self) -> None:
        from tui.screens.volumes import VolumesScreen

        self.push_screen(VolumesScreen(self.main_screen.limits))
