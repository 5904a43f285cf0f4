"""The building blocks the backend, the client and the agent share (``corral.aio``): the one
backoff every reconnecting loop waits with, and the one owner of background tasks."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from corral.aio import Backoff, TaskOwner

# The postgres pass repeats nothing here (tests/databases.py).
pytestmark = pytest.mark.no_database


def test_the_backoff_ceiling_doubles_up_to_its_maximum() -> None:
    backoff = Backoff(initial_s=0.5, maximum_s=30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.ceiling(-1) == 0.5


def test_the_backoff_draws_full_jitter_over_the_whole_window() -> None:
    """Full jitter: anywhere between zero and the ceiling (equal jitter never waits less than
    half of it, which is what the agent did while its comment promised full jitter)."""
    backoff = Backoff(initial_s=1.0, maximum_s=8.0)
    draws = [backoff.delay(3) for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 0.8 and max(draws) > 7.2
    assert 3.5 < statistics.fmean(draws) < 4.5


async def test_an_owner_holds_counts_and_drains_its_tasks() -> None:
    owner = TaskOwner("work")
    release = asyncio.Event()
    quick = owner.spawn(release.wait())
    stuck = owner.spawn(asyncio.Event().wait(), name="stuck")
    assert owner.running == 2
    assert quick in owner and (quick.get_name(), stuck.get_name()) == ("work", "stuck")
    release.set()
    await owner.drain(timeout_s=0.2)  # the quick one ends by itself; the stuck one is cancelled
    assert quick.done() and not quick.cancelled() and stuck.cancelled()
    assert owner.running == 0 and quick not in owner


async def test_closing_an_owner_cancels_its_tasks_and_waits_for_them() -> None:
    owner = TaskOwner("work")
    started, ended = asyncio.Event(), asyncio.Event()

    async def worker() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    task = owner.spawn(worker())
    await started.wait()
    await owner.close()
    assert task.cancelled() and ended.is_set() and owner.running == 0
    await owner.drain(timeout_s=0.0)  # nothing left: returns at once
