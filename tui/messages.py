"""Messages from the console's workers to its widgets: all I/O happens in workers, and what it
brings back arrives as one of these."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class BackendEvent(Message):
    """One message from the event stream (a ``list`` or a change)."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        super().__init__()


class ConnectionChanged(Message):
    """The event stream's state: connecting, connected, reconnecting, or failed."""

    def __init__(self, state: str, detail: str = "") -> None:
        self.state = state
        self.detail = detail
        super().__init__()


class ProfileLoaded(Message):
    """Who we are and what the backend offers: ``/api/me``, images, roles, health."""

    def __init__(
        self,
        me: dict[str, Any],
        images: list[dict[str, Any]],
        roles: list[dict[str, Any]],
        health: dict[str, Any],
    ) -> None:
        self.me = me
        self.images = images
        self.roles = roles
        self.health = health
        super().__init__()


class HealthChanged(Message):
    """The backend's health, read again (every ``HEALTH_INTERVAL_S``): its engines' state."""

    def __init__(self, health: dict[str, Any]) -> None:
        self.health = health
        super().__init__()


class StatsUpdate(Message):
    """The latest usage samples of running containers (from the stats stream)."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        super().__init__()
