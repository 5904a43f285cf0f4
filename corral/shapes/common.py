"""What every declaration shares: how strict a shape is, and small named types.

Shapes are ``TypedDict``s, so what the client hands its callers (and the console reads with
``container.get("status")``) is the plain JSON the server sent, typed key for key; pydantic
validates requests against the same declarations and writes their JSON Schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, ValidationError, WithJsonSchema, WrapValidator, with_config
from pydantic_core import PydanticCustomError

T = TypeVar("T")

# Bodies and answers: an unknown key is refused (a client that sends ``tier`` must learn that it
# cannot), and nothing is coerced (``"512"``, ``true`` and ``512.0`` are not integers). The
# document says ``additionalProperties: false``, so the conformance test holds every answer to
# exactly the keys declared here.
shape: Callable[[type[T]], type[T]] = with_config(ConfigDict(extra="forbid", strict=True))
# Query strings: unknown parameters are ignored (a cache-buster hurts nobody); each declared one
# is parsed from its text by its type (``Flag``, ``QueryInt``).
query: Callable[[type[T]], type[T]] = with_config(ConfigDict(extra="ignore", strict=True))

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def refused_as(message: str, code: str = "refused") -> WrapValidator:
    """Report a value of the right type that breaks the annotated constraints (a pattern, a
    length) as one error with ``message`` (and ``code``, which the backend may map to an error
    string of its own, as ``container_name`` is): the constraints stay in the JSON Schema, and
    the client reads one sentence instead of a regular expression. A value of the wrong type,
    or one bad item of a list or a map, keeps its own error ("must be a string")."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = exc.errors()
            if any(error["loc"] or error["type"].endswith("_type") for error in errors):
                raise  # a wrong type, or a fault in one item, keeps its own error
            raise PydanticCustomError(code, message) from None

    return WrapValidator(wrap)


def described(text: str) -> Any:
    """A field's description in the document (``Annotated[int, described("...")]``)."""
    return Field(description=text)
