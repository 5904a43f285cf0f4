"""The Docker engines sandboxes are placed on (``GET /api/engines``, drain and undrain)."""

from __future__ import annotations

from typing import Annotated

from typing_extensions import TypedDict

from corral.shapes.catalog import Check
from corral.shapes.common import Timestamp, described, shape


@shape
class Engine(TypedDict):
    name: str
    docker: Annotated[Check, described("The engine answers (as last checked, every few seconds)")]
    runtime: Annotated[Check, described("It has the configured runtime registered")]
    draining: Annotated[bool, described("No new sandboxes are placed on it")]
    drained_at: Annotated[Timestamp | None, described("When it was drained, else null")]
    sandboxes: Annotated[int, described("Containers whose rows name this engine")]
    memory_total_mb: Annotated[int | None, described("The engine's memory; null while unknown")]
    memory_placed_mb: Annotated[
        int, described("The memory_mb of its sandboxes that run or are being made")
    ]
    memory_free_mb: Annotated[
        int | None, described("Total minus placed: what placement compares; null while unknown")
    ]
    labels: Annotated[dict[str, str], described("The operator's notes from the configuration")]


@shape
class EngineList(TypedDict):
    engines: list[Engine]
    count: int
