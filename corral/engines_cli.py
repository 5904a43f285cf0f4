"""``corral engines`` (administrators): the Docker engines with their health, sandboxes and free
memory; ``corral engines drain NAME`` stops placing new sandboxes there, ``undrain`` allows it
again. Through the API, like ``corral ls``."""

from __future__ import annotations

import argparse
from typing import Any

from corral.client import CorralClient, Engine
from corral.output import print_json, table
from corral.runner import EXIT_OK, add_command


def _mb(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.1f}G" if abs(value) >= 1024 else f"{value}M"


def _engine_row(e: Engine) -> list[str]:
    health = "ok" if e["docker"] == "ok" and e["runtime"] == "ok" else "down"
    if e["docker"] == "ok" and e["runtime"] != "ok":
        health = "no runtime"
    return [
        e["name"],
        health,
        "yes" if e["draining"] else "no",
        str(e["sandboxes"]),
        _mb(e["memory_free_mb"]),
        _mb(e["memory_total_mb"]),
    ]


async def list_engines(client: CorralClient, args: argparse.Namespace) -> int:
    listing = await client.engines()
    if args.json:
        print_json(listing)
        return EXIT_OK
    header = ["ENGINE", "HEALTH", "DRAINED", "SANDBOXES", "FREE", "MEMORY"]
    print(table(header, [_engine_row(e) for e in listing["engines"]]))
    return EXIT_OK


def _drain(draining: bool) -> Any:
    async def action(client: CorralClient, args: argparse.Namespace) -> int:
        if draining:
            engine = await client.drain_engine(args.name)
        else:
            engine = await client.undrain_engine(args.name)
        if args.json:
            print_json(engine)
        else:
            state = "drained: no new sandboxes" if draining else "undrained: takes new sandboxes"
            print(f"engine {engine['name']} {state} ({engine['sandboxes']} sandbox(es) on it)")
        return EXIT_OK

    return action


def add_engine_commands(sub: Any) -> None:
    """``corral engines`` and its ``drain`` and ``undrain`` commands."""
    p = add_command(
        sub,
        "engines",
        list_engines,
        "list the Docker engines (administrators)",
        "The Docker engines sandboxes are placed on: health, drain, sandboxes, free memory "
        "(memory total minus what the sandboxes placed there may use).",
    )
    actions = p.add_subparsers(title="engine commands", metavar="COMMAND")
    for verb, draining, text in (
        ("drain", True, "stop placing new sandboxes on an engine (those on it keep working)"),
        ("undrain", False, "place new sandboxes on an engine again"),
    ):
        action = add_command(actions, verb, _drain(draining), text, text.capitalize() + ".")
        action.add_argument("name", metavar="NAME")
