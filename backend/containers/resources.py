"""A container's resources (memory, CPU, disk) checked against its owner's tier: at create and
when its settings change; and the tier's disk, which kept volumes count against too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.containers.repository import UserUsage
from backend.errors import InvalidParameters
from backend.settings import RESOURCES, TierLimits


def check_resources(
    fields: Mapping[str, Any], tier: TierLimits, *, fill_defaults: bool
) -> dict[str, int]:
    """Each resource given (or its tier default), refused with the field named when out of range
    (the tier's ranges are configuration, so they are checked here rather than in the shapes)."""
    result: dict[str, int] = {}
    for resource in RESOURCES:
        if resource not in fields:
            if fill_defaults:
                result[resource] = tier.default_for(resource)
            continue
        value = int(fields[resource])
        allowed = tier.range_for(resource)
        if not allowed.contains(value):
            if allowed.min == allowed.max:
                message = f"{resource} must be {allowed.min} on the {tier.name} tier"
            else:
                message = (
                    f"{resource} must be between {allowed.min} and {allowed.max} "
                    f"on the {tier.name} tier"
                )
            raise InvalidParameters(message, field=resource)
        result[resource] = value
    return result


def check_disk_budget(tier: TierLimits, usage: UserUsage, added_mb: int, disk_mb: int) -> None:
    """Refuse (400, field ``disk_mb``) a change that adds ``added_mb`` to what the user holds
    (their containers' disk and their kept volumes) past the tier's disk. Call under the user's
    lock (``ContainerRepository.user_lock``) with ``usage`` read under it."""
    budget = tier.disk_budget_mb
    if added_mb <= 0 or usage.disk_mb + added_mb <= budget:
        return
    message = (
        f"disk_mb {disk_mb} does not fit: your containers and kept volumes hold "
        f"{usage.disk_mb} MB of the {tier.name} tier's {budget} MB"
    )
    if usage.kept_volumes:
        message += (
            f"; kept volumes count ({usage.kept_volumes} of them, {usage.kept_mb} MB): delete "
            "the ones you no longer need (GET /api/volumes, then DELETE /api/volumes/{name}; "
            "corral volumes rm NAME) or attach one to a new container"
        )
    message += ", or choose a smaller disk_mb"
    raise InvalidParameters(
        message,
        field="disk_mb",
        tier=tier.name,
        limit_mb=budget,
        used_mb=usage.disk_mb,
        kept_mb=usage.kept_mb,
    )
