"""The ``corral`` command.

``corral`` opens the console on the data directory's backend (the running one, else an embedded
one); ``corral serve`` runs the backend headless; ``corral agent`` attaches this machine to a
backend; ``corral user`` and ``corral token`` administer the local database
(``corral.admin_cli``); ``corral roles`` builds role images (``corral.roles_cli``); ``corral
ls``, ``create``, ``start``, ``stop``, ``rm``, ``settings``, ``shell``, ``events``, ``logs`` and
``volumes`` manage containers through the API client (``corral.commands``), against
``--server`` or the data directory's backend.

The options several commands share, and their environment fallbacks, are declared once in
``corral.options``; reaching the local backend as the local admin is ``corral.local``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.settings import ConfigError
from corral.admin_cli import add_admin_commands
from corral.commands import add_commands
from corral.options import DATA_DIR, SERVER, TOKEN, settings_of
from corral.roles_cli import add_roles_commands
from corral.runner import EXIT_USAGE

if TYPE_CHECKING:
    from tui.config import ConsoleConfig

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _log_level(default: str) -> str:
    """``$CORRAL_LOG``, else the command's own level."""
    return os.environ.get("CORRAL_LOG", default)


def cmd_console(args: argparse.Namespace) -> int:
    """Open the console: on ``--server`` (or $CORRAL_SERVER, or the config file's ``server``), or
    on a backend embedded in this process, signed in as the local admin."""
    from tui.app import CorralApp
    from tui.config import ConsoleConfig

    config = ConsoleConfig.load()
    config.ensure_written()
    server = SERVER.value(args) or config.server
    token = TOKEN.value(args) or config.token
    if server:
        if not token:
            print("corral: --server needs --token (or $CORRAL_TOKEN)", file=sys.stderr)
            return EXIT_USAGE
        CorralApp(server, token, config=config).run()
        return 0
    return _console_embedded(args, config)


def _console_embedded(args: argparse.Namespace, config: ConsoleConfig) -> int:
    """The console on the local data directory's backend: the one already serving it (another
    console, ``corral serve``, a command), or one embedded in this process."""
    from backend.data_dir_lock import DataDirBusy
    from backend.server import BackendDidNotStart
    from corral.local import local_session
    from tui.app import CorralApp

    settings = settings_of(args, port=0)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The console owns the terminal: the backend logs to a file beside its database.
    _log_to_file(settings.data_dir / "console.log")
    try:
        with local_session(settings) as local:
            CorralApp(local.url, local.token, embedded=local.embedded, config=config).run()
    except (BackendDidNotStart, DataDirBusy) as exc:
        # The console still opens, and says what is wrong and how to fix it.
        CorralApp(
            "http://127.0.0.1:0",
            "",
            embedded=True,
            config=config,
            startup_error=f"The embedded backend did not start: {exc}",
        ).run()
        return 1
    return 0


def _log_to_file(path: Path) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(_log_level("INFO"))


def cmd_serve(args: argparse.Namespace) -> int:
    from backend.app import RuntimeMissing
    from backend.data_dir_lock import DataDirBusy
    from backend.server import serve

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = settings_of(args, **overrides)
    try:
        serve(settings)
    except DataDirBusy as exc:
        use = f"corral --server {exc.address.url}" if exc.address else "corral --server URL"
        print(
            f"corral serve: {exc}. One data directory has one backend: stop that one first, or "
            f"use it ({use}; commands without --server find it by themselves).",
            file=sys.stderr,
        )
        return 1
    except RuntimeMissing as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from corral.agent import Agent, TokenRejected

    server, token = SERVER.value(args), TOKEN.value(args)
    if not server or not token:
        print("corral agent: --server and --token are required", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(Agent(server, token, args.name).run_forever())
    except TokenRejected as exc:
        print(f"corral agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="A console for per-user sandboxed containers (Docker + gVisor). With no "
        "command, opens the console on the data directory's backend (the running one, else "
        "one embedded in this process).",
    )
    DATA_DIR.add(parser)
    SERVER.add(parser)
    TOKEN.add(parser)
    parser.set_defaults(func=cmd_console, log_level="INFO")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(sub)
    add_admin_commands(sub)
    add_roles_commands(sub)
    _add_agent(sub)
    add_commands(sub)
    return parser


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the backend headless",
        description="Run the REST/WebSocket backend until interrupted.",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8420)")
    DATA_DIR.add(serve)
    serve.set_defaults(func=cmd_serve)


def _add_agent(sub: Any) -> None:
    agent = sub.add_parser(
        "agent",
        help="attach this machine to a backend",
        description="Dial out to a Corral backend and serve terminals on this machine. Needs an "
        'agent token: POST /api/tokens with scopes ["agent"].',
    )
    SERVER.add(agent, help="the backend's URL (default: $CORRAL_SERVER)")
    TOKEN.add(agent, help="an agent token (default: $CORRAL_TOKEN)")
    agent.add_argument("--name", help="how this machine shows in the list (default: hostname)")
    agent.set_defaults(func=cmd_agent)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (0 success, 1 refused by the server, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2), as a return value
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    logging.basicConfig(level=_log_level(args.log_level), format=LOG_FORMAT)
    try:
        result: int = args.func(args)
    except ConfigError as exc:  # the configuration file or a CORRAL_* variable: said, not traced
        print(f"corral: the configuration is not valid: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    sys.exit(main())
