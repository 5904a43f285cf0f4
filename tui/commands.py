"""Command mode, as in k9s and vim: ``:`` opens a line at the bottom; enter runs it, esc leaves.

``:ls`` shows the containers, ``:volumes`` the kept volumes, ``:logs NAME`` a container's output,
``:start NAME`` (stop, restart, delete, shell, inspect, settings) selects NAME and acts on it,
``:sort COLUMN [desc]``, ``:filter TEXT``, ``:help``, ``:q``. NAME is a name, a database ID, a
Docker ID or a unique prefix of one; without it, the selected row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.suggester import SuggestFromList
from textual.widgets import Input

from tui.widgets.columns import SORTABLE

if TYPE_CHECKING:
    from tui.screens.main import MainScreen

ROW_VERBS = (
    "start",
    "stop",
    "restart",
    "delete",
    "shell",
    "inspect",
    "settings",
    "logs",
    "files",
)
WORDS = ("ls", "volumes", "sort", "filter", "help", "q", "quit", *ROW_VERBS)
USAGE = (
    ":ls  :volumes  :logs NAME  :files NAME  "
    ":start|stop|restart|delete|shell|inspect|settings NAME  "
    ":sort COLUMN [desc]  :filter TEXT  :help  :q"
)


class CommandLine(Input):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            placeholder="command: ls, volumes, logs NAME, stop NAME, sort memory, q (esc leaves)",
            suggester=SuggestFromList([f"{w} " if w in ROW_VERBS else w for w in WORDS]),
            **kwargs,
        )

    def on_mount(self) -> None:
        self.display = False

    def open(self) -> None:
        self.value = ""
        self.display = True
        self.focus()

    def close(self) -> None:
        self.display = False
        self.screen_main.table.focus()

    @property
    def screen_main(self) -> MainScreen:
        from tui.screens.main import MainScreen

        screen = self.screen
        assert isinstance(screen, MainScreen)
        return screen

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape":
            event.stop()
            self.close()

    @on(Input.Submitted)
    def _run(self, event: Input.Submitted) -> None:
        event.stop()
        line = event.value.strip().removeprefix(":")
        self.close()
        if line:
            self.run(line)

    def run(self, line: str) -> None:
        """Run one command line; a mistake is said with the usage."""
        main = self.screen_main
        word, _, rest = line.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word in ("q", "quit"):
            main.app.exit()
        elif word == "ls":
            main.action_clear_filter()
        elif word in ("volumes", "vol"):
            main.action_volumes()
        elif word == "help":
            main.action_help()
        elif word == "filter":
            main.action_filter()
            main.query_one("#table-filter", Input).value = rest
        elif word == "sort":
            column, _, order = rest.partition(" ")
            if column not in SORTABLE:
                main.notify(f"sort by one of: {', '.join(SORTABLE)}", severity="warning")
                return
            main.table.sort_on(column, reverse=order.strip().lower() in ("desc", "reverse"))
        elif word in ROW_VERBS:
            if rest:
                found = main.find(rest)
                if found is None:
                    main.notify(f"No container {rest!r} (a name or an ID)", severity="warning")
                    return
                main.select(found[0])
            getattr(main, f"action_{word}")()
        else:
            main.notify(f"Unknown command {word!r}. {USAGE}", severity="warning", timeout=8)
