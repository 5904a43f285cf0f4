"""The terminal WebSocket's query string: the shell's first size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NotRequired

from pydantic import Field, ValidationError, WrapValidator
from typing_extensions import TypedDict

from corral.shapes.common import described, query
from corral.shapes.query import INT_FROM_TEXT

DEFAULT_COLS, DEFAULT_ROWS = 80, 24
MAX_SIZE = 1000


def or_default(default: int) -> WrapValidator:
    """A size that is not a number in range falls back to ``default`` instead of refusing the
    terminal: a client that sends a wrong size still gets a shell, and resizes it later."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            return default

    return WrapValidator(wrap)


@query
class TerminalQuery(TypedDict):
    cols: NotRequired[
        Annotated[
            int,
            Field(ge=1, le=MAX_SIZE, default=DEFAULT_COLS),
            INT_FROM_TEXT,
            or_default(DEFAULT_COLS),
            described(f"Columns (1-{MAX_SIZE}); default {DEFAULT_COLS}, also for a bad value"),
        ]
    ]
    rows: NotRequired[
        Annotated[
            int,
            Field(ge=1, le=MAX_SIZE, default=DEFAULT_ROWS),
            INT_FROM_TEXT,
            or_default(DEFAULT_ROWS),
            described(f"Rows (1-{MAX_SIZE}); default {DEFAULT_ROWS}, also for a bad value"),
        ]
    ]
