"""The container commands of ``corral`` (``ls``, ``create``, ``start``, ``stop``, ``rm``,
``settings``, ``shell``, ``events``; ``logs`` and ``volumes`` in ``corral.logs_and_volumes``, ``cp``
in ``corral.copy_cli``), for
people and scripts, all on ``corral.client``. Where they connect and how failures become exit
codes is ``corral.runner``'s; their shared options are ``corral.options``'.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, cast

from corral.client import (
    Container,
    ContainerList,
    CorralClient,
    CorralClientError,
    EventMessage,
    EventType,
)
from corral.copy_cli import add_cp
from corral.engines_cli import add_engine_commands
from corral.logs_and_volumes import add_logs_and_volumes
from corral.output import print_json as _print_json
from corral.output import table as _table
from corral.runner import EXIT_API_ERROR, EXIT_OK, Action, Usage, add_command

# -- the commands -------------------------------------------------------------------------------


def _short(ident: str) -> str:
    return ident[:12] if len(ident) == 64 else ident


def _row(c: Container) -> list[str]:
    res = c["resources"]
    return [
        _short(c["id"]),
        c["name"],
        c["status"],
        str(c["image"]),
        f"{res['memory_mb']}M",
        f"{res['cpu_shares']}m",
        f"{res['disk_mb']}M",
    ]


async def ls(client: CorralClient, args: argparse.Namespace) -> int:
    listing = await client.list_containers(all_users=args.all)
    if args.json:
        _print_json(listing)
        return EXIT_OK
    header = ["ID", "NAME", "STATUS", "IMAGE", "MEMORY", "CPU", "DISK"]
    rows = [_row(c) for c in listing["containers"]]
    engines = {str(c.get("engine") or "local") for c in listing["containers"]}
    if engines != {"local"} and engines:  # several engines: say where each one is
        header.append("ENGINE")
        for row, item in zip(rows, listing["containers"], strict=True):
            row.append(str(item.get("engine") or "local"))
    print(_table(header, rows))
    print(f"{listing['count']} of {listing['limit']} containers")
    return EXIT_OK


async def create(client: CorralClient, args: argparse.Namespace) -> int:
    image = args.image
    if image is None:
        available = [i["name"] for i in (await client.images())["images"] if i.get("available")]
        if not available:
            raise CorralClientError("the server has no image available; pass --image")
        image = available[0]
    made = await client.create_container(
        image,
        name=args.name,
        role=args.role,
        memory_mb=args.memory,
        cpu_shares=args.cpu,
        disk_mb=args.disk,
        environment=dict(args.env) if args.env else None,
        labels=dict(args.label) if args.label else None,
        volume=args.volume,
        wait=args.wait,
    )
    if args.json:
        _print_json(made)
    else:
        print(f"{made['name']}  {_short(made['id'])}  {made['status']}")
    return EXIT_OK


def _lifecycle(verb: str) -> Action:
    async def action(client: CorralClient, args: argparse.Namespace) -> int:
        result: Any
        if verb == "start":
            result = await client.start_container(args.id)
        elif verb == "stop":
            result = await client.stop_container(args.id)
        else:
            result = await client.delete_container(args.id, keep_volume=args.keep_volume)
        if args.json:
            _print_json(result)
        else:
            print(f"{result['message']}: {result['name']} ({_short(result['id'])})")
        return EXIT_OK

    return action


async def settings(client: CorralClient, args: argparse.Namespace) -> int:
    if all(v is None for v in (args.name, args.memory, args.cpu, args.disk)):
        raise Usage("settings: give at least one of --name, --memory, --cpu, --disk")
    result = await client.update_settings(
        args.id, name=args.name, memory_mb=args.memory, cpu_shares=args.cpu, disk_mb=args.disk
    )
    if args.json:
        _print_json(result)
    else:
        restarted = " (restarted)" if result.get("restarted") else ""
        c = result["container"]
        print(f"{result['message']}{restarted}: {c['name']} ({_short(c['id'])})")
    return EXIT_OK


async def shell(client: CorralClient, args: argparse.Namespace) -> int:
    """An interactive shell on this terminal; exits with the shell's code (1 when detached)."""
    from corral.client.terminal import attach

    print(f"Connecting to {args.id}; ctrl+] detaches.", file=sys.stderr)
    end = await attach(client, args.id)
    print(f"\r\n[{end.message}]", file=sys.stderr)
    if end.detached:
        return EXIT_OK
    return EXIT_API_ERROR if end.code is None else int(end.code)


