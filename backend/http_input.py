"""A request's JSON body and query string, read and checked against their declared shapes
(``corral.shapes``).

Reading is strict on purpose: malformed JSON, ``NaN`` and ``Infinity``, and JSON nested deeper
than ``backend.bounded_json.MAX_DEPTH`` are 400 ``invalid json``; a body over the size limit is
413. Checking is the shape's (``corral.shapes.check``): the first
fault is 400 ``invalid parameters`` naming the ``field``, or, for a name that breaks the naming
rules, 400 ``invalid container name``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web

from backend import bounded_json
from backend.errors import (
    CorralError,
    InvalidContainerName,
    InvalidJson,
    InvalidParameters,
    PayloadTooLarge,
)
from corral.shapes import Refused, check

T = TypeVar("T")


def checked(shape: type[T], value: object) -> T:
    """``value`` as ``shape``, or the API's refusal."""
    try:
        return check(shape, value)
    except Refused as exc:
        raise refusal(exc) from None


def refusal(exc: Refused) -> CorralError:
    fault = exc.fault
    if fault.code == "container_name":
        return InvalidContainerName()
    return InvalidParameters(fault.message, field=fault.field)


async def read_body(request: web.Request, shape: type[T]) -> T:
    """The request's JSON body as ``shape``; an empty body is ``{}``."""
    return checked(shape, await read_json(request))


def read_query(request: web.Request, shape: type[T]) -> T:
    """The query string's declared parameters as ``shape`` (others are ignored)."""
    return checked(shape, {key: request.query[key] for key in request.query})


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; malformed JSON is 400, an oversized body 413."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(
            f"The request body is larger than the limit of {request.client_max_size} bytes."
        ) from exc
    if not raw.strip():
        return {}
    try:
        return bounded_json.loads(raw)
    except bounded_json.TooDeep as exc:
        raise InvalidJson(
            f"The request body nests deeper than {exc.limit} levels; no request needs that."
        ) from None
    except ValueError:  # UnicodeDecodeError is one
        raise InvalidJson() from None
