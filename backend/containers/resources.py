"""A container's resources (memory, CPU, disk) checked against its owner's tier: at create and
when its settings change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
