"""Every answer the suite's backends send, checked against the OpenAPI document they serve.

``serve`` (and so the ``api`` fixture, the test clients and every ``CorralClient`` pointed at
them) records each response as it is prepared; the JSON ones are validated against the schema the
document gives their route and status, and a status the document does not list for the route is
a fault too. Every event the backend commits is checked against the events stream's message
schema (``x-websocket-messages``) as well. The test that saw a fault fails when its backend
stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from backend.events.log import Event
from backend.openapi import openapi_document

DOCUMENT_URI = "urn:corral:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass
class Conformance:
    """Validates responses against the document; ``faults`` lists what did not conform."""

    document: dict[str, Any] = field(default_factory=openapi_document)
    faults: list[str] = field(default_factory=list)
    checked: int = 0
    events: bool = True  # off for a test that publishes made-up payloads itself
    _validators: dict[str, Draft202012Validator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        resource = Resource(contents=self.document, specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)

    def attach(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._on_prepare)

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        match = request.match_info
        if match.http_exception is not None or match.route.resource is None:
            return  # no such route (404) or method (405): nothing in the document to match
        path = match.route.resource.canonical
        method = request.method.lower()
        body = response.body if isinstance(response, web.Response) else None
        self.check(method, path, response.status, response.content_type, body)

    def check(self, method: str, path: str, status: int, content_type: str, body: Any) -> None:
        where = f"{method.upper()} {path} -> {status}"
        operation = self.document["paths"].get(path, {}).get(method)
        if operation is None:
            self.faults.append(f"{where}: the route is not in the document")
            return
        answer = operation["responses"].get(str(status))
        if answer is None:
            self.faults.append(f"{where}: the document lists no such status for the route")
            return
        if content_type != "application/json" or not isinstance(body, bytes):
            return
        if "application/json" not in answer.get("content", {}):
            self.faults.append(f"{where}: answered JSON where the document says otherwise")
            return
        pointer = _pointer(
            "", "paths", path, method, "responses", str(status), "content",
            "application/json", "schema",
        )  # fmt: skip
        self._validate(where, pointer, json.loads(body))

    def on_event(self, event: Event) -> None:
        """An event log listener: the event as the stream sends it, against its schema."""
        if not self.events:
            return
        self._validate(
            f"event {event.type}",
            _pointer("", "components", "schemas", "EventMessage"),
            json.loads(json.dumps(event.message())),
        )

    def _validate(self, where: str, pointer: str, instance: Any) -> None:
        self.checked += 1
        for error in self._validator(pointer).iter_errors(instance):
            at = "/".join(str(p) for p in error.absolute_path) or "(the body)"
            self.faults.append(f"{where}: at {at}: {error.message}")

    def _validator(self, pointer: str) -> Draft202012Validator:
        found = self._validators.get(pointer)
        if found is None:
            schema = {"$ref": f"{DOCUMENT_URI}#{pointer}"}
            found = Draft202012Validator(schema, registry=self._registry)
            self._validators[pointer] = found
        return found

    def assert_conforms(self) -> None:
        if self.faults:
            listed = "\n  ".join(dict.fromkeys(self.faults))
            raise AssertionError(f"answers that break the OpenAPI document:\n  {listed}")
