"""Console tests: the real app, driven by Textual's Pilot, against a real backend and engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from devkit.waiting import wait_for
from tests.conftest import Api
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.widgets.table import ContainerTable


@pytest.fixture
def console_config(tmp_path: Path) -> ConsoleConfig:
    return ConsoleConfig(path=tmp_path / "console.toml")


def make_app(api: Api, headers: dict[str, str], config: ConsoleConfig) -> CorralApp:
    token = headers["Authorization"].removeprefix("Bearer ")
    return CorralApp(api.url, token, config=config)


async def until(
    pilot: Pilot[Any], check: Callable[[], bool], timeout_s: float = 20.0, what: str = "the console"
) -> None:
    """Let the app run until ``check`` holds; fail after ``timeout_s``."""
    await wait_for(check, timeout_s, 0.05, what, pause=pilot.pause)


def row_of(app: CorralApp, name: str) -> dict[str, Any] | None:
    for container in app.fleet.items.values():
        if container.get("name") == name:
            return container
    return None


def status_cell(app: CorralApp, key: str) -> str:
    table = app.main_screen.query_one(ContainerTable)
    return table.cell_text(key, "status")
