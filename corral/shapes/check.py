"""Validating a value against a shape, with refusals a person can read.

pydantic reports every fault with its location and kind; a refusal names the first one (an
unknown field first: the most likely mistake) as ``field`` plus one sentence, the way the API has
always answered: ``memory_mb must be an integer``, ``unknown field: tier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

T = TypeVar("T")


@dataclass(frozen=True)
class Fault:
    field: str | None  # the top-level key at fault; None when the whole value is
    message: str
    code: str  # pydantic's error type, or a shape's own (``container_name``)


class Refused(ValueError):
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        super().__init__(fault.message)


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def adapter(shape: type[T]) -> TypeAdapter[T]:
    """The shape's validator, built once (building one costs about a millisecond)."""
    found = _ADAPTERS.get(shape)
    if found is None:
        found = _ADAPTERS[shape] = TypeAdapter(shape)
    return found


def check(shape: type[T], value: object) -> T:
    """``value`` as ``shape`` (enums become members, query text becomes numbers and flags), or
    ``Refused`` naming the first fault."""
    try:
        return adapter(shape).validate_python(value)
    except ValidationError as exc:
        raise Refused(first_fault(shape, exc)) from None


def first_fault(shape: type[Any], exc: ValidationError) -> Fault:
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    error = (unknown or errors)[0]
    loc = error["loc"]
    if not loc:
        return Fault(None, _whole(error), error["type"])
    field = str(loc[0])
    return Fault(field, _sentence(shape, field, error), error["type"])


def _whole(error: ErrorDetails) -> str:
    if error["type"] in ("dict_type", "model_type", "typed_dict_type"):
        return "The request body must be a JSON object."
    return error["msg"]


_TYPES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be an object",
}


def _sentence(shape: type[Any], field: str, error: ErrorDetails) -> str:
    kind, ctx, nested = error["type"], error.get("ctx") or {}, len(error["loc"]) > 1
    if kind == "extra_forbidden":
        return f"unknown field: {field}"
    if kind == "missing":
        return f"{field} is required"
    if kind == "blank":
        return f"{field} must not be blank"
    if kind in ("enum", "literal_error"):
        where = "may contain only" if nested else "must be one of"
        return f"{field} {where} {ctx.get('expected', '')}".strip()
    if nested:
        return _item_sentence(field, error)
    if kind in _TYPES:
        return f"{field} {_TYPES[kind]}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return _range_sentence(shape, field, ctx)
    if kind == "string_too_long":
        return f"{field} must be at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        return f"{field} must not be empty" if ctx["min_length"] == 1 else f"{field} is too short"
    if kind == "too_long":
        return f"{field} may hold at most {ctx['max_length']} entries"
    if kind == "string_pattern_mismatch":
        return f"{field} holds characters it may not (see the API document's pattern)"
    return error["msg"] if kind not in _PYDANTIC_WORDING else f"{field}: {error['msg']}"


# pydantic's own sentences start with "Input should ...": prefix them with the field's name.
_PYDANTIC_WORDING = frozenset({"string_pattern_mismatch", "too_short", "greater_than", "less_than"})


def _item_sentence(field: str, error: ErrorDetails) -> str:
    """A fault inside a map or a list: a bad key, a bad value or a bad item."""
    loc, kind = error["loc"], error["type"]
    key = loc[1]
    if loc[-1] == "[key]":
        return f"{field} key {key!r} is not a valid name"
    if kind.endswith("_type"):
        return f"{field} must be {'a list' if isinstance(key, int) else 'an object'} of strings"
    if kind == "string_too_long":
        return f"{field} entry {key!r} is too long"
    if kind == "string_pattern_mismatch":
        return f"{field} entry {key!r} holds characters it may not (NUL, or control characters)"
    return f"{field}: {error['msg']}"


def _range_sentence(shape: type[Any], field: str, ctx: dict[str, Any]) -> str:
    bounds = adapter(shape).json_schema().get("properties", {}).get(field, {})
    low, high = bounds.get("minimum", ctx.get("ge")), bounds.get("maximum", ctx.get("le"))
    if low is not None and high is not None:
        return f"{field} must be between {low} and {high}"
    if low is not None:
        return f"{field} must be at least {low}"
    return f"{field} must be at most {high}"
