"""What create accepts (images and roles), and the server's health."""

from __future__ import annotations

from typing import Annotated, Literal

from typing_extensions import TypedDict

from corral.shapes.common import described, shape


@shape
class Image(TypedDict):
    name: Annotated[str, described("What create's image takes")]
    reference: Annotated[str, described("The engine's image reference")]
    description: str
    available: Annotated[bool, described("Built on this host (the backend never pulls)")]
    size_mb: Annotated[int | None, described("null while not available")]
    aliases: Annotated[
        list[str], described("Other names create takes for it (debian: what Rexec clients send)")
    ]


@shape
class ImageList(TypedDict):
    images: list[Image]


@shape
class Role(TypedDict):
    """Development tools a sandbox starts with (from the role's image, built once per host)."""

    id: Annotated[str, described("What create's role takes")]
    name: str
    description: str
    packages: list[str]
    images: Annotated[list[str], described("The images it works on")]


@shape
class RoleList(TypedDict):
    roles: list[Role]


Check = Literal["ok", "unavailable"]


@shape
class EngineHealth(TypedDict):
    docker: Annotated[Check, described("The engine answers")]
    runtime: Annotated[Check, described("It has the configured runtime registered")]


@shape
class Health(TypedDict):
    status: Literal["ok", "degraded"]
    database: Check
    docker: Check
    runtime: Annotated[str, described("The configured runtime, with a note when not registered")]
    limits_enforced: Annotated[
        bool, described("Memory and CPU cgroup limits supported, and disk quotas applied")
    ]
    engines: Annotated[
        dict[str, EngineHealth],
        described("Each configured engine, checked for real; docker is ok only when every one is"),
    ]
