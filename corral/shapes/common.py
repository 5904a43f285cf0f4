"""What every declaration shares: how strict a shape is, and small named types.

Shapes are ``TypedDict``s, so what the client hands its callers (and the console reads with
``container.get("status")``) is the plain JSON the server sent, typed key for key; pydantic
validates requests against the same declarations and writes their JSON Schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
    with_config,
)
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

# Patterns are anchored at both ends and read with fullmatch semantics everywhere: pydantic's
# engine (Rust's regex) and JSON Schema's (ECMA 262) both read ``$`` as the end of the text, and
# the backend's own checks use ``re.fullmatch`` (Python's ``re.match`` with ``$`` would let a
# trailing newline through).
# Text that may hold anything but NUL (an environment value: a C string ends at NUL).
NO_NUL_PATTERN = r"^[^\x00]*$"
# Text without control characters, C0, DEL or C1 (a label, a token's name: shown in tables).
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# What counts as blank: the space characters JSON Schema's (ECMA 262) ``\s`` knows, spelled
# out, so that the document and the server agree on them (Python's ``str.strip`` knows others).
BLANK = " \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
BLANK += "\u2028\u2029\u202f\u205f\u3000\ufeff"
# Printable text with at least one character that is not blank.
NOT_BLANK_PATTERN = r"^(?=.*[^ \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])"
NOT_BLANK_PATTERN += PRINTABLE_PATTERN[1:]


def _stripped(value: str) -> str:
    stripped = value.strip(BLANK)
    if not stripped:
        raise PydanticCustomError("blank", "must not be blank")
    return stripped


# Text that is not blank, kept without its surrounding blanks: put after ``text(...)``. The
# document says "not blank" with a lookahead (``NOT_BLANK_PATTERN``, replacing the printable
# pattern it includes), which pydantic's regex engine lacks: the server checks with ``_stripped``.
NOT_BLANK = (AfterValidator(_stripped), Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN}))


def _whole_number(value: Any) -> Any:
    """JSON has one number type: ``512.0`` is the integer 512 (JSON Schema's ``integer`` says
    so too); ``512.5``, ``true`` and ``"512"`` stay refused."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# On a body's integer, after its constraints (which then stay in the JSON Schema):
# ``Annotated[int, Field(ge=1), WHOLE_NUMBER]``. Still strict: no strings, booleans or fractions.
WHOLE_NUMBER = BeforeValidator(_whole_number)


def text(*, max_length: int, pattern: str = PRINTABLE_PATTERN, min_length: int = 0) -> Any:
    """A string's constraints: at most ``max_length`` characters matching ``pattern``."""
    return StringConstraints(min_length=min_length or None, max_length=max_length, pattern=pattern)


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
