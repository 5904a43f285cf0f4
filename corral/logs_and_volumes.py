"""``corral logs`` (a container's output) and ``corral volumes`` (kept volumes), on
``corral.client`` like the other container commands (see ``corral.commands``)."""

from __future__ import annotations

import argparse
from typing import Any

from corral.client import CorralClient, KeptVolume
from corral.output import print_json, table
from corral.runner import EXIT_OK, add_command


async def logs(client: CorralClient, args: argparse.Namespace) -> int:
    """Print the output; with ``-f`` follow it until the container stops (or Ctrl+C)."""
    async for line in client.logs(
        args.id, tail=args.tail, follow=args.follow, timestamps=args.timestamps
    ):
        print(line, flush=args.follow)
    return EXIT_OK


def _size(mb: int | None) -> str:
    if mb is None:
        return "-"
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb}M"


def _volume_row(v: KeptVolume) -> list[str]:
    return [v["name"], _size(v["size_mb"]), _size(v["used_mb"]), v["container_name"], v["kept_at"]]


async def list_volumes(client: CorralClient, args: argparse.Namespace) -> int:
    listing = await client.volumes(all_users=args.all)
    if args.json:
        print_json(listing)
        return EXIT_OK
    header = ["NAME", "SIZE", "USED", "FROM", "KEPT"]
    rows = [_volume_row(v) for v in listing["volumes"]]
    if args.all:  # an operator's view: whose each one is
        header.append("OWNER")
        for row, volume in zip(rows, listing["volumes"], strict=True):
            row.append(volume["owner_id"])
    print(table(header, rows))
    total = sum(v["size_mb"] for v in listing["volumes"])
    print(
        f"{listing['count']} kept volume(s), {_size(total)} counted against the tier's disk; "
        "reattach one with: corral create --volume NAME, or delete it: corral volumes rm NAME"
    )
    return EXIT_OK


async def remove_volume(client: CorralClient, args: argparse.Namespace) -> int:
    result = await client.delete_volume(args.name)
    if args.json:
        print_json(result)
    else:
        print(f"{result['message']}: {result['name']}")
    return EXIT_OK


def add_logs_and_volumes(sub: Any) -> None:
    """The ``logs`` and ``volumes`` commands, with the container commands' options."""
    p = add_command(
        sub,
        "logs",
        logs,
        "show a container's output",
        "Show a container's output (its sandbox's start and stop lines, and whatever is written "
        "to /proc/1/fd/1 inside it). -f follows it until the container stops or Ctrl+C.",
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument(
        "--tail", type=int, default=200, metavar="N", help="the last N lines (1-10000; 200)"
    )
    p.add_argument("-t", "--timestamps", action="store_true", help="prefix the engine's time")

    p = add_command(
        sub,
        "volumes",
        list_volumes,
        "list or delete kept volumes",
        "Kept volumes: the data of containers deleted with --keep-volume. They count against your "
        "tier's disk until attached or deleted. With no command, lists yours (--all: everyone's, "
        "for an operator, who may delete any); `corral create --volume NAME` attaches one to a "
        "new container.",
    )
    p.add_argument("--all", action="store_true", help="every user's (admins only)")
    actions = p.add_subparsers(title="volume commands", metavar="COMMAND")
    rm = add_command(
        actions, "rm", remove_volume, "delete a kept volume", "Delete a kept volume and its data."
    )
    rm.add_argument("name", metavar="NAME")
