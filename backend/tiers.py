"""Tiers: what each may run (how many containers, each resource's range and default).

The defaults are the contract's table; ``backend.settings`` completes an operator's partial tiers
from them. The API reports a caller's tier at ``GET /api/me``, so clients never carry a copy.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, model_validator
from pydantic.dataclasses import dataclass

# The value types below reject keys they do not have, as the settings do.
STRICT_KEYS = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=STRICT_KEYS)
class Range:
    """An inclusive allowed range for one resource, in the resource's own unit. Written
    ``[min, max]`` in TOML."""

    min: int
    max: int

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"min": value[0], "max": value[1]}
        return value

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"the minimum ({self.min}) is above the maximum ({self.max})")

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True, config=STRICT_KEYS)
class TierLimits:
    """What a tier may run: how many containers, each resource's range and its default, and
    the disk a user may hold in all (``disk_total_mb``: every container's ``disk_mb`` plus every
    kept volume's size; None: ``containers`` times the disk maximum, which containers alone can
    never pass, so only kept volumes are held back by it)."""

    name: str
    containers: int
    memory_mb: Range
    cpu_shares: Range
    disk_mb: Range
    default_memory_mb: int
    default_cpu_shares: int
    default_disk_mb: int
    disk_total_mb: int | None = None
    # The engines this tier's new sandboxes may be placed on (``engines`` in the settings); empty:
    # any. A pin, not a preference: none of them with room is a refusal (backend.engines).
    engines: tuple[str, ...] = ()

    @property
    def disk_budget_mb(self) -> int:
        """The disk a user of this tier may hold: containers and kept volumes together."""
        if self.disk_total_mb is not None:
            return self.disk_total_mb
        return self.containers * self.disk_mb.max

    def range_for(self, resource: str) -> Range:
        value = getattr(self, resource)
        assert isinstance(value, Range)
        return value

    def default_for(self, resource: str) -> int:
        value = getattr(self, f"default_{resource}")
        assert isinstance(value, int)
        return value

    def as_json(self) -> dict[str, Any]:
        return {
            "tier": self.name,
            "containers": self.containers,
            "disk_total_mb": self.disk_budget_mb,
            **{
                resource: {
                    "min": self.range_for(resource).min,
                    "max": self.range_for(resource).max,
                    "default": self.default_for(resource),
                }
                for resource in RESOURCES
            },
        }


RESOURCES: tuple[str, ...] = ("memory_mb", "cpu_shares", "disk_mb")


def _tier(
    name: str,
    containers: int,
    memory: tuple[int, int],
    cpu: tuple[int, int],
    disk: tuple[int, int],
    defaults: tuple[int, int, int],
) -> TierLimits:
    return TierLimits(
        name=name,
        containers=containers,
        memory_mb=Range(*memory),
        cpu_shares=Range(*cpu),
        disk_mb=Range(*disk),
        default_memory_mb=defaults[0],
        default_cpu_shares=defaults[1],
        default_disk_mb=defaults[2],
    )


DEFAULT_TIERS: dict[str, TierLimits] = {
    t.name: t
    for t in (
        _tier("guest", 1, (512, 512), (500, 500), (2048, 2048), (512, 500, 2048)),
        _tier("free", 5, (256, 2048), (250, 2000), (1024, 10240), (512, 500, 2048)),
        _tier("pro", 10, (256, 4096), (250, 4000), (1024, 20480), (1024, 1000, 5120)),
        _tier("enterprise", 25, (256, 8192), (250, 8000), (1024, 51200), (2048, 2000, 10240)),
    )
}
