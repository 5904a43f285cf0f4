"""Requests are checked against the same declarations the document shows: what the document's
request schema refuses, the server refuses (400, naming the field), and what it allows passes."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from backend.openapi import openapi_document
from tests.conftest import BUSYBOX, Api

URI = "urn:corral:openapi"


def _body_schema(method: str, path: str) -> Draft202012Validator:
    document = openapi_document()
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource(contents=document, specification=DRAFT202012)
    )
    ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({"$ref": URI + ref["$ref"]}, registry=registry)


REFUSED = [
    ("/api/tokens", {"name": "x", "expires_in_days": 0}, "expires_in_days"),
    ("/api/tokens", {"name": "x", "expires_in_days": 3651}, "expires_in_days"),
    ("/api/tokens", {"name": "   "}, "name"),
    ("/api/tokens", {"name": "x" * 65}, "name"),
    ("/api/tokens", {"name": "x", "scopes": []}, "scopes"),
    ("/api/tokens", {"name": "x", "scopes": ["admin"]}, "scopes"),
    ("/api/tokens", {"name": "x", "tier": "pro"}, "tier"),
    ("/api/auth/guest", {"username": "bad name"}, "username"),
    ("/api/auth/guest", {"username": "x"}, "username"),
    ("/api/containers", {"image": BUSYBOX, "environment": {"1BAD": "x"}}, "environment"),
    ("/api/containers", {"image": BUSYBOX, "environment": {"OK": 5}}, "environment"),
    ("/api/containers", {"image": BUSYBOX, "labels": {"corral.owner": "me"}}, "labels"),
    ("/api/containers", {"image": BUSYBOX, "volume": "v" * 129}, "volume"),
    ("/api/containers", {"image": BUSYBOX, "memory_mb": "512"}, "memory_mb"),
]


@pytest.mark.parametrize(("path", "body", "field"), REFUSED)
async def test_what_the_document_refuses_the_server_refuses(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    assert list(_body_schema("post", path).iter_errors(body)), "the document allows it"
    _, headers = await api.user()
    resp = await api.client.post(path, json=body, headers=headers)
    data = await resp.json()
    assert resp.status == 400, data
    assert (data["error"], data["field"]) == ("invalid parameters", field)


async def test_a_bad_name_is_refused_by_both_with_its_own_error(api: Api) -> None:
    body = {"image": BUSYBOX, "name": "-dash-first"}
    assert list(_body_schema("post", "/api/containers").iter_errors(body))
    _, headers = await api.user()
    resp = await api.client.post("/api/containers", json=body, headers=headers)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid container name"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/tokens", {"name": " ci ", "expires_in_days": 3650, "scopes": ["read"]}, 201),
        ("/api/tokens", {"name": "x" * 64, "expires_in_days": 1}, 201),
        # JSON Schema's integer is any number without a fraction: 5.0 and 5e0 are 5.
        ("/api/tokens", {"name": "x", "expires_in_days": 5.0}, 201),
        ("/api/auth/guest", {"username": "a_b-9"}, 200),
    ],
)
async def test_what_the_document_allows_the_server_takes(
    api: Api, path: str, body: dict[str, Any], status: int
) -> None:
    assert not list(_body_schema("post", path).iter_errors(body))
    _, headers = await api.user()
    resp = await api.client.post(path, json=body, headers=headers)
    assert resp.status == status, await resp.json()


async def test_query_limits_are_refused_before_the_route_runs(api: Api) -> None:
    """The logs route's tail is checked (1-10000, as the document's parameter says) before the
    container is even looked up: a bad tail is 400 on a container that does not exist."""
    parameters = openapi_document()["paths"]["/api/containers/{id}/logs"]["get"]["parameters"]
    (tail,) = (p["schema"] for p in parameters if p["name"] == "tail")
    assert (tail["minimum"], tail["maximum"]) == (1, 10000)
    _, headers = await api.user()
    for value in ("0", "10001", "ten"):
        resp = await api.client.get(f"/api/containers/nope/logs?tail={value}", headers=headers)
        data = await resp.json()
        assert resp.status == 400 and data["field"] == "tail", data
    missing = await api.client.get("/api/containers/nope/logs?tail=10000", headers=headers)
    assert missing.status == 404
