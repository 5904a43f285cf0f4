"""The ``corral`` command.

``corral`` opens the console on the data directory's backend (the running one, else an embedded
one); ``corral serve`` runs the backend headless;
``corral user`` and ``corral token`` administer the local database; ``corral ls``, ``create``,
``start``, ``stop``, ``rm``, ``settings`` and ``events`` manage containers through the API client
(``corral.commands``), against ``--server`` or the data directory's backend.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.settings import ConfigError, Settings, load_settings
from corral.commands import EXIT_USAGE, add_commands, add_server_options, is_client_command
from corral.roles_cli import add_roles_commands
from corral.shapes import FULL_SCOPES


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    data_dir = Path(args.data_dir).expanduser() if getattr(args, "data_dir", None) else None
    return load_settings(data_dir=data_dir, **overrides)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="where the database, the signing key and volumes live "
        "(default: $XDG_DATA_HOME/corral, or ~/.local/share/corral)",
    )


def cmd_console(args: argparse.Namespace) -> int:
    """Open the console: on ``--server`` (or $CORRAL_SERVER, or the config file's ``server``), or
    on a backend embedded in this process, signed in as the local admin."""
    from tui.app import CorralApp
    from tui.config import ConsoleConfig

    config = ConsoleConfig.load()
    config.ensure_written()
    server = getattr(args, "server", None) or os.environ.get("CORRAL_SERVER") or config.server
    token = getattr(args, "token", None) or os.environ.get("CORRAL_TOKEN") or config.token
    if server:
        if not token:
            print("corral: --server needs --token (or $CORRAL_TOKEN)", file=sys.stderr)
            return 2
        CorralApp(server, token, config=config).run()
        return 0
    return _console_embedded(args, config)


def _console_embedded(args: argparse.Namespace, config: Any) -> int:
    """The console on the local data directory's backend: the one already serving it (another
    console, ``corral serve``, a command), or one embedded in this process."""
    from backend.admin import Admin
    from backend.data_dir_lock import DataDirBusy
    from backend.server import BackendDidNotStart, local_backend
    from tui.app import CorralApp

    settings = _settings(args, port=0)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The console owns the terminal: the backend logs to a file beside its database.
    _log_to_file(settings.data_dir / "console.log")

    async def token() -> str:
        async with Admin(settings) as admin:
            return await admin.local_admin_jwt()

    try:
        with local_backend(settings) as backend:
            CorralApp(
                backend.url, asyncio.run(token()), embedded=backend.embedded, config=config
            ).run()
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
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(os.environ.get("CORRAL_LOG", "INFO"))


def cmd_serve(args: argparse.Namespace) -> int:
    from backend.app import RuntimeMissing
    from backend.data_dir_lock import DataDirBusy
    from backend.server import serve

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = _settings(args, **overrides)
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
        return 2
    return 0


class _Refused(Exception):
    """A command line that cannot be carried out as given (exit 2, one line, no traceback)."""


def _new_password(args: argparse.Namespace) -> str | None:
    """The new user's password: given, read from stdin, from $CORRAL_PASSWORD, or asked for, but
    only on a terminal: a script without one gets a clear refusal, never a prompt at EOF."""
    if args.no_password:
        return None
    if args.password_stdin:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        password = line.rstrip("\r\n")
        if not password:
            raise _Refused("--password-stdin: no password on standard input (one line)")
        return password
    password = args.password or os.environ.get("CORRAL_PASSWORD")
    if password:
        return password
    if sys.stdin is None or not sys.stdin.isatty():
        raise _Refused(
            f"no terminal to ask for {args.name}'s password: pipe it to --password-stdin, set "
            "$CORRAL_PASSWORD, or add a token-only user with --no-password"
        )
    try:
        password = getpass.getpass(f"Password for {args.name}: ")
    except EOFError:
        password = ""
    if not password:
        raise _Refused("no password given (--no-password adds a token-only user)")
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    from backend.admin import Admin, AdminError

    settings = _settings(args)
    try:
        if args.tier not in settings.tiers:
            raise _Refused(
                f"unknown tier {args.tier!r}; the configured tiers are {', '.join(settings.tiers)}"
            )
        password = _new_password(args)
    except _Refused as exc:
        print(f"corral user add: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> None:
        async with Admin(settings) as admin:
            user = await admin.add_user(args.name, password, args.tier, args.admin)
            print(
                f"added user {user.username} (tier {user.tier}{', admin' if user.is_admin else ''})"
            )

    try:
        asyncio.run(run())
    except AdminError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from backend.admin import Admin

    async def run() -> None:
        async with Admin(_settings(args)) as admin:
            for user in await admin.list_users():
                flags = " admin" if user.is_admin else ""
                print(f"{user.username}\t{user.tier}{flags}\t{user.id}")

    asyncio.run(run())
    return 0


def cmd_token_issue(args: argparse.Namespace) -> int:
    from backend.admin import Admin, AdminError

    scopes = args.scope or sorted(FULL_SCOPES)

    async def run() -> None:
        async with Admin(_settings(args)) as admin:
            token, row = await admin.issue_token(args.user, scopes, args.name, args.days)
            print(token)
            print(f"scopes: {', '.join(row.scopes)}; shown once, keep it safe", file=sys.stderr)

    try:
        asyncio.run(run())
    except AdminError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from corral.agent import Agent, TokenRejected

    server = getattr(args, "server", None) or os.environ.get("CORRAL_SERVER")
    token = getattr(args, "token", None) or os.environ.get("CORRAL_TOKEN")
    if not server or not token:
        print("corral agent: --server and --token are required", file=sys.stderr)
        return 2
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
    _add_data_dir(parser)
    add_server_options(parser)
    parser.set_defaults(func=cmd_console)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the backend headless",
        description="Run the REST/WebSocket backend until interrupted.",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8420)")
    _add_data_dir(serve)
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users", description="Manage users.")
    user_sub = user.add_subparsers(title="user commands", metavar="COMMAND", required=True)
    add = user_sub.add_parser("add", help="add a user", description="Add a registered user.")
    add.add_argument("name")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument(
        "--password",
        help="the password (visible to other users of this host: prefer --password-stdin; "
        "default: $CORRAL_PASSWORD, else asked for on a terminal)",
    )
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    secret.add_argument("--no-password", action="store_true", help="token sign-in only")
    add.add_argument(
        "--tier",
        default="free",
        metavar="TIER",
        help="one of the configured tiers: guest, free, pro, enterprise, and any that "
        "config.toml adds (default free)",
    )
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    _add_data_dir(add)
    add.set_defaults(func=cmd_user_add)
    lst = user_sub.add_parser("list", help="list users", description="List registered users.")
    _add_data_dir(lst)
    lst.set_defaults(func=cmd_user_list)

    token = sub.add_parser("token", help="manage API tokens", description="Manage API tokens.")
    token_sub = token.add_subparsers(title="token commands", metavar="COMMAND", required=True)
    issue = token_sub.add_parser(
        "issue", help="issue an API token", description="Issue an API token for a user."
    )
    issue.add_argument("--user", required=True, help="the user the token acts as")
    issue.add_argument(
        "--scope",
        action="append",
        choices=sorted(FULL_SCOPES),
        help="a scope to grant (repeat for both; default read and write)",
    )
    issue.add_argument("--name", default="cli", help="a label for the token")
    issue.add_argument("--days", type=int, help="expire after this many days")
    _add_data_dir(issue)
    issue.set_defaults(func=cmd_token_issue)
    add_roles_commands(sub, _add_data_dir, _settings)

    agent = sub.add_parser(
        "agent",
        help="attach this machine to a backend",
        description="Dial out to a Corral backend and serve terminals on this machine. Needs an "
        'agent token: POST /api/tokens with scopes ["agent"].',
    )
    agent.add_argument(
        "--server", default=argparse.SUPPRESS, help="the backend's URL (or $CORRAL_SERVER)"
    )
    agent.add_argument(
        "--token", default=argparse.SUPPRESS, help="an agent token (or $CORRAL_TOKEN)"
    )
    agent.add_argument("--name", help="how this machine shows in the list (default: hostname)")
    agent.set_defaults(func=cmd_agent)

    add_commands(sub, _add_data_dir)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (0 success, 1 refused by the server, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2), as a return value
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    # The container commands print results for scripts; the backend's info lines would be noise.
    quiet = is_client_command(args.func)
    logging.basicConfig(
        level=os.environ.get("CORRAL_LOG", "WARNING" if quiet else "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.func(args)
    except ConfigError as exc:  # the configuration file or a CORRAL_* variable: said, not traced
        print(f"corral: the configuration is not valid: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    sys.exit(main())
