"""The files view (``f``): browse, upload, download, delete, mkdir, with progress. On the fake
backend here (fast, fixed answers); against the real backend and engine at the end."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import docker
from textual.widgets import DataTable, ProgressBar, Static

from devkit.fake_api import FakeApi
from tests.conftest import Api
from tests.console.conftest import make_app, row_of, until
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.screens.ask_path import AskPath, complete_local
from tui.screens.confirm import Confirm
from tui.screens.files import FilesScreen


def _app(tmp_path: Path) -> tuple[CorralApp, FakeApi]:
    api = FakeApi()
    config = ConsoleConfig(path=tmp_path / "console.toml")
    return CorralApp(api.server, "", config=config, api=api), api  # type: ignore[arg-type]


def _files(app: CorralApp) -> FilesScreen:
    screen = app.screen
    assert isinstance(screen, FilesScreen)
    return screen


def _names(app: CorralApp) -> list[str]:
    table = _files(app).query_one(DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def _cursor_name(app: CorralApp) -> str:
    table = _files(app).query_one(DataTable)
    return str(table.get_row_at(table.cursor_row)[0])


async def _open(app: CorralApp, pilot: Any) -> None:
    await until(pilot, lambda: len(app.fleet.items) > 0, what="the fleet")
    await pilot.press("f")
    await until(pilot, lambda: isinstance(app.screen, FilesScreen), what="the files view")
    await until(pilot, lambda: _files(app).entries != {}, what="the listing")


async def _answer(app: CorralApp, pilot: Any, text: str) -> None:
    await until(pilot, lambda: isinstance(app.screen, AskPath), what="the path question")
    field = app.screen.query_one("#ask-path")
    field.value = text  # type: ignore[attr-defined]
    await pilot.press("enter")


async def test_browse_folders_first_enter_and_back_up(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await _open(app, pilot)
        assert _files(app).path == "/home/user"
        assert _names(app) == ["..", "notes/", ".profile", "data.csv", "report final.pdf"]
        assert _cursor_name(app) == "notes/"  # the first entry, not ..
        await pilot.press("enter")
        await until(pilot, lambda: _files(app).path == "/home/user/notes", what="into notes")
        assert _names(app) == ["..", "todo.md"]
        assert "/home/user/notes" in str(_files(app).query_one("#files-path", Static).render())
        await pilot.press("backspace")
        await until(pilot, lambda: _files(app).path == "/home/user", what="back up")
        assert _cursor_name(app) == "notes/"  # where we came from stays selected
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FilesScreen), what="closed")


async def test_upload_shows_progress_and_lands(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    local = tmp_path / "big upload.bin"
    local.write_bytes(os.urandom(600_000))
    seen: list[tuple[float | None, float]] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await _open(app, pilot)
        bar = _files(app).query_one("#files-progress", ProgressBar)
        original = bar.update

        def spy(**kwargs: Any) -> None:
            original(**kwargs)
            seen.append((bar.total, bar.progress))

        bar.update = spy  # type: ignore[method-assign]
        await pilot.press("u")
        await _answer(app, pilot, str(tmp_path / "nowhere.bin"))
        problem = app.screen.query_one("#ask-path-error", Static)
        await until(pilot, lambda: "no such file" in str(problem.render()), what="the refusal")
        assert isinstance(app.screen, AskPath)  # still asking: a typo costs one key
        await _answer(app, pilot, str(local))
        await until(pilot, lambda: "big upload.bin" in _names(app), what="the uploaded file")
        assert api.tree["/home/user/big upload.bin"] == local.read_bytes()
        assert _cursor_name(app) == "big upload.bin"
        assert (600_000.0, 600_000.0) in seen  # the bar reached the end
        assert not _files(app).query_one("#files-transfer").display  # and went away


async def test_download_to_a_folder_keeps_the_name(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    target = tmp_path / "downloads"
    target.mkdir()
    async with app.run_test(size=(100, 30)) as pilot:
        await _open(app, pilot)
        table = _files(app).query_one(DataTable)
        table.move_cursor(row=_names(app).index("data.csv"))
        await pilot.press("s")
        await _answer(app, pilot, str(tmp_path / "missing" / "x.csv"))
        problem = app.screen.query_one("#ask-path-error", Static)
        await until(pilot, lambda: "no such folder" in str(problem.render()), what="refusal")
        await _answer(app, pilot, str(target))
        saved = target / "data.csv"
        await until(pilot, lambda: saved.exists() and not _files(app).transferring, what="saved")
        assert saved.read_bytes() == api.tree["/home/user/data.csv"]


async def test_mkdir_and_delete_with_confirmation(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        await pilot.press("m")
        await _answer(app, pilot, "build/out")
        await until(pilot, lambda: "build/" in _names(app), what="the new folder")
        assert api.tree["/home/user/build/out"] is None

        table = _files(app).query_one(DataTable)
        table.move_cursor(row=_names(app).index("notes/"))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the confirmation")
        await pilot.press("escape")  # cancelled: nothing goes
        await until(pilot, lambda: isinstance(app.screen, FilesScreen), what="back")
        assert "/home/user/notes/todo.md" in api.tree
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the confirmation")
        await pilot.press("enter")
        await until(pilot, lambda: "notes/" not in _names(app), what="notes gone")
        assert not any(p.startswith("/home/user/notes") for p in api.tree)


async def test_files_is_offered_for_containers_not_agents(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(app.fleet.items) > 0, what="the fleet")
        main = app.main_screen
        items = app.fleet.items.items()
        agents = [k for k, c in items if str(c.get("id", "")).startswith("agent:")]
        running = [k for k, c in items if k not in agents and c["status"] == "running"]
        assert agents and running
        main.select(running[0])
        await pilot.pause()
        assert main.check_action("files", ()) is True
        main.select(agents[0])
        await pilot.pause()
        assert not main.check_action("files", ())


def test_local_paths_complete_from_the_disk(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    assert complete_local(str(tmp_path) + "/rep") == str(tmp_path) + "/reports/"
    assert complete_local(str(tmp_path) + "/rea") == str(tmp_path) + "/readme.txt"
    assert complete_local(str(tmp_path) + "/zzz") is None


async def test_files_view_on_the_real_backend(
    api: Api, console_config: ConsoleConfig, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """Upload through the view into a real sandbox, see it listed, save it back, delete it."""
    _, headers = await api.user(tier="test")
    created = await api.create(headers, name="files-1")
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(2_500_000))
    app = make_app(api, headers, console_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row_of(app, "files-1") is not None, what="the row")
        app.main_screen.select(str(created["db_id"]))
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FilesScreen), what="the files view")
        await until(pilot, lambda: _files(app).path == "/home/user", what="the home listing")
        await pilot.press("u")
        await _answer(app, pilot, str(local))
        await until(
            pilot, lambda: "payload.bin" in _names(app), timeout_s=30, what="the upload listed"
        )
        assert _cursor_name(app) == "payload.bin"
        await pilot.press("s")
        back = tmp_path / "back.bin"
        await _answer(app, pilot, str(back))
        await until(
            pilot,
            lambda: back.exists() and not _files(app).transferring,
            timeout_s=30,
            what="the download",
        )
        assert back.read_bytes() == local.read_bytes()
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the confirmation")
        await pilot.press("enter")
        await until(pilot, lambda: "payload.bin" not in _names(app), timeout_s=30, what="deleted")
