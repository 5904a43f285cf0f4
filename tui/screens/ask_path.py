"""One path asked for: a local file to upload, where to save a download, a new folder's name.

The answer comes back through ``dismiss`` (None when cancelled). A check may refuse it in
place (the local file does not exist), so a typo costs one key, not the whole dialog. Local
paths complete as they are typed (tab or right arrow takes the suggestion), like a shell's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

# A check returns None when the answer is fine, else what is wrong with it.
Check = Callable[[str], str | None]


class LocalPaths(Suggester):
    """Completes the last component of a local path from what is on disk (folders end in /)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_local, value) if value else None


def complete_local(value: str) -> str | None:
    """``value`` with its last component completed from the disk (the first match by name),
    or None when nothing there starts with it."""
    expanded = os.path.expanduser(value)
    folder, slash, start = expanded.rpartition("/")
    where = Path(folder or "/") if slash else Path(".")
    try:
        names = sorted(entry.name for entry in where.iterdir() if entry.name.startswith(start))
    except OSError:
        return None
    if not names:
        return None
    name = names[0]
    suffix = "/" if (where / name).is_dir() else ""
    return value + name[len(start) :] + suffix


class AskPath(ModalScreen[str | None]):
    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(
        self,
        question: str,
        detail: str,
        value: str = "",
        *,
        local: bool = False,
        check: Check | None = None,
    ) -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.value = value
        self.local = local
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, classes="title", markup=False)
            yield Static(self.detail, markup=False)
            yield Input(
                self.value,
                id="ask-path",
                suggester=LocalPaths() if self.local else None,
                select_on_focus=False,
            )
            yield Static("", id="ask-path-error", classes="form-error", markup=False)
            yield Static("enter confirms · esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        answer = event.value.strip()
        problem = "a path is needed" if not answer else self.check(answer) if self.check else None
        if problem:
            self.query_one("#ask-path-error", Static).update(problem)
            return
        self.dismiss(answer)

    def action_cancel(self) -> None:
        self.dismiss(None)
