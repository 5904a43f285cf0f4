"""The table's rows without a screen: order by value, moves on a change of the sorted column,
the filter, and usage samples that write only their own cells."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devkit.fake_api import container
from tui.widgets.rows import Change, Rows

# The postgres pass repeats nothing here (tests/databases.py).
pytestmark = pytest.mark.no_database


def _rows(*memories: int) -> Rows:
    rows = Rows()
    for i, memory in enumerate(memories, start=1):
        rows.put(str(i), container(i, f"c{i}", "stopped", memory=memory), None, None)
    return rows


def test_sorted_rows_keep_their_order_through_inserts_and_changes() -> None:
    rows = _rows(1024, 4096, 512)
    rows.sort("memory", reverse=False)
    assert list(rows) == ["3", "1", "2"]
    change = rows.put("4", container(4, "c4", "stopped", memory=2048), None, None)
    assert change == Change("4", 2) and list(rows) == ["3", "1", "4", "2"]
    moved = rows.put("3", container(3, "c3", "stopped", memory=8192), None, None)
    assert moved == Change("3", 0) and list(rows) == ["1", "4", "2", "3"]
    rows.sort("memory", reverse=True)
    assert list(rows) == ["3", "2", "4", "1"]
    unchanged = rows.put("1", container(1, "c1", "stopped", memory=1024), None, None)
    assert unchanged is None  # nothing to repaint


def test_the_filter_removes_rows_that_do_not_match() -> None:
    rows = _rows(512, 512)
    rows.filter_text = "c2"
    change = rows.put("1", container(1, "c1", "stopped"), None, None)
    assert change == Change("1", 0) and list(rows) == ["2"]


def test_a_usage_sample_writes_only_the_usage_cells_of_a_running_row() -> None:
    rows = Rows()
    running = container(1, "r", "running", started_ago=timedelta(minutes=5))
    rows.put("1", running, None, None)
    before = rows.cell_writes
    sample = {"cpu_percent": 37.0, "memory_used_mb": 300.0}
    assert rows.put_stats("1", sample) == Change("1")
    assert rows.cell_writes - before == 2
    assert rows.row("1").cells["cpu"].plain == "37%"
    assert rows.put_stats("1", sample) is None
    assert rows.tick() == []  # five minutes: the shown uptime moves once a minute
