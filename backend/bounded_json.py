"""JSON from clients, parsed within bounds: every HTTP body and every WebSocket frame.

Python's ``json`` parser recurses once per nesting level, so 60,000 ``[`` (60 KB, under every
size limit) is a ``RecursionError``: a 500 with a traceback on an HTTP route, a dead session on a
WebSocket. Nothing the API takes nests deeper than three levels (a body, its ``environment``, a
value), so anything deeper than ``MAX_DEPTH`` is refused before the parser sees it, as a
``ValueError`` like every other malformed JSON. ``NaN``, ``Infinity`` and numbers that overflow
to infinity are refused the same way: they are not JSON numbers.

Sizes are bounded where the bytes arrive: HTTP bodies by ``client_max_size`` (413), WebSocket
frames by each socket's ``max_msg_size`` (close 1009).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32

# A JSON string (whose brackets do not count) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


class TooDeep(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON nests deeper than {limit} levels")
        self.limit = limit


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``text``'s arrays and objects nest deeper than ``limit`` (brackets inside strings
    do not count). Linear, and no scan at all when there are too few brackets to matter."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``data`` parsed as JSON; ``ValueError`` (``TooDeep`` for nesting past ``max_depth``) when
    it is not JSON within the bounds. Bytes must be UTF-8."""
    text = data.decode() if isinstance(data, bytes) else data
    if too_deep(text, max_depth):
        raise TooDeep(max_depth)
    return json.loads(text, parse_constant=_constant, parse_float=_finite)
