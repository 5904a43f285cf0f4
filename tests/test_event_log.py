"""The event log on its own: numbering, delivery after commit, replay, pruning."""

from __future__ import annotations

import pytest

from backend.events.log import Event, EventLog
from backend.state import EVENTS, SESSIONS
from tests.conftest import Api


@pytest.fixture(autouse=True)
def _made_up_payloads(api: Api) -> None:
    """The log is under test here, with payloads that are not containers: the events are not
    held to the stream's message schema (the HTTP answers still are)."""
    api.conformance.events = False


async def _publish(log: EventLog, user_id: str, n: int) -> list[Event]:
    events = []
    for i in range(n):
        event = await log.publish(user_id, "container_progress", {"id": "x", "progress": i})
        assert event is not None
        events.append(event)
    return events


async def test_seq_counts_per_user_and_ids_across_users(api: Api) -> None:
    log = api.app[EVENTS]
    heard: list[Event] = []
    log.add_listener(heard.append)
    a = await _publish(log, "user-a", 3)
    b = await _publish(log, "user-b", 2)
    async with log.transaction() as tx:  # two events in one transaction
        await tx.add("user-a", "container_updated", {"id": "x"})
        await tx.add("user-a", "container_updated", {"id": "y"})
    assert [e.seq for e in a] == [1, 2, 3]
    assert [e.seq for e in b] == [1, 2]
    assert [e.seq for e in heard] == [1, 2, 3, 1, 2, 4, 5]
    ids = [e.id for e in heard]
    assert ids == sorted(ids) and len(set(ids)) == 7
    assert await log.last_seq("user-a") == 5
    assert await log.last_seq("user-b") == 2
    assert await log.last_seq("nobody") == 0
    assert await log.last_id() == ids[-1]


async def test_a_rolled_back_transaction_announces_nothing_and_takes_no_seq(api: Api) -> None:
    log = api.app[EVENTS]
    heard: list[Event] = []
    log.add_listener(heard.append)
    await _publish(log, "u", 1)

    async def failing_change() -> None:
        async with log.transaction() as tx:
            await tx.add("u", "container_updated", {"id": "x"})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    (after,) = await _publish(log, "u", 1)
    assert after.seq == 2
    assert [e.seq for e in heard] == [1, 2]


async def test_listeners_are_isolated_and_may_go_first(api: Api) -> None:
    log = api.app[EVENTS]
    order: list[str] = []

    def broken(_: Event) -> None:
        order.append("broken")
        raise ValueError("a bug in one listener")

    log.add_listener(broken)
    log.add_listener(lambda _: order.append("last"))
    log.add_listener(lambda _: order.append("first"), first=True)
    assert await log.publish("u", "container_updated", {"id": "x"}) is not None
    assert order == ["first", "broken", "last"]


async def test_since_is_exact_or_refuses(api: Api) -> None:
    log = api.app[EVENTS]
    await _publish(log, "u", 10)
    await _publish(log, "other", 3)
    got = await log.since("u", 4, 10)
    assert got is not None and [e.seq for e in got] == [5, 6, 7, 8, 9, 10]
    assert all(e.user_id == "u" for e in got)
    assert await log.since("u", 10, 10) == []
    every = await log.since("u", 0, 10)
    assert every is not None and [e.seq for e in every] == list(range(1, 11))
    assert await log.since("u", 0, 10, limit=5) is None  # more than the caller can take
    assert await log.since("u", 4, 12) is None  # claims events that do not exist


async def test_prune_keeps_the_most_recent_per_user_and_replay_notices(api: Api) -> None:
    log = EventLog(api.app[SESSIONS], keep_per_user=4)
    await _publish(log, "u", 10)
    await _publish(log, "small", 2)
    assert await log.prune() == 6
    assert await log.prune() == 0  # nothing new: nothing to do
    assert await log.since("u", 5, 10) is None  # seq 6 is gone
    kept = await log.since("u", 6, 10)
    assert kept is not None and [e.seq for e in kept] == [7, 8, 9, 10]
    small = await log.since("small", 0, 2)
    assert small is not None and len(small) == 2
    await _publish(log, "u", 3)  # 11..13: the next prune sees only this user
    assert await log.prune() == 3
    assert await log.last_seq("u") == 13
    assert (await log.since("u", 9, 13)) is not None


async def test_since_all_replays_in_id_order_unless_pruned(api: Api) -> None:
    log = EventLog(api.app[SESSIONS], keep_per_user=3)
    a = await _publish(log, "a", 2)
    b = await _publish(log, "b", 2)
    more_a = await _publish(log, "a", 2)
    every = [*a, *b, *more_a]
    top = await log.last_id()
    got = await log.since_all(every[0].id, top)
    assert got is not None and [e.id for e in got] == [e.id for e in every[1:]]
    assert await log.since_all(top, top) == []
    assert await log.since_all(every[0].id, top, limit=2) is None
    assert await log.prune() == 1  # a's first event
    # Anything from before a's oldest kept event may have lost a's pruned one: refused.
    assert await log.since_all(0, top) is None
    resumed = await log.since_all(a[0].id, top)
    assert resumed is not None and [e.id for e in resumed] == [e.id for e in every[1:]]


async def test_snapshot_reads_state_at_a_position(api: Api) -> None:
    log = api.app[EVENTS]
    await _publish(log, "u", 3)

    async def read() -> str:
        return "state"

    assert await log.snapshot("u", read) == (3, "state")
    position, _ = await log.snapshot(None, read)
    assert position == await log.last_id()
