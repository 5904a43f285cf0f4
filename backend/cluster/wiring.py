"""How this replica's parts hear the others (PostgreSQL only; see ``backend.cluster``).

- Events: the log is read from the table on every ``NOTIFY`` (``backend.events.feed``); each
  event also drops the cached list of its user, wherever it was written.
- Hints: a write that announces nothing (a terminal's ``last_used_at``) drops the owner's cached
  list on every replica; a revoked token is forgotten by every replica's token memory, and its
  open streams end on every replica.
- Every (re)connect of the bus: every cache goes, and the log is caught up from the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.auth.live import LiveStreams
from backend.auth.principal import Authenticator
from backend.cluster.keys import EVENTS_CHANNEL
from backend.cluster.node import Cluster
from backend.containers.repository import ContainerRepository
from backend.events.log import Event, EventLog

LISTS = "lists"  # {"user": id}: that user's rows changed without an event
TOKEN = "token"  # {"id": token id, "end": [kind, message] or None}: revoked


def share_tokens(
    cluster: Cluster, authenticator: Authenticator, live: LiveStreams
) -> Callable[[str], None]:
    """Revocations reach every replica; returns what to call when a token is revoked here."""

    def forget_everywhere(token_id: str) -> None:
        authenticator.forget_token(token_id)
        cluster.hint(TOKEN, id=token_id, end=None)

    def end_everywhere(kind: str, token_id: str, message: str) -> None:
        cluster.hint(TOKEN, id=token_id, end=[kind, message])

    def heard(message: dict[str, Any]) -> None:
        token_id = str(message.get("id"))
        authenticator.forget_token(token_id)
        end = message.get("end")
        if isinstance(end, list) and len(end) == 2:
            live.end_here(str(end[0]), token_id, str(end[1]))

    live.relay = end_everywhere
    cluster.on_hint(TOKEN, heard)
    return forget_everywhere


async def share_events(
    cluster: Cluster,
    events: EventLog,
    repository: ContainerRepository,
    authenticator: Authenticator,
) -> None:
    """The event log written by every replica, delivered here from the table; list caches
    dropped on every replica's writes. Call before the bus starts."""
    feed = events.share()
    await feed.start()

    def event_seen(event: Event) -> None:
        repository.lists_changed(event.user_id)

    def quietly_changed(user_id: str) -> None:
        cluster.hint(LISTS, user=user_id)

    def lists_hint(message: dict[str, Any]) -> None:
        repository.lists_changed(str(message.get("user")))

    async def reconnected() -> None:
        # Whatever was said while not listening is lost: forget everything, read the log.
        repository.lists_changed(None)
        authenticator.forget_all()
        await feed.catch_up()

    events.add_listener(event_seen, first=True)
    repository.quietly_changed = quietly_changed
    cluster.on_hint(LISTS, lists_hint)
    cluster.bus.on(EVENTS_CHANNEL, lambda _payload: feed.wake())
    cluster.bus.on_connect(reconnected)
