"""The events stream: its messages, and the progress a create or a role install reports."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from corral.shapes.common import Timestamp, described, query, shape
from corral.shapes.containers import Container, ContainerList
from corral.shapes.enums import EventType, Stage
from corral.shapes.query import INT_FROM_TEXT, Flag


@shape
class Progress(TypedDict):
    """The ``container`` of a ``container_progress`` event."""

    id: str
    db_id: str
    name: str
    stage: Stage
    message: str
    progress: Annotated[int, Field(ge=0, le=100)]
    complete: NotRequired[Literal[True]]
    error: NotRequired[str]
    role: NotRequired[str]
    package: NotRequired[Annotated[str | None, described("The package apt is installing")]]


@shape
class EventMessage(TypedDict):
    """One message of the events stream. ``container`` is a ``ContainerList`` for ``list``, a
    ``Progress`` for ``container_progress``, else the container (``status: deleted`` and
    ``volume_kept`` on ``container_deleted``). ``seq`` is the stream's position: per user, by
    one; the event's global ID on ``all=true``."""

    type: EventType
    container: Container | Progress | ContainerList
    timestamp: Timestamp
    seq: int


@query
class EventsQuery(TypedDict):
    since: NotRequired[
        Annotated[
            int,
            Field(ge=0),
            INT_FROM_TEXT,
            described(
                "Resume after this seq (the last one received): the missed events are sent "
                "first, or a fresh list when they are no longer kept"
            ),
        ]
    ]
    all: NotRequired[
        Annotated[
            Flag,
            described(
                "Admins only: every user's events; seq is then the event's global ID "
                "(increasing, not by one)"
            ),
        ]
    ]
    token: NotRequired[
        Annotated[
            str,
            described(
                "The bearer token, for clients that cannot set headers (or use the "
                "subprotocols corral.v1, corral.token.<token>)"
            ),
        ]
    ]
