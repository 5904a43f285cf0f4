"""The fake API's guard: every answer it hands out is first checked against the API's
declarations (``corral.shapes``), as the real server's are checked against its document."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from corral.shapes.check import adapter

T = TypeVar("T")


def shaped(shape: type[Any], data: T) -> T:
    """``data`` itself, once it passed ``shape`` (as JSON: enums arrive as their values)."""
    adapter(shape).validate_json(json.dumps(data))
    return data
