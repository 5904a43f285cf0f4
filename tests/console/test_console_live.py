"""The console against the embedded-style backend and the real engine."""

from __future__ import annotations

import subprocess

import docker
from textual.widgets import Input, Static, Switch

from tests.conftest import Api, sh
from tests.console.conftest import make_app, row_of, status_cell, until
from tui.config import ConsoleConfig
from tui.screens.confirm_delete import ConfirmDelete
from tui.screens.create import CreateScreen
from tui.screens.settings import SettingsScreen
from tui.widgets.table import ContainerTable


async def _select(app: object, pilot: object, key: str) -> None:
    table = app.main_screen.query_one(ContainerTable)  # type: ignore[attr-defined]
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()  # type: ignore[attr-defined]


async def test_create_stop_start_and_delete_from_the_keyboard(
    api: Api, console_config: ConsoleConfig, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    app = make_app(api, headers, console_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot,
            lambda: app.main_screen.header.connection == "connected" and bool(app.main_screen.me),
            what="the live connection and the profile",
        )
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateScreen), what="the create form")
        await pilot.press(*"web-1")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (row_of(app, "web-1") or {}).get("status") == "running",
            timeout_s=30,
            what="web-1 to run",
        )
        # The form closes once it runs: when the create's answer arrives, which on a busy host
        # can come after the events that show the row running.
        await until(
            pilot, lambda: not isinstance(app.screen, CreateScreen), what="the form to close"
        )
        key = str(row_of(app, "web-1")["db_id"])  # type: ignore[index]
        assert "running" in status_cell(app, key)

        await _select(app, pilot, key)
        await pilot.press("x")
        await until(pilot, lambda: "stopped" in status_cell(app, key), what="stopped by event")
        await pilot.press("s")
        await until(pilot, lambda: "running" in status_cell(app, key), what="running by event")

        # Stopped from the host, outside Corral: the table follows.
        subprocess.run(
            ["docker", "stop", "-t", "1", str(row_of(app, "web-1")["id"])],  # type: ignore[index]
            check=True,
            capture_output=True,
        )
        await until(pilot, lambda: "stopped" in status_cell(app, key), what="the docker stop")

        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete), what="the confirmation")
        app.screen.query_one("#keep", Switch).value = True
        app.screen.query_one("#confirm").focus()
        await pilot.press("enter")
        await until(pilot, lambda: row_of(app, "web-1") is None, what="the row to go")
        table = app.main_screen.query_one(ContainerTable)
        assert table.row_count == 0
    volume = docker_client.volumes.get(f"corral-vol-{key}")  # kept, as asked
    assert volume is not None


async def test_settings_form_validates_inline_and_restarts_with_data_kept(
    api: Api, console_config: ConsoleConfig, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="db")
    assert sh(docker_client, made["id"], "echo kept > /home/user/f")[0] == 0
    app = make_app(api, headers, console_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row_of(app, "db") is not None, what="the list")
        await _select(app, pilot, made["db_id"])
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="the form")
        form = app.screen
        memory = form.query_one("#memory_mb", Input)
        memory.value = "99999"
        await pilot.pause()
        hint = memory.parent.parent.query_one(".field-hint", Static)  # type: ignore[union-attr]
        assert hint.display
        assert "Memory must be between 64 and 2048 MB" in str(hint.render())
        memory.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)  # refused inline: nothing sent
        assert (await api.get(headers, made["db_id"]))["resources"]["memory_mb"] == 128

        memory.value = "256"
        await pilot.pause()
        assert not hint.display
        memory.focus()
        await pilot.press("enter")
        await until(
            pilot,
            lambda: not isinstance(app.screen, SettingsScreen),
            timeout_s=30,
            what="the rebuild",
        )
        await until(
            pilot,
            lambda: (row_of(app, "db") or {}).get("resources", {}).get("memory_mb") == 256,
            what="the new limit in the table",
        )
    after = await api.get(headers, made["db_id"])
    assert after["id"] != made["id"] and after["status"] == "running"
    assert sh(docker_client, after["id"], "cat /home/user/f") == (0, "kept\n")


async def test_backend_errors_appear_in_the_form(api: Api, console_config: ConsoleConfig) -> None:
    _, headers = await api.user(tier="test")
    await api.create(headers, name="taken")
    app = make_app(api, headers, console_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot,
            lambda: row_of(app, "taken") is not None and bool(app.main_screen.me),
            what="the list and the profile",
        )
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateScreen), what="the create form")
        await pilot.press(*"taken", "enter")
        error = app.screen.query_one("#form-error", Static)
        await until(pilot, lambda: "already exists" in str(error.render()), what="the refusal")
        assert isinstance(app.screen, CreateScreen)
