"""The top bar: which backend, who, which tier, how much of the limit is used, and whether the
live connection is up (and the engine with it; with several engines, each one's health)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

CONNECTION_STYLE = {
    "connected": ("● live", "green"),
    "connecting": ("◌ connecting", "yellow"),
    "reconnecting": ("◌ reconnecting", "yellow"),
    "failed": ("✕ disconnected", "red"),
}


class StatusHeader(Static):
    backend = reactive("")
    user = reactive("")
    tier = reactive("")
    usage = reactive("")
    connection = reactive("connecting")
    engine = reactive("")
    # With several engines: each one's name and whether it is healthy.
    engines: reactive[tuple[tuple[str, bool], ...]] = reactive(())
    marked = reactive("")

    def render(self) -> Text:
        """Most important first, so a narrow terminal cuts only the backend's address."""
        label, style = CONNECTION_STYLE.get(self.connection, (self.connection, "yellow"))
        parts: list[tuple[str, str] | str] = [(label, style), "  ", ("Corral", "bold")]
        if self.engine:
            parts += ["  ", (self.engine, "bold red")]
        for index, (name, ok) in enumerate(self.engines):
            parts += ["  " if index == 0 else " "]
            parts += [("● " + name, "green") if ok else ("✕ " + name + " down", "bold red")]
        if self.user:
            parts += ["  ", self.user]
        if self.tier:
            parts += ["  ", ("tier ", "dim"), self.tier]
        if self.usage:
            parts += ["  ", self.usage, (" containers", "dim")]
        if self.marked:
            parts += ["  ", (self.marked, "bold")]
        parts += ["  ", (self.backend, "cyan")]
        return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")
