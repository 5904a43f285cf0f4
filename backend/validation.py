"""Request bodies: strict parsing against small declared schemas.

Each body is declared once as a ``Schema``; the same declaration validates requests and produces
the JSON Schema in the OpenAPI document, so the two cannot drift. Parsing is strict on purpose:
numbers must be JSON integers (``true``, ``"512"``, ``512.5`` are refused), and unknown fields are
rejected so a client that sends ``tier`` or ``privileged`` learns that it cannot.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from backend.errors import InvalidJson, InvalidParameters, PayloadTooLarge

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]{2,30}$")


@dataclass(frozen=True)
class Field:
    kind: str  # "integer", "string", "boolean", "string-map", "string-list"
    description: str
    required: bool = False
    max_items: int | None = None
    max_length: int | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.kind == "string-map":
            schema = {"type": "object", "additionalProperties": {"type": "string"}}
            if self.max_items is not None:
                schema["maxProperties"] = self.max_items
        elif self.kind == "string-list":
            items: dict[str, Any] = {"type": "string"}
            if self.enum:
                items["enum"] = list(self.enum)
            schema = {"type": "array", "items": items}
        else:
            schema = {"type": self.kind}
            if self.enum:
                schema["enum"] = list(self.enum)
            if self.max_length is not None:
                schema["maxLength"] = self.max_length
            if self.pattern is not None:
                schema["pattern"] = self.pattern
        schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Schema:
    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)

    def parse(self, body: Any) -> dict[str, Any]:
        """The body's fields, type-checked; raises 400 ``invalid parameters`` on the first fault."""
        if not isinstance(body, dict):
            raise InvalidParameters("The request body must be a JSON object.")
        for key in body:
            if key not in self.fields:
                raise InvalidParameters(f"unknown field: {key}", field=key)
        for key, spec in self.fields.items():
            if key not in body:
                if spec.required:
                    raise InvalidParameters(f"{key} is required", field=key)
                continue
            _check_type(key, spec, body[key])
        return dict(body)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [k for k, f in self.fields.items() if f.required],
            "properties": {k: f.json_schema() for k, f in self.fields.items()},
        }


def is_json_int(value: Any) -> bool:
    return type(value) is int


def _check_type(key: str, spec: Field, value: Any) -> None:
    kind = spec.kind
    if kind == "integer" and not is_json_int(value):
        raise InvalidParameters(f"{key} must be an integer", field=key)
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidParameters(f"{key} must be a string", field=key)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidParameters(
                f"{key} must be at most {spec.max_length} characters", field=key
            )
        if spec.enum and value not in spec.enum:
            raise InvalidParameters(f"{key} must be one of {', '.join(spec.enum)}", field=key)
    if kind == "boolean" and type(value) is not bool:
        raise InvalidParameters(f"{key} must be true or false", field=key)
    if kind == "string-map":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidParameters(f"{key} must be an object of strings", field=key)
        if spec.max_items is not None and len(value) > spec.max_items:
            raise InvalidParameters(f"{key} may hold at most {spec.max_items} entries", field=key)
    if kind == "string-list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidParameters(f"{key} must be a list of strings", field=key)
        if spec.enum and any(v not in spec.enum for v in value):
            raise InvalidParameters(f"{key} may contain only {', '.join(spec.enum)}", field=key)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson() from exc
    _reject_non_finite(value)
    return value


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJson()
    if isinstance(value, dict):
        for item in value.values():
            _reject_non_finite(item)
    elif isinstance(value, list):
        for item in value:
            _reject_non_finite(item)


def query_flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter: ``true``/``1``/``yes`` or ``false``/``0``/``no`` (or absent)."""
    raw = request.query.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise InvalidParameters(f"{name} must be true or false", field=name)


def query_int(request: web.Request, name: str, *, minimum: int | None = None) -> int | None:
    """An integer query parameter (absent: None); anything but plain decimal digits is 400."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,18}", raw):
        raise InvalidParameters(f"{name} must be an integer", field=name)
    value = int(raw)
    if minimum is not None and value < minimum:
        raise InvalidParameters(f"{name} must be at least {minimum}", field=name)
    return value


def check_name(value: Any) -> str:
    from backend.errors import InvalidContainerName

    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidContainerName()
    return value


def check_string_map(key: str, value: dict[str, str], key_re: re.Pattern[str] | None) -> None:
    for k, v in value.items():
        if key_re is not None and not key_re.match(k):
            raise InvalidParameters(f"{key} key {k!r} is not a valid name", field=key)
        if len(k) > 128 or len(v) > 4096:
            raise InvalidParameters(f"{key} entry {k!r} is too long", field=key)


# ---- the bodies --------------------------------------------------------------------------------

GUEST_LOGIN = Schema(
    "GuestLogin",
    {
        "username": Field(
            "string",
            "2-30 characters: letters, digits, _ and -",
            required=True,
            pattern=USERNAME_RE.pattern,
        )
    },
)
LOGIN = Schema(
    "Login",
    {
        "username": Field("string", "A registered user's name", required=True, max_length=64),
        "password": Field("string", "Their password", required=True, max_length=1024),
    },
)
TOKEN_CREATE = Schema(
    "TokenCreate",
    {
        "name": Field("string", "A label to recognise the token by", required=True, max_length=64),
        "scopes": Field(
            "string-list",
            "read and/or write (default both); or agent alone, for corral agent",
            enum=("read", "write", "agent"),
        ),
        "expires_in_days": Field("integer", "1-3650; omitted: never expires"),
    },
)
_RESOURCE_FIELDS = {
    "memory_mb": Field("integer", "Memory in MB, within the tier's range"),
    "cpu_shares": Field("integer", "CPU in millicores (1000 = one CPU), within the tier's range"),
    "disk_mb": Field("integer", "Disk quota in MB, within the tier's range"),
}
CONTAINER_CREATE = Schema(
    "ContainerCreate",
    {
        "name": Field(
            "string",
            "1-64 letters, digits and hyphens, not starting with a hyphen; generated when omitted",
            pattern=NAME_RE.pattern,
        ),
        "image": Field("string", "One of GET /api/images", required=True),
        "role": Field("string", "One of GET /api/roles; default barebone"),
        **_RESOURCE_FIELDS,
        "environment": Field("string-map", "Set in the sandbox, never echoed back", max_items=64),
        "labels": Field("string-map", "The user's own; no corral. prefix", max_items=32),
        "volume": Field(
            "string",
            "A kept volume of yours (GET /api/volumes) to attach as /home/user instead of a new "
            "one; disk_mb is then at least its size (default: its size)",
            max_length=128,
        ),
    },
)
CONTAINER_SETTINGS = Schema(
    "ContainerSettings",
    {
        "name": Field("string", "New name; same rules as on create", pattern=NAME_RE.pattern),
        **_RESOURCE_FIELDS,
    },
)
