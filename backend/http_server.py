"""aiohttp's own refusals, answered in the API's JSON error shape.

A request aiohttp cannot parse (a URL or a header longer than its 8,190-byte limit, a malformed
request line or header, a broken chunked body) never reaches the application: the protocol
handler answers it itself, with a ``text/plain`` body and a logged traceback, and no middleware
or signal sees it (aio-libs/aiohttp#3287 asks for a hook; there is none). Its one way out is
``RequestHandler.handle_error``, a method of the public ``web.RequestHandler`` class, so this
module runs the application with protocol handlers that override it:

- ``JsonErrorRunner`` is ``web.AppRunner`` whose server is a ``JsonErrorServer``;
- ``JsonErrorServer`` is ``web.Server`` (the protocol factory) whose handlers are
  ``JsonErrorHandler``s, built by aiohttp's own ``Server.__call__`` with its arguments;
- ``JsonErrorHandler.handle_error`` answers ``{"error", "message"}`` as JSON, logs one line (not
  a traceback) for a client's mistake, and never echoes the request back (a URL may carry a
  ``?token=``).

Both subclasses add no state (``__slots__ = ()``), so an instance aiohttp built can take the
subclass as its class: nothing of aiohttp's construction is copied here.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from backend.errors import (
    CorralError,
    InvalidRequest,
    RequestHeaderTooLarge,
)

log = logging.getLogger(__name__)

# aiohttp's limits on the request line and on each header (its defaults, kept).
MAX_LINE_BYTES = 8190


def protocol_error(status: int, exc: BaseException | None) -> CorralError:
    """The API's error for a request aiohttp refused before routing it."""
    if isinstance(exc, LineTooLong):
        return RequestHeaderTooLarge(
            f"The request line or a header is longer than {MAX_LINE_BYTES} bytes."
        )
    if isinstance(exc, BadHttpMessage) or status == HTTPStatus.BAD_REQUEST:
        return InvalidRequest()
    if status < 500:
        error = InvalidRequest(HTTPStatus(status).phrase + ".")
        error.status = status
        return error
    return CorralError()


class JsonErrorHandler(web.RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp answers a request it could not parse or serve: the same status, as the
        API's JSON error, on a connection that then closes (as aiohttp's own answer does)."""
        error = protocol_error(status, exc)
        if error.status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.info(
                "refused a malformed request from %s: %s (%s)",
                request.remote,
                error.error,
                type(exc).__name__ if exc is not None else status,
            )
        if request.writer.output_size > 0:
            # Part of an answer is out already: the connection is broken, as aiohttp says.
            raise ConnectionError("a response was sent already; cannot send the error")
        response = web.json_response(error.body(), status=error.status)
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    __slots__ = ()

    def __call__(self) -> web.RequestHandler:
        handler = super().__call__()
        handler.__class__ = JsonErrorHandler
        return handler


class JsonErrorRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer aiohttp's own refusals as JSON."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = JsonErrorServer
        return server
