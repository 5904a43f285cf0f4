"""How a container command (``corral ls``, ``create``, ... ``volumes``) runs: on the server and
token given (``--server``/``--token``, else ``$CORRAL_SERVER``/``$CORRAL_TOKEN``), or else on the
local data directory's backend as the local admin (``corral.local``); its action gets a
``CorralClient``, and every failure becomes an exit code and one line on stderr.

Exit codes: 0 success, 1 the server refused (``error: <message>`` on stderr; with ``--json`` the
error body also goes to stdout), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from corral.client import ApiError, CorralClient, CorralClientError
from corral.options import SERVER, TOKEN, client_options, settings_of
from corral.output import print_json

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2

Action = Callable[[CorralClient, argparse.Namespace], Awaitable[int]]


class Usage(Exception):
    """A mistake in the command line that argparse cannot see (exit 2)."""


def add_command(
    sub: Any, name: str, action: Action, help_: str, description: str
) -> argparse.ArgumentParser:
    """A container command on ``sub`` (a parser's subparsers): the shared options, and
    ``action`` run by ``run``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_, description=description, parents=[client_options()]
    )
    parser.set_defaults(func=functools.partial(run, action=action))
    return parser


def run(args: argparse.Namespace, action: Action) -> int:
    """Run ``action`` with a client; map failures to exit codes and one line on stderr."""
    as_json = bool(getattr(args, "json", False))
    try:
        with _target(args) as (server, token):

            async def main() -> int:
                async with CorralClient(server, token) as client:
                    return await action(client, args)

            return asyncio.run(main())
    except Usage as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        if as_json:
            print_json(exc.body)
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_API_ERROR
    except CorralClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        return EXIT_OK  # following events ends with Ctrl+C: that is success


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[tuple[str, str | None]]:
    """The server URL and token to use: the ones given, or else the local data directory's
    backend as the local admin."""
    server = SERVER.value(args)
    if server:
        yield server, TOKEN.value(args)
        return
    if TOKEN.given(args):
        raise Usage("--token needs --server (without a server, the local data directory is used)")
    from backend.data_dir_lock import DataDirBusy
    from backend.server import BackendDidNotStart
    from corral.local import local_session

    try:
        with local_session(settings_of(args, port=0)) as local:
            yield local.url, local.token
    except DataDirBusy as exc:
        raise CorralClientError(f"{exc}, and has not published its address yet") from exc
    except BackendDidNotStart as exc:
        raise CorralClientError(f"the local backend did not start: {exc}") from exc
