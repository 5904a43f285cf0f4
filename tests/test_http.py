"""The HTTP conventions: JSON errors for every failure, size limits, methods, the OpenAPI spec."""

from __future__ import annotations

from backend.openapi import openapi_document
from backend.routes import ROUTES
from backend.settings import Settings
from tests.conftest import Api


async def test_health_checks_everything(api: Api) -> None:
    resp = await api.client.get("/health")
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "ok"
    assert body["database"] == "ok" and body["docker"] == "ok"
    assert body["runtime"] == "runsc"
    assert body["limits_enforced"] is True  # memory, CPU and ext4 disk quotas all applied


async def test_errors_are_json_everywhere(api: Api) -> None:
    _, headers = await api.user()
    cases = [
        ("GET", "/no/such/route", None, 404, "not found"),
        ("PUT", "/api/containers", None, 405, "method not allowed"),
        ("POST", "/api/containers", b"{not json", 400, "invalid json"),
        ("POST", "/api/containers", b"[1, 2]", 400, "invalid parameters"),
        ("POST", "/api/containers", b"x" * (65 * 1024), 413, "request too large"),
        ("GET", "/api/containers?all=maybe", None, 400, "invalid parameters"),
    ]
    for method, url, data, status, error in cases:
        resp = await api.client.request(
            method, url, data=data, headers={**headers, "Content-Type": "application/json"}
        )
        assert resp.status == status, (method, url)
        assert resp.content_type == "application/json", (method, url)
        body = await resp.json()
        assert body["error"] == error, (method, url, body)
        assert isinstance(body["message"], str) and body["message"]


async def test_openapi_covers_every_route(api: Api) -> None:
    resp = await api.client.get("/api/openapi.json")
    doc = await resp.json()
    assert resp.status == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(r.method, r.path) for r in ROUTES}  # type: ignore[attr-defined]
    assert documented == served
    declared = openapi_document()
    assert doc["paths"] == declared["paths"]
    assert doc["components"].keys() == declared["components"].keys()
    create = doc["components"]["schemas"]["ContainerCreate"]
    assert create["additionalProperties"] is False
    assert "image" in create["required"]


async def test_the_served_document_carries_what_the_configuration_fixes(
    api: Api, settings: Settings
) -> None:
    """Ranges over every tier, the offered images this host has built, the catalog's roles and
    which of them work on each image: what the server refuses for its configuration, the
    document refuses too."""
    doc = await (await api.client.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for shape in ("ContainerCreate", "ContainerSettings"):
        for resource in ("memory_mb", "cpu_shares", "disk_mb"):
            ranges = [tier.range_for(resource) for tier in settings.tiers.values()]
            bounds = schemas[shape]["properties"][resource]
            assert (bounds["minimum"], bounds["maximum"]) == (
                min(r.min for r in ranges),
                max(r.max for r in ranges),
            )
    create = schemas["ContainerCreate"]
    assert create["properties"]["image"]["enum"] == [
        "corral/busybox",
        "corral/busybox:latest",
        "corral/debian:bookworm",
    ]
    assert {"barebone", "python"} <= set(create["properties"]["role"]["enum"])
    on_busybox = next(
        rule["then"]["properties"]["role"]["enum"]
        for rule in create["allOf"]
        if "corral/busybox" in rule["if"]["properties"]["image"]["enum"]
    )
    assert on_busybox == ["barebone"]  # the others install packages: Debian only


async def test_a_405_says_what_the_route_allows(api: Api) -> None:
    resp = await api.client.request("TRACE", "/api/containers")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, HEAD, POST"
