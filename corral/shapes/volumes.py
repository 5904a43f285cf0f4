"""Kept volumes: the data of containers deleted with ``keep_volume=true``."""

from __future__ import annotations

from typing import Annotated

from typing_extensions import TypedDict

from corral.shapes.common import Timestamp, described, shape


@shape
class KeptVolume(TypedDict):
    name: str
    owner_id: str
    size_mb: Annotated[int, described("What it counts for against the tier's disk")]
    used_mb: Annotated[int | None, described("null when it cannot be measured")]
    container_name: str
    container_db_id: str
    kept_at: Timestamp


@shape
class VolumeList(TypedDict):
    volumes: list[KeptVolume]
    count: int


@shape
class VolumeDeleted(TypedDict):
    message: str
    name: str
