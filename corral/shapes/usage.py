"""Live usage (one sample, the stats stream) and a container's output."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from corral.shapes.common import Timestamp, described, query, shape
from corral.shapes.query import INT_FROM_TEXT, Flag


@shape
class ContainerStats(TypedDict):
    """One usage sample of a running container, computed as ``docker stats`` does."""

    id: str
    db_id: str
    name: str
    cpu_percent: Annotated[float, described("Percent of one host core (up to 100 x the cores)")]
    memory_used_mb: Annotated[float, described("In use, inactive file cache left out; MiB")]
    memory_limit_mb: float
    pids: Annotated[int, described("Host tasks of the sandbox (under gVisor, its threads)")]
    timestamp: Annotated[Timestamp, described("When the backend received it")]


@shape
class StatsMessage(TypedDict):
    """A message of the stats stream: the latest sample of every running container the caller
    may see, sorted by name."""

    type: Literal["stats"]
    stats: list[ContainerStats]
    timestamp: Timestamp


@query
class StatsQuery(TypedDict):
    all: NotRequired[Annotated[Flag, described("Admins only: every user's running containers")]]


DEFAULT_TAIL = 200
MAX_TAIL = 10_000


@query
class LogsQuery(TypedDict):
    tail: NotRequired[
        Annotated[
            int,
            Field(ge=1, le=MAX_TAIL),
            INT_FROM_TEXT,
            described(f"How many of the last lines to send first (default {DEFAULT_TAIL})"),
        ]
    ]
    follow: NotRequired[Annotated[Flag, described("Keep the response open; stream new output")]]
    timestamps: NotRequired[
        Annotated[Flag, described("Prefix each line with the engine's RFC 3339 time")]
    ]
