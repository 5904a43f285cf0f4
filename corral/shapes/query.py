"""Types of query-string parameters: each parses its text, then is checked as strictly as a body
field (``?all=maybe`` and ``?tail=ten`` are refused, not guessed at)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

# As OpenAPI writes a boolean in a query string, and nothing else: the document says
# ``boolean``, so ``?all=yes``, ``?all=1`` or an empty ``?all=`` would be a guess.
_TRUE = frozenset({"true"})
_FALSE = frozenset({"false"})
_INT_RE = re.compile(r"-?[0-9]{1,18}")


def _flag(raw: Any) -> Any:
    if isinstance(raw, str):
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
    return raw  # refused as "must be true or false"


def _int(raw: Any) -> Any:
    if isinstance(raw, str) and _INT_RE.fullmatch(raw):
        return int(raw)
    return raw  # refused as "must be an integer"


# ``true`` or ``false``; absent is false.
Flag = Annotated[bool, BeforeValidator(_flag)]
# Plain decimal digits, optionally negative. Put it after the constraints, so that they stay on
# the integer (and in the JSON Schema): ``Annotated[int, Field(ge=0), INT_FROM_TEXT]``.
INT_FROM_TEXT = BeforeValidator(_int)
