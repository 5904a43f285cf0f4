"""The options that several ``corral`` commands share, declared once: each with its flag, its
help and the environment variable it falls back to; and how a command reads them.

Every shared option is added with ``default=SUPPRESS``: it is absent from the parsed namespace
unless given, so ``corral --server U ls`` and ``corral ls --server U`` both work and neither
position overwrites the other. ``Option.value`` then applies the one fallback: the command line,
else the environment.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from backend.settings import Settings


class Declares(Protocol):
    """What an option is declared on: a parser, an argument group, a mutually exclusive one."""

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action: ...


@dataclass(frozen=True)
class Option:
    """A shared option: ``--flag VALUE``, falling back to ``$env`` when not given."""

    flag: str
    metavar: str
    help: str
    env: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def add(self, parser: Declares, help: str | None = None) -> None:
        """Declare it on ``parser`` (or a group of it); ``help`` replaces the usual text."""
        parser.add_argument(
            self.flag, metavar=self.metavar, default=argparse.SUPPRESS, help=help or self.help
        )

    def given(self, args: argparse.Namespace) -> str | None:
        """The value on the command line, if any."""
        value = getattr(args, self.dest, None)
        return str(value) if value else None

    def value(self, args: argparse.Namespace) -> str | None:
        """The value on the command line, else in the environment, else None."""
        return self.given(args) or (os.environ.get(self.env) or None if self.env else None)


DATA_DIR = Option(
    "--data-dir",
    "DIR",
    "where the database, the signing key and volumes live "
    "(default: $CORRAL_DATA_DIR, else $XDG_DATA_HOME/corral, or ~/.local/share/corral)",
)
SERVER = Option(
    "--server",
    "URL",
    "the backend's URL (default: $CORRAL_SERVER; without one, the backend already serving the "
    "local data directory, else one started in this process)",
    env="CORRAL_SERVER",
)
TOKEN = Option(
    "--token",
    "TOKEN",
    "a JWT or API token for --server (default: $CORRAL_TOKEN)",
    env="CORRAL_TOKEN",
)
PASSWORD = Option(
    "--password",
    "PASSWORD",
    "the password (visible to other users of this host: prefer --password-stdin; "
    "default: $CORRAL_PASSWORD, else asked for on a terminal)",
    env="CORRAL_PASSWORD",
)


def settings_of(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings for ``--data-dir`` (when given) and ``overrides``."""
    from backend.settings import load_settings

    data_dir = DATA_DIR.given(args)
    return load_settings(data_dir=Path(data_dir).expanduser() if data_dir else None, **overrides)


def client_options() -> argparse.ArgumentParser:
    """The options of every container command (``ls``, ``create``, ... ``volumes``), as the
    parent parser each of them is made with."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server")
    SERVER.add(group)
    TOKEN.add(group)
    parent.add_argument("--json", action="store_true", help="print the API's JSON answer")
    DATA_DIR.add(parent)
    # They print results for scripts: the backend's info lines would be noise.
    parent.set_defaults(log_level="WARNING")
    return parent
