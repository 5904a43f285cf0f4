"""Types of query-string parameters: each parses its text, then is checked as strictly as a body
field (``?all=maybe`` and ``?tail=ten`` are refused, not guessed at)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})
_INT_RE = re.compile(r"-?[0-9]{1,18}")


def _flag(raw: Any) -> Any:
    if isinstance(raw, str):
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return raw  # refused as "must be true or false"


def _int(raw: Any) -> Any:
    if isinstance(raw, str) and _INT_RE.fullmatch(raw):
        return int(raw)
    return raw  # refused as "must be an integer"


# ``true``/``1``/``yes`` or ``false``/``0``/``no`` (any case); absent is false.
Flag = Annotated[bool, BeforeValidator(_flag)]
# Plain decimal digits, optionally negative. Put it after the constraints, so that they stay on
# the integer (and in the JSON Schema): ``Annotated[int, Field(ge=0), INT_FROM_TEXT]``.
INT_FROM_TEXT = BeforeValidator(_int)
