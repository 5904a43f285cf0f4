"""``corral user`` and ``corral token``: users and API tokens, straight on the local database
(``backend.admin``), whether or not a backend runs: an operator bootstraps the first admin here.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from corral.options import DATA_DIR, PASSWORD, settings_of
from corral.runner import EXIT_USAGE
from corral.shapes import FULL_SCOPES


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
    password = PASSWORD.value(args)
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

    settings = settings_of(args)
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
        async with Admin(settings_of(args)) as admin:
            for user in await admin.list_users():
                flags = " admin" if user.is_admin else ""
                print(f"{user.username}\t{user.tier}{flags}\t{user.id}")

    asyncio.run(run())
    return 0


def cmd_token_issue(args: argparse.Namespace) -> int:
    from backend.admin import Admin, AdminError

    scopes = args.scope or sorted(FULL_SCOPES)

    async def run() -> None:
        async with Admin(settings_of(args)) as admin:
            token, row = await admin.issue_token(args.user, scopes, args.name, args.days)
            print(token)
            print(f"scopes: {', '.join(row.scopes)}; shown once, keep it safe", file=sys.stderr)

    try:
        asyncio.run(run())
    except AdminError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 1
    return 0


def add_admin_commands(sub: Any) -> None:
    """``corral user add|list`` and ``corral token issue``, on the ``corral`` parser's
    subparsers."""
    user = sub.add_parser("user", help="manage users", description="Manage users.")
    user_sub = user.add_subparsers(title="user commands", metavar="COMMAND", required=True)
    add = user_sub.add_parser("add", help="add a user", description="Add a registered user.")
    add.add_argument("name")
    secret = add.add_mutually_exclusive_group()
    PASSWORD.add(secret)
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
    DATA_DIR.add(add)
    add.set_defaults(func=cmd_user_add)
    lst = user_sub.add_parser("list", help="list users", description="List registered users.")
    DATA_DIR.add(lst)
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
    DATA_DIR.add(issue)
    issue.set_defaults(func=cmd_token_issue)
