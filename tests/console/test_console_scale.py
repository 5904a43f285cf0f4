"""A thousand containers: one status event changes its own row and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devkit.fake_api import FakeApi, container
from tests.console.conftest import until
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.messages import BackendEvent
from tui.widgets.columns import COLUMNS
from tui.widgets.table import ContainerTable

COUNT = 1000


def _snapshot(table: ContainerTable) -> dict[str, list[str]]:
    return {key: table.row_texts(key) for key in table.row_keys}


async def test_one_event_repaints_only_its_row(tmp_path: Path) -> None:
    fleet = [
        container(i, f"c-{i:04d}", "running" if i % 2 else "stopped") for i in range(1, COUNT + 1)
    ]
    api = FakeApi(fleet=fleet, events=[])
    app = CorralApp(api.server, "", config=ConsoleConfig(path=tmp_path / "c.toml"), api=api)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.main_screen.query_one(ContainerTable)
        await until(pilot, lambda: table.row_count == COUNT, what="1,000 rows")
        table.move_cursor(row=500)
        await pilot.pause()
        cursor_before = table.selected_key()
        before = _snapshot(table)
        writes_before = table.cell_writes

        target = dict(fleet[499])  # c-0500, stopped
        assert target["status"] == "stopped"
        target["status"] = "running"
        message: dict[str, Any] = {
            "type": "container_started",
            "container": target,
            "seq": 2,
            "timestamp": "2026-11-28T10:00:00.000Z",
        }
        app.main_screen.post_message(BackendEvent(message))
        await until(
            pilot,
            lambda: "running" in table.cell_text(target["db_id"], "status"),
            what="the event",
        )

        # What is painted, not only what is stored: the row's line on screen says running.
        row_y = table.get_row_index(target["db_id"]) - table.scroll_offset.y + 1  # + header
        assert "running" in table.render_line(row_y).text
        after = _snapshot(table)
        changed = {key for key in before if before[key] != after[key]}
        assert changed == {target["db_id"]}
        assert table.cell_writes - writes_before == 1  # only the status cell of that row
        assert table.selected_key() == cursor_before
        assert table.row_count == COUNT
        assert len(COLUMNS) == len(after[target["db_id"]])
