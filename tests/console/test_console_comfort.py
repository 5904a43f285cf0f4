"""Comfort: themes remembered, keys overridable, actions greyed when they do not apply, an
engine that is down said plainly, and the command palette reaching every action."""

from __future__ import annotations

from pathlib import Path

from backend.settings import Settings
from devkit.fake_api import FakeApi
from tests.conftest import serve
from tests.console.conftest import make_app, until
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.widgets.table import ContainerTable


def _app(tmp_path: Path, keys: dict[str, str] | None = None) -> tuple[CorralApp, FakeApi]:
    api = FakeApi()
    config = ConsoleConfig(path=tmp_path / "console.toml", keys=keys or {})
    return CorralApp(api.server, "", config=config, api=api), api  # type: ignore[arg-type]


async def _loaded(app: CorralApp, pilot: object) -> None:
    await until(
        pilot,
        lambda: len(app.fleet.items) == 7 and bool(app.main_screen.me),  # type: ignore[arg-type]
        what="the fleet",
    )


async def test_theme_is_remembered(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test() as pilot:
        app.theme = "nord"
        await pilot.pause()
    assert 'theme = "nord"' in (tmp_path / "console.toml").read_text()
    again = ConsoleConfig.load(tmp_path / "console.toml")
    assert again.theme == "nord"
    app2, _ = _app(tmp_path)
    app2.config = again
    async with app2.run_test() as pilot:
        await pilot.pause()
        assert app2.theme == "nord"


async def test_key_overrides_from_the_config(tmp_path: Path) -> None:
    app, api = _app(tmp_path, keys={"stop": "f6"})
    async with app.run_test(size=(140, 36)) as pilot:
        await _loaded(app, pilot)
        table = app.main_screen.query_one(ContainerTable)
        table.move_cursor(row=0)  # api-server, running
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        assert "stop_container" not in api.calls  # x is no longer stop
        await pilot.press("f6")
        await until(pilot, lambda: "stop_container" in api.calls, what="f6 to stop")


async def test_actions_that_do_not_apply_are_disabled(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await _loaded(app, pilot)
        table = app.main_screen.query_one(ContainerTable)
        screen = app.main_screen
        names = {c["name"]: c["db_id"] for c in app.fleet.items.values()}

        table.move_cursor(row=table.get_row_index(names["scratch"]))  # stopped
        await pilot.pause()
        assert screen.check_action("stop", ()) is None
        assert screen.check_action("start", ()) is True
        assert screen.check_action("shell", ()) is True  # enter offers to start it first
        await pilot.press("x")
        await pilot.pause()
        assert "stop_container" not in api.calls

        table.move_cursor(row=table.get_row_index(names["laptop"]))  # an agent
        await pilot.pause()
        assert screen.check_action("settings", ()) is None
        assert screen.check_action("start", ()) is None
        assert screen.check_action("shell", ()) is True
        assert screen.check_action("stop", ()) is True


async def test_palette_offers_the_actions(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await _loaded(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.main_screen)]
        for title in ("New container", "Stop", "Restart", "Settings", "Delete", "Shell", "Help"):
            assert title in titles, title
        assert "Start" not in titles  # the selected row runs already
        table = app.main_screen.query_one(ContainerTable)
        table.move_cursor(row=2)  # scratch, stopped
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.main_screen)]
        assert "Start" in titles and "Stop" not in titles


async def test_engine_down_is_said_with_the_fix(settings: Settings, tmp_path: Path) -> None:
    down = settings.with_overrides(docker_host="unix:///nonexistent/docker.sock")
    async with serve(down) as api:
        _, headers = await api.user()
        app = make_app(api, headers, ConsoleConfig(path=tmp_path / "c.toml"))
        async with app.run_test(size=(140, 36)) as pilot:
            await until(
                pilot,
                lambda: "engine down" in app.main_screen.header.engine,
                what="the engine warning",
            )
            # The header can hear it first (a health poll or an event), the notification after.
            await until(
                pilot,
                lambda: any("just engine" in n.message for n in app._notifications),
                what="the notification saying how to start the engine",
            )
            # The console still works: its event stream connects (under load, after the warning).
            await until(
                pilot,
                lambda: app.main_screen.header.connection == "connected",
                what="the event stream to connect",
            )
