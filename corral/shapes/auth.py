"""Sign-in, the caller, and API tokens."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field, StringConstraints
from typing_extensions import TypedDict

from corral.shapes.common import (
    NOT_BLANK,
    WHOLE_NUMBER,
    Timestamp,
    described,
    refused_as,
    shape,
    text,
)
from corral.shapes.enums import Scope

USERNAME_PATTERN = r"^[A-Za-z0-9_-]{2,30}$"

GuestName = Annotated[
    str,
    StringConstraints(pattern=USERNAME_PATTERN),
    refused_as("username must be 2-30 characters of letters, digits, '_' and '-'"),
    described("2-30 characters: letters, digits, _ and -"),
]


# -- requests ---------------------------------------------------------------------------------


@shape
class GuestLogin(TypedDict):
    username: GuestName


@shape
class Login(TypedDict):
    username: Annotated[str, text(max_length=64), described("A registered user's name")]
    password: Annotated[str, Field(max_length=1024), described("Their password")]


@shape
class TokenCreate(TypedDict):
    name: Annotated[
        str,
        text(min_length=1, max_length=64),
        *NOT_BLANK,
        described("A label to recognise the token by (kept without surrounding blanks)"),
    ]
    scopes: NotRequired[
        Annotated[
            list[Annotated[Scope, Field(strict=False)]],
            Field(
                min_length=1,
                # The server's rule, in the document: read and/or write, or agent alone.
                json_schema_extra={
                    "anyOf": [
                        {"items": {"enum": ["read", "write"]}},
                        {"items": {"const": "agent"}},
                    ]
                },
            ),
            refused_as("scopes must name read, write or both"),
            described("read and/or write (default both); or agent alone, for corral agent"),
        ]
    ]
    expires_in_days: NotRequired[
        Annotated[
            int,
            Field(ge=1, le=3650),
            WHOLE_NUMBER,
            described("Days until it expires; omitted: never"),
        ]
    ]


# -- answers ----------------------------------------------------------------------------------


@shape
class User(TypedDict):
    id: str
    username: str
    tier: str
    admin: bool
    guest: bool
    created_at: Timestamp


@shape
class Session(TypedDict):
    """A signed-in session: the token to send as ``Authorization: Bearer``."""

    token: str
    user: User
    expires_in: Annotated[int, described("Seconds the session lasts")]
    expires_at: Timestamp
    guest: NotRequired[Literal[True]]


@shape
class Range(TypedDict):
    min: int
    max: int
    default: int


@shape
class TierLimits(TypedDict):
    """What the caller's tier allows: how many containers, each resource's range and default."""

    tier: str
    containers: int
    disk_total_mb: Annotated[
        int, described("The disk a user may hold in all: containers' disk_mb and kept volumes")
    ]
    memory_mb: Range
    cpu_shares: Range
    disk_mb: Range


@shape
class Usage(TypedDict):
    containers: int
    disk_mb: Annotated[int, described("Disk held: the containers' disk_mb and kept volumes'")]
    kept_volumes: int
    kept_volumes_mb: int


@shape
class Me(TypedDict):
    user: User
    tier: str
    limits: TierLimits
    usage: Usage
    scopes: list[Scope]
    session_expires_at: Annotated[Timestamp | None, described("Guests only: the session's end")]


@shape
class _Token(TypedDict):
    id: str
    name: str
    token_prefix: Annotated[str, described("The token's first characters, to recognise it")]
    scopes: list[Scope]
    expires_at: Timestamp | None
    created_at: Timestamp


@shape
class TokenInfo(_Token):
    last_used_at: Timestamp | None


@shape
class NewToken(_Token):
    """A new API token: ``token`` is shown this once and stored only as a hash."""

    token: str


@shape
class TokenList(TypedDict):
    tokens: list[TokenInfo]
    count: int


@shape
class TokenRevoked(TypedDict):
    message: str
    id: str


@shape
class Message(TypedDict):
    message: str
