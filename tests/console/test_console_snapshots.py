"""Pictures of the console at a fixed terminal size, compared with the approved SVGs
(``pytest --snapshot-update`` approves new ones). The data is fixed (``FakeApi``) and the clock's
zone is UTC, so a picture only changes when the console's look does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from devkit.fake_api import TWO_ENGINES_ONE_DOWN, FakeApi, two_engine_fleet
from tests.console.conftest import until
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.screens.create import CreateScreen
from tui.screens.help import HelpScreen
from tui.screens.settings import SettingsScreen
from tui.widgets.table import ContainerTable

SIZE = (140, 34)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def fake_app(tmp_path: Path, api: FakeApi | None = None) -> CorralApp:
    return CorralApp(
        FakeApi.server, "", config=ConsoleConfig(path=tmp_path / "c.toml"), api=api or FakeApi()
    )  # type: ignore[arg-type]


async def loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, CorralApp)
    await until(
        pilot, lambda: len(app.fleet.items) == 7 and bool(app.main_screen.me), what="the fake fleet"
    )
    await pilot.pause()


def test_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        table = pilot.app.main_screen.query_one(ContainerTable)  # type: ignore[attr-defined]
        table.move_cursor(row=0)
        await pilot.pause()

    assert snap_compare(fake_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_main_screen_with_two_engines_one_down(snap_compare: Any, tmp_path: Path) -> None:
    """An Engine column (only with several engines), and each engine's health in the header:
    the sandboxes of the engine that is down read unknown."""
    api = FakeApi(fleet=two_engine_fleet(), events=[], engines=TWO_ENGINES_ONE_DOWN)

    async def run_before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await until(pilot, lambda: bool(pilot.app.main_screen.header.engines), what="engines")  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(fake_app(tmp_path, api), terminal_size=SIZE, run_before=run_before)


def test_settings_form_with_a_validation_message(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen))
        memory = pilot.app.screen.query_one("#memory_mb")
        memory.value = "9000"  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(fake_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_create_form(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(pilot.app.screen, CreateScreen))
        await pilot.pause()

    assert snap_compare(fake_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_help(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()

    assert snap_compare(fake_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_files_view(snap_compare: Any, tmp_path: Path) -> None:
    from tui.screens.files import FilesScreen

    async def run_before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        table = pilot.app.main_screen.query_one(ContainerTable)  # type: ignore[attr-defined]
        table.move_cursor(row=0)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(pilot.app.screen, FilesScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: bool(screen.entries))  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(fake_app(tmp_path), terminal_size=SIZE, run_before=run_before)
