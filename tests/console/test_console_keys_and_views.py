"""The console's second pass, on the fake backend (fixed answers, fast): sorting by value, the first
frame, the forms at 80x24, wording, keys, marks, command mode, inspect, logs and volumes views.
Each behaviour here is also exercised against the real backend in test_console_live.py."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from textual.widgets import Footer, Input, Select, Static
from textual.widgets._footer import FooterKey

from corral.client.errors import api_error
from devkit.fake_api import FakeApi, container
from tests.console.conftest import until
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.messages import BackendEvent
from tui.screens.confirm import Confirm
from tui.screens.create import CreateScreen, role_label
from tui.screens.inspect import InspectScreen
from tui.screens.logs import LogsScreen
from tui.screens.volumes import VolumesScreen
from tui.widgets.columns import layout
from tui.widgets.event_log import EventLogPanel
from tui.widgets.table import ContainerTable
from tui.widgets.tail_log import TailLog


def _app(
    tmp_path: Path, fleet: list[dict[str, Any]] | None = None, stats: bool = True
) -> tuple[CorralApp, FakeApi]:
    api = FakeApi(fleet=fleet, events=[] if fleet is not None else None, with_stats=stats)
    config = ConsoleConfig(path=tmp_path / "console.toml")
    return CorralApp(api.server, "", config=config, api=api), api  # type: ignore[arg-type]


def _table(app: CorralApp) -> ContainerTable:
    return app.main_screen.query_one(ContainerTable)


def _names(app: CorralApp) -> list[str]:
    return [str(app.fleet.items[key]["name"]) for key in _table(app).row_keys]


async def _ready(app: CorralApp, pilot: Any, count: int) -> None:
    await until(
        pilot,
        lambda: _table(app).row_count == count and bool(app.main_screen.me),
        what="the rows and the profile",
    )


def _event(kind: str, payload: dict[str, Any], seq: int = 50) -> BackendEvent:
    return BackendEvent(
        {"type": kind, "container": payload, "seq": seq, "timestamp": "2026-11-28T10:00:00Z"}
    )


# -- 2. sorting by value, with an arrow, reversible ---------------------------------------------


async def test_sort_compares_values_not_text_and_reverses(tmp_path: Path) -> None:
    ago = timedelta
    fleet = [
        container(1, "a", "running", memory=1024, started_ago=ago(seconds=22)),
        container(2, "b", "running", memory=2048, started_ago=ago(minutes=1, seconds=5)),
        container(3, "c", "running", memory=4096, started_ago=ago(seconds=28)),
        container(4, "d", "running", memory=512, started_ago=ago(hours=3)),
    ]
    app, _ = _app(tmp_path, fleet, stats=False)  # memory then sorts by limit
    async with app.run_test(size=(140, 30)) as pilot:
        await _ready(app, pilot, 4)
        table = _table(app)
        table.sort_on("memory")
        await pilot.pause()
        assert _names(app) == ["d", "a", "b", "c"]  # 512 MB, 1 GB, 2 GB, 4 GB
        assert "Memory▲" in table.render_line(0).text
        await pilot.press("O")
        assert _names(app) == ["c", "b", "a", "d"]
        assert "Memory▼" in table.render_line(0).text
        table.sort_on("uptime", reverse=False)
        await pilot.pause()
        assert _names(app) == ["a", "c", "b", "d"]  # 22s, 28s, 1m, 3h
        assert "Uptim▲" in table.render_line(0).text  # the arrow stays, the label gives way


# -- 3. the first frame shows every row -------------------------------------------------------


async def test_the_first_frame_draws_every_row(tmp_path: Path) -> None:
    fleet = [container(i, f"box-{i}", "stopped") for i in range(1, 5)]
    app, _ = _app(tmp_path, fleet)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(app, pilot, 4)
        await pilot.pause()
        painted = [_table(app).render_line(y).text for y in range(1, 5)]
        for i in range(1, 5):
            assert any(f"box-{i}" in line for line in painted), painted


# -- 4 and 8. the create form: only real choices, dismissed once ------------------------------


async def test_create_form_offers_real_choices_and_closes_once(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot, 7)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateScreen), what="the form")
        form = app.screen
        assert isinstance(form, CreateScreen)
        image, role = form.query_one("#image", Select), form.query_one("#role", Select)
        assert not image.is_blank() and not role.is_blank()
        assert "none built" not in str(form.query_one("#form-error", Static).render())
        image.value = "corral/debian:bookworm"
        await pilot.pause()
        assert role.value == "barebone" and not role.is_blank()
        # 9: at 80x24 the buttons are on screen, without scrolling.
        submit = form.query_one("#submit")
        assert submit.region.bottom <= 24 and submit.region.height >= 1
        # 4: the container runs; two more events arrive: the form is dismissed once.
        made = container(20, "new-one", "running")
        form.creating = made["db_id"]
        before = len(app.screen_stack)
        for seq in (60, 61, 62):
            app.main_screen.post_message(_event("container_started", made, seq))
        await until(pilot, lambda: app.screen is app.main_screen, what="the form to close")
        await pilot.pause()
        assert len(app.screen_stack) == before - 1
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="q to quit")


def test_role_descriptions_are_cut_at_a_word() -> None:
    label = role_label(
        {"name": "Standard", "description": "Everyday command-line tools: git, curl, vim, htop"}
    )
    assert label.endswith("…") and len(label) <= 58
    whole = ["Standard", "—", "Everyday", "command-line", "tools:", "git,", "curl,", "vim,", "htop"]
    shown = label.removesuffix("…").replace(",", "").split()
    assert all(word in [w.rstrip(",") for w in whole] for word in shown), label


# -- 9 and 10. the footer at 80 columns, wording ------------------------------------------------


async def test_footer_wording_and_widths(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot, 7)

        def footer_fits() -> bool:
            keys = app.main_screen.query_one(Footer).query(FooterKey)
            shown = [k.description for k in keys if k.region.right <= 80 and k.region.width]
            return "Quit" in shown and "Help" in shown

        await until(pilot, footer_fits, 5, what="Help and Quit in the footer at 80 columns")
        await pilot.press("x")  # api-server runs
        await until(pilot, lambda: "stop_container" in api.calls, what="the stop")
        messages = [n.message for n in app._notifications]
        assert any("Stopping api-server" in m for m in messages), messages
        await pilot.press("question_mark")
        await pilot.pause()
        text = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert str(tmp_path / "console.toml") in text and "[keys]" in text
        assert "toggle_details" in text
    app.config.ensure_written()
    written = (tmp_path / "console.toml").read_text()
    assert "toggle_details" in written and "reverse_sort" in written
    wide = dict(zip(["status", "name", "image"], layout(200), strict=False))
    assert wide["image"] >= len("debian:bookworm") and wide["name"] > 15


# -- 7 and 11. the details pane: fresh, and which ID is which -----------------------------------


async def test_details_follow_the_clock_and_deletions_and_c_copies_the_stable_id(
    tmp_path: Path,
) -> None:
    fleet = [
        container(1, "fresh", "running", started_ago=timedelta(seconds=58)),
        container(2, "other", "stopped"),
    ]
    app, _ = _app(tmp_path, fleet)
    async with app.run_test(size=(140, 30)) as pilot:
        await _ready(app, pilot, 2)
        table = _table(app)
        table.move_cursor(0)
        await pilot.pause()
        body = app.main_screen.query_one("#details-body", Static)
        live = app.main_screen.query_one("#details-live", Static)
        await until(pilot, lambda: "1m" in table.cell_text(fleet[0]["db_id"], "uptime"), 5)
        await until(pilot, lambda: "1m" in _plain(live), 3, what="the details' uptime")
        assert "ID (stable)" in _plain(body)
        await pilot.press("c")
        assert app.clipboard == fleet[0]["db_id"]
        deleted = {**fleet[0], "status": "deleted"}
        app.main_screen.post_message(_event("container_deleted", deleted))
        await until(pilot, lambda: "other" in _plain(body), what="the next row's details")
        assert "fresh" not in _plain(body)


# -- 12. keys ---------------------------------------------------------------------------------


async def test_vim_keys_enter_on_a_stopped_row_and_esc_in_the_log_filter(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await _ready(app, pilot, 7)
        table = _table(app)
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == 6
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == 6
        await pilot.press("home")
        assert table.cursor_row == 0

        table.move_cursor(2)  # scratch, stopped
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the offer to start")
        await pilot.press("enter")
        await until(pilot, lambda: "start_container" in api.calls, what="the start")

        log_filter = app.main_screen.query_one("#log-filter", Input)
        log_filter.focus()
        await pilot.pause()
        await pilot.press("s", "t")
        await pilot.press("escape")
        assert table.has_focus and log_filter.value == "st"
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="q to quit, not to type")


# -- 15. the palette, the log's words, the row during a rebuild ------------------------------------


async def test_palette_log_words_and_rebuild_activity(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await _ready(app, pilot, 7)
        titles = [c.title for c in app.get_system_commands(app.main_screen)]
        assert "Keys" not in titles and "Screenshot" not in titles and "Maximize" not in titles
        assert "Theme" in titles and "Stop" in titles
        helps = {c.title: c.help for c in app.get_system_commands(app.main_screen)}
        assert helps["Stop"].endswith("(x)")

        worker = app.fleet.items["00000002-0000-4000-8000-000000000002"]
        resized = {**worker, "resources": {**worker["resources"], "memory_mb": 2048}}
        app.main_screen.post_message(_event("container_updated", resized))
        log = app.main_screen.query_one(EventLogPanel)
        await until(pilot, lambda: "memory 1 GB → 2 GB" in _last_line(log), what="the log")

        key = worker["db_id"]
        app.main_screen.show_activity(key, "rebuilding…")
        assert "rebuilding…" in _table(app).cell_text(key, "status")
        assert "%" not in _table(app).cell_text(key, "status")
        app.main_screen.show_activity(key, None)
        assert "running" in _table(app).cell_text(key, "status")


def _last_line(log: EventLogPanel) -> str:
    return log._lines[-1].plain if log._lines else ""


# -- C. marks and bulk actions ----------------------------------------------------------------


async def test_marked_rows_share_one_confirmation_and_one_progress_line(tmp_path: Path) -> None:
    app, api = _app(tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await _ready(app, pilot, 7)
        table = _table(app)
        table.move_cursor(0)
        await pilot.press("space", "space")  # api-server and worker-1 (both running)
        assert len(table.marked) == 2
        assert "2 marked" in app.main_screen.header.marked
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="one confirmation")
        said = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert "api-server, worker-1" in said
        await pilot.press("enter")
        await until(pilot, lambda: api.calls.count("stop_container") == 2, what="two stops")
        await until(pilot, lambda: not table.marked, what="the marks to clear")


# -- E. command mode and inspect; B and D views ---------------------------------------------------


async def test_command_mode_inspect_logs_and_volumes(tmp_path: Path) -> None:
    app, api = _app(tmp_path, stats=False)
    async with app.run_test(size=(140, 36)) as pilot:
        await _ready(app, pilot, 7)
        await pilot.press("colon", *"sort memory desc", "enter")
        assert _names(app)[0] == "laptop"  # 16 GB
        await pilot.press("colon", *"inspect scratch", "enter")
        await until(pilot, lambda: isinstance(app.screen, InspectScreen), what="inspect")
        assert '"name": "scratch"' in app.screen.text
        await pilot.press("escape")
        await pilot.press("colon", *"logs api-server", "enter")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), what="the logs view")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        await until(pilot, lambda: len(logs.lines) == 4, what="the lines")
        await pilot.press("slash", *"GET")
        await pilot.pause()
        assert logs.search == "GET"
        await pilot.press("escape", "escape")
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, VolumesScreen), what="the volumes")
        volumes = app.screen
        await until(pilot, lambda: bool(volumes.volumes), what="the kept volume")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the confirmation")
        await pilot.press("enter")
        await until(pilot, lambda: "delete_volume" in api.calls, what="the delete")
        await pilot.press("escape")
        await pilot.press("colon", *"nonsense", "enter")
        await pilot.pause()
        assert any("Unknown command" in n.message for n in app._notifications)
        await pilot.press("colon", "q", "enter")
        await until(pilot, lambda: not app.is_running, what=":q")


async def test_usage_from_the_stats_stream_shows_in_the_row_and_the_details(
    tmp_path: Path,
) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await _ready(app, pilot, 7)
        key = "00000001-0000-4000-8000-000000000001"
        await until(pilot, lambda: key in app.fleet.stats, what="a stats sample")
        assert _table(app).cell_text(key, "cpu") == "12%"
        assert _table(app).cell_text(key, "memory") == "128M/2G"
        body = _plain(app.main_screen.query_one("#details-live", Static))
        assert "CPU used" in body and "Memory used" in body


def _plain(widget: Static) -> str:
    """What a Static shows, as plain text (its content may be a Rich table)."""
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


class _RefusingApi(FakeApi):
    """Stops fail as the backend says when its engine is gone."""

    async def stop_container(self, ident: str) -> dict[str, Any]:
        raise api_error(503, {"error": "docker unavailable", "message": "engine down"})


async def test_a_failed_action_is_a_notification_and_the_console_goes_on(tmp_path: Path) -> None:
    api = _RefusingApi()
    config = ConsoleConfig(path=tmp_path / "console.toml")
    app = CorralApp(api.server, "", config=config, api=api)  # type: ignore[arg-type]
    async with app.run_test(size=(140, 36)) as pilot:
        await _ready(app, pilot, 7)
        await pilot.press("x")  # api-server runs: stop it
        await until(
            pilot,
            lambda: any("docker unavailable" in n.message for n in app._notifications),
            what="the error as a notification",
        )
        assert app.is_running
        key = "00000001-0000-4000-8000-000000000001"
        assert "stopping" not in _table(app).cell_text(key, "status")  # the row says the truth


async def test_the_event_log_scrolls_back_and_holds_its_place(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, [container(1, "one", "stopped")])
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(app, pilot, 1)
        log = app.main_screen.query_one(TailLog)
        for n in range(40):
            log.write(Text(f"line {n:02d}"))
        await pilot.pause()
        height = log.size.height
        assert log.render_line(height - 1).text.startswith("line 39")
        log.focus()
        await pilot.press("pageup")
        assert log.back == height - 1
        bottom = log.render_line(height - 1).text
        log.write(Text("line 40"))  # a new line does not move what is being read
        assert log.render_line(height - 1).text == bottom
        await pilot.press("end")
        assert log.render_line(height - 1).text.startswith("line 40")
