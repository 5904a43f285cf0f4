"""The access log: one line per request, and never a credential in it.

aiohttp's default line holds the request line, query string included, and a WebSocket may carry
its token as ``?token=`` (browsers cannot set headers on a WebSocket). So the query's ``token``
is written as ``<redacted>``, and so is anything shaped like one of our tokens (``crl_`` + 64
hex, or a JWT) wherever it appears in the path (a token pasted into the wrong place). Headers
(``Authorization``, the ``corral.token.<token>`` subprotocol) are never logged.
"""

from __future__ import annotations

import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

REDACTED = "<redacted>"
_SECRETS = (
    (re.compile(r"([?&]token=)[^&#]*", re.IGNORECASE), rf"\g<1>{REDACTED}"),
    (re.compile(r"crl_[0-9a-fA-F]{16,}"), REDACTED),
    (re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*"), REDACTED),
)


def redact(text: str) -> str:
    """``text`` with every token in it replaced by ``<redacted>``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class AccessLogger(AbstractAccessLogger):
    """``<peer> "<method> <path?query>" <status> <bytes> <seconds>s``, tokens redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote,
            request.method,
            redact(request.path_qs),
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
