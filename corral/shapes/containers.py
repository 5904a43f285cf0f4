"""Containers (and agents, which the list shows beside them): create, settings, the container
object and the answers of the lifecycle routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Literal, NotRequired

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from corral.shapes.common import (
    NO_NUL_PATTERN,
    PRINTABLE_PATTERN,
    WHOLE_NUMBER,
    Timestamp,
    described,
    query,
    refused_as,
    shape,
    text,
)
from corral.shapes.enums import RoleState, Status
from corral.shapes.query import Flag

CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"
ENV_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A kept volume's Docker name (what GET /api/volumes lists).
VOLUME_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# ``session_type`` of an agent in the container list (containers have none).
AGENT_SESSION: Final = "agent"
# Labels the backend puts on Docker objects; a user's labels may not use the prefix.
RESERVED_LABEL_PREFIX = "corral."

ContainerName = Annotated[
    str,
    StringConstraints(pattern=CONTAINER_NAME_PATTERN),
    refused_as("Names are 1-64 characters of letters, digits and hyphens.", "container_name"),
]


def _no_reserved_labels(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise PydanticCustomError(
                "reserved_label",
                "label {key} uses the reserved prefix {prefix}",
                {"key": repr(key), "prefix": repr(RESERVED_LABEL_PREFIX)},
            )
    return labels


LabelKey = Annotated[str, text(min_length=1, max_length=128)]
LabelValue = Annotated[str, text(max_length=4096)]
EnvKey = Annotated[str, StringConstraints(pattern=ENV_KEY_PATTERN, max_length=128)]
EnvValue = Annotated[str, text(max_length=4096, pattern=NO_NUL_PATTERN)]
Resource = Annotated[int, WHOLE_NUMBER, described("Within the caller's tier's range (GET /api/me)")]
VolumeName = Annotated[str, text(min_length=1, max_length=128, pattern=VOLUME_NAME_PATTERN)]


# -- requests ---------------------------------------------------------------------------------


@shape
class ContainerCreate(TypedDict):
    name: NotRequired[
        Annotated[
            ContainerName,
            described(
                "1-64 letters, digits and hyphens, not starting with a hyphen; generated when "
                "omitted"
            ),
        ]
    ]
    image: Annotated[str, described("One of GET /api/images")]
    role: NotRequired[Annotated[str, described("One of GET /api/roles; default barebone")]]
    memory_mb: NotRequired[Annotated[Resource, described("Memory in MB, within the tier's range")]]
    cpu_shares: NotRequired[
        Annotated[
            Resource, described("CPU in millicores (1000 = one CPU), within the tier's range")
        ]
    ]
    disk_mb: NotRequired[
        Annotated[Resource, described("Disk quota in MB, within the tier's range")]
    ]
    environment: NotRequired[
        Annotated[
            dict[EnvKey, EnvValue],
            Field(
                max_length=64,
                # pydantic writes the key rule as patternProperties, which lets any other key
                # through; propertyNames says what the server does: every key must match.
                json_schema_extra={"propertyNames": {"maxLength": 128, "pattern": ENV_KEY_PATTERN}},
            ),
            described("Set in the sandbox, never echoed back"),
        ]
    ]
    labels: NotRequired[
        Annotated[
            dict[LabelKey, LabelValue],
            Field(
                max_length=32,
                json_schema_extra={
                    "propertyNames": {
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": PRINTABLE_PATTERN,
                        "not": {"pattern": r"^corral\."},
                    }
                },
            ),
            AfterValidator(_no_reserved_labels),
            described(f"The user's own; no {RESERVED_LABEL_PREFIX} prefix"),
        ]
    ]
    volume: NotRequired[
        Annotated[
            VolumeName,
            described(
                "A kept volume of yours (GET /api/volumes) to attach as /home/user instead of a "
                "new one; disk_mb is then at least its size (default: its size)"
            ),
        ]
    ]


@shape
class ContainerSettings(TypedDict):
    """Omitted fields are unchanged."""

    name: NotRequired[Annotated[ContainerName, described("New name; same rules as on create")]]
    memory_mb: NotRequired[Resource]
    cpu_shares: NotRequired[Resource]
    disk_mb: NotRequired[Resource]


# -- answers ----------------------------------------------------------------------------------


@shape
class Resources(TypedDict):
    """Memory and disk in MB, CPU in millicores. An agent's come from its facts (disk null)."""

    memory_mb: int | None
    cpu_shares: int | None
    disk_mb: int | None