class _ConnectionNotes:
    """What ``corral events`` says on stderr about its connection: that it was lost (and why),
    each retry with its delay, and that it is back; events alone go to stdout."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.connected_once = False
        self.lost_at: float | None = None
        self.last_reason = ""

    def state(self, state: str) -> None:
        if state != "connected":
            return
        if self.lost_at is not None:
            down = time.monotonic() - self.lost_at
            _note(
                f"connected again to {self.server} after {down:.1f} s; resuming where it left off"
            )
        self.connected_once = True
        self.lost_at = None

    def retry(self, delay_s: float, reason: str) -> None:
        """Every retry is said (a silent wait looks like a hang); a reason only when new."""
        if self.lost_at is None:
            self.lost_at = time.monotonic()
            lost = "lost the connection to" if self.connected_once else "cannot connect to"
            _note(f"{lost} {self.server}: {reason}")
            _note(f"retrying in {delay_s:.1f} s")
        elif reason != self.last_reason:
            _note(f"retrying in {delay_s:.1f} s ({reason})")
        else:
            _note(f"retrying in {delay_s:.1f} s")
        self.last_reason = reason


def _note(text: str) -> None:
    print(f"corral events: {text}", file=sys.stderr, flush=True)


async def events(client: CorralClient, args: argparse.Namespace) -> int:
    """Follow the stream, reconnecting as needed, until Ctrl+C (or ``--count`` messages)."""
    printed = 0
    notes = _ConnectionNotes(client.server)
    stream = client.events(
        since=args.since, all_users=args.all, on_state=notes.state, on_retry=notes.retry
    )
    async with stream:
        async for message in stream:
            if args.json:
                _print_json(message)
            else:
                print(_describe(message), flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                break
    return EXIT_OK


def _describe(m: EventMessage) -> str:
    c = m["container"]
    if m["type"] == EventType.LIST:
        listing = cast(ContainerList, c)
        count, limit = listing["count"], listing["limit"]
        return f"{m['timestamp']}  list  {count} of {limit} containers  (seq {m['seq']})"
    name = c.get("name") or _short(str(c.get("id", "")))
    if m["type"] == EventType.CONTAINER_PROGRESS:
        detail = f"{c.get('progress', '')}%  {c.get('message', '')}"
    else:
        detail = str(c.get("status", ""))
    return f"{m['timestamp']}  {m['type']}  {name}  {detail}  (seq {m['seq']})"


# -- the parsers --------------------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_commands(sub: Any) -> None:
    """The container commands, on ``sub`` (the ``corral`` parser's subparsers)."""
    p = add_command(sub, "ls", ls, "list containers", "List your containers (and agents).")
    p.add_argument("--all", action="store_true", help="every user's (admins only)")
    _add_create(sub)
    for verb, text in (("start", "start a container"), ("stop", "stop a container")):
        _id_argument(add_command(sub, verb, _lifecycle(verb), text, f"{text.capitalize()}."))
    p = add_command(
        sub,
        "rm",
        _lifecycle("rm"),
        "delete a container",
        "Delete a container and, unless kept, its volume.",
    )
    _id_argument(p)
    p.add_argument("--keep-volume", action="store_true", help="keep the data volume")
    p = add_command(
        sub,
        "settings",
        settings,
        "rename or resize a container",
        "Change a container's name or resources. Resizing a running container restarts it.",
    )
    _id_argument(p)
    p.add_argument("--name", help="the new name")
    _resource_options(p)
    p = add_command(
        sub,
        "shell",
        shell,
        "open a shell in a container or on an agent",
        "An interactive shell (TTY) in a running container, or on an agent (agent:<uuid>). "
        "ctrl+] detaches; the exit code is the shell's.",
    )
    _id_argument(p)
    _add_events(sub)
    add_logs_and_volumes(sub)
    add_engine_commands(sub)
    add_cp(sub)


def _add_create(sub: Any) -> None:
    p = add_command(
        sub,
        "create",
        create,
        "create a container",
        "Create a sandboxed container. Without --wait it answers at once (status creating); "
        "follow `corral events` for progress.",
    )
    p.add_argument("--name", help="1-64 letters, digits and hyphens (default: generated)")
    p.add_argument("--image", help="an image from the server's catalog (default: the first one)")
    p.add_argument("--role", help="a role from the server's catalog (default: barebone)")
    _resource_options(p)
    p.add_argument(
        "--env",
        action="append",
        type=_key_value,
        metavar="K=V",
        help="an environment variable (repeatable; never shown back)",
    )
    p.add_argument(
        "--label", action="append", type=_key_value, metavar="K=V", help="a label (repeatable)"
    )
    p.add_argument(
        "--volume", metavar="NAME", help="attach a kept volume (corral volumes) as /home/user"
    )
    p.add_argument("--wait", action="store_true", help="return once the container runs")


def _add_events(sub: Any) -> None:
    p = add_command(
        sub,
        "events",
        events,
        "follow container events",
        "Print every change as it happens (first a list), until Ctrl+C. Reconnects on its own "
        "and resumes where it left off; says on stderr when the connection is lost (a silent "
        "server within seconds), each retry and its delay, and when it is back.",
    )
    p.add_argument("--since", type=int, metavar="SEQ", help="resume after this seq")
    p.add_argument("--all", action="store_true", help="every user's events (admins only)")
    p.add_argument("--count", type=int, metavar="N", help="exit after N messages")


def _id_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "id",
        metavar="ID",
        help="the container's name, database ID, Docker ID or a unique Docker ID prefix (12+); "
        "the name and the database ID survive rebuilds",
    )


def _resource_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", type=int, metavar="MB", help="memory in MB")
    p.add_argument("--cpu", type=int, metavar="MILLICORES", help="CPU in millicores (1000 = 1)")
    p.add_argument("--disk", type=int, metavar="MB", help="disk quota in MB")
