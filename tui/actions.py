"""Every action of the dashboard, declared once.

The registry feeds the screen's key bindings, the ``[keys]`` overrides in console.toml (by ID),
the command palette (with the key as it is now, overrides included), the help screen and the
config file's list of IDs, so none of them can drift from the others (as harlequin's actions.py
does for its editor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingType

if TYPE_CHECKING:
    from tui.app import CorralApp


@dataclass(frozen=True)
class Action:
    id: str  # the binding ID (console.toml [keys]), and the screen's action_<id>
    keys: str  # the default keys, comma-separated
    label: str  # the footer's word
    title: str  # the palette's title
    help: str  # what it does, for help and the palette
    footer: bool = False  # the footer is kept to what fits in 80 columns
    priority: bool = False


ACTIONS: tuple[Action, ...] = (
    Action("create", "n", "New", "New container", "Create a container", footer=True),
    Action("start", "s", "Start", "Start", "Start the selected (or marked) containers", True),
    Action("stop", "x", "Stop", "Stop", "Stop the selected (or marked) containers", True),
    Action("restart", "r", "Restart", "Restart", "Stop then start the selected containers"),
    Action("delete", "d", "Delete", "Delete", "Delete the selected containers", True),
    Action("settings", "e", "Settings", "Settings", "Rename or resize the selected container"),
    Action(
        "shell",
        "enter",
        "Shell",
        "Shell",
        "Open a shell in the selected container or agent (ctrl+] comes back)",
        footer=True,
    ),
    Action("logs", "l", "Logs", "Logs", "Show the selected container's output"),
    Action(
        "files",
        "f",
        "Files",
        "Files",
        "Browse the selected container's files: upload, download, delete, new folder",
    ),
    Action("inspect", "y", "Inspect", "Inspect", "Show the selected container as the API has it"),
    Action("volumes", "v", "Volumes", "Volumes", "Kept volumes: reattach or delete them"),
    Action("filter", "slash", "Filter", "Filter", "Filter the table", footer=True),
    Action("command", "colon", "Command", "Command", "Command mode (:ls, :logs NAME, :q, ...)"),
    Action("sort", "o", "Sort", "Sort", "Sort by the next column"),
    Action("reverse_sort", "O", "Reverse", "Reverse sort", "Reverse the sort order"),
    Action("mark", "space", "Mark", "Mark", "Mark or unmark the row (actions apply to all marked)"),
    Action("copy_id", "c", "Copy ID", "Copy ID", "Copy the stable database ID of the row"),
    Action("toggle_log", "L", "Events", "Toggle event log", "Show or hide the event log"),
    Action("toggle_details", "i", "Details", "Toggle details", "Show or hide the details pane"),
    Action("help", "question_mark", "Help", "Help", "Every key and what it does", footer=True),
    Action("quit", "q", "Quit", "Quit", "Leave the console (containers keep running)", True),
)
BY_ID = {action.id: action for action in ACTIONS}
NAVIGATION = (
    ("↑ ↓  j k", "Move the cursor"),
    ("pgup pgdn", "A page up or down"),
    ("home end  g G", "First or last row"),
    ("shift+↑ ↓", "Mark rows while moving"),
    ("esc", "Clear the filter, then the marks"),
    ("ctrl+p", "Command palette: every action, searchable"),
)


def bindings() -> list[BindingType]:
    return [
        Binding(a.keys, a.id, a.label, show=a.footer, id=a.id, priority=a.priority) for a in ACTIONS
    ]


def key_display(app: CorralApp, action: Action) -> str:
    """The action's keys as the user presses them now (``[keys]`` overrides included)."""
    keys = app.config.keys.get(action.id, action.keys)
    return ", ".join(app.get_key_display(Binding(key.strip(), "")) for key in keys.split(","))


def key_ids() -> str:
    return ", ".join(action.id for action in ACTIONS)