Fact = str | int


@shape
class AgentDetails(TypedDict):
    """An agent's facts as it reported them, its last load and when it was last heard from."""

    hostname: NotRequired[Fact]
    os: NotRequired[Fact]
    arch: NotRequired[Fact]
    cpus: NotRequired[Fact]
    memory_mb: NotRequired[Fact]
    version: NotRequired[Fact]
    load: Annotated[dict[str, float], described('{"1m", "5m", "15m", "memory_available_mb"}')]
    last_seen_at: Timestamp | None


@shape
class Container(TypedDict):
    """A container, or an agent (``session_type: agent``, ``id`` ``agent:<uuid>``)."""

    id: Annotated[str, described("The Docker ID; the database ID while there is none")]
    db_id: str
    name: str
    image: Annotated[str | None, described("null for agents")]
    role: Annotated[str | None, described("null for agents")]
    role_state: Annotated[
        RoleState | None, described("The role in the current sandbox; null for agents")
    ]
    role_error: Annotated[str | None, described("Why the role failed, else null")]
    status: Status
    created_at: Timestamp
    last_used_at: Timestamp | None
    started_at: Annotated[Timestamp | None, described("While running, else null")]
    resources: Resources
    runtime: Annotated[str, described("runsc (or agent)")]
    labels: dict[str, str]
    owner_id: str
    volume: NotRequired[
        Annotated[
            str,
            described(
                "The Docker volume holding /home/user (a kept one when the container was "
                "created with volume); not on agents"
            ),
        ]
    ]
    engine: NotRequired[
        Annotated[
            str,
            described(
                "The Docker engine the sandbox lives on (GET /api/engines); every operation on "
                "it goes there. Not on agents"
            ),
        ]
    ]
    error: NotRequired[Annotated[str, described("After a failure: a sanitized reason")]]
    message: NotRequired[
        Annotated[str, described("On create's answer, and on events: a note for people")]
    ]
    volume_kept: NotRequired[Annotated[bool, described("On container_deleted events")]]
    session_type: NotRequired[Literal["agent"]]  # AGENT_SESSION
    agent: NotRequired[AgentDetails]


def is_agent(container: Mapping[str, object]) -> bool:
    """Whether an entry of the container list is an agent (which has no image, role or volume,
    and cannot be started, rebuilt or given settings)."""
    return container.get("session_type") == AGENT_SESSION


@shape
class ContainerList(TypedDict):
    containers: list[Container]
    count: int
    limit: Annotated[int, described("How many containers the caller's tier allows")]


@shape
class Lifecycle(TypedDict):
    """The answer to start and stop (of a container or an agent)."""

    message: str
    id: str
    name: str
    status: Status
    old_id: NotRequired[Annotated[str, described("After an automatic recreation")]]
    recreated: NotRequired[Literal[True]]
    volume_kept: NotRequired[bool]
    warning: NotRequired[
        Annotated[str, described("The volume was gone: recreated on a new, empty one (why)")]
    ]


@shape
class Deleted(TypedDict):
    message: str
    id: str
    name: str
    db_id: NotRequired[Annotated[str, described("Containers only (not agents)")]]
    volume_kept: NotRequired[bool]


@shape
class SettingsChanged(TypedDict):
    message: str
    restarted: Annotated[bool, described("Whether the sandbox was rebuilt and started again")]
    container: Container


# -- query strings ----------------------------------------------------------------------------


@query
class ListQuery(TypedDict):
    all: NotRequired[Annotated[Flag, described("Admins only: every user's")]]


@query
class CreateQuery(TypedDict):
    wait: NotRequired[Annotated[Flag, described("Answer 201 once the container runs")]]


@query
class DeleteQuery(TypedDict):
    keep_volume: NotRequired[
        Annotated[Flag, described("Keep the volume (the data; GET /api/volumes lists it)")]
    ]
