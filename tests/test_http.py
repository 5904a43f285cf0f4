"""The HTTP conventions: JSON errors for every failure, size limits, methods, the OpenAPI spec."""

from __future__ import annotations

from backend.openapi import openapi_document
from backend.routes import ROUTES
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
    assert doc == openapi_document()
    create = doc["components"]["schemas"]["ContainerCreate"]
    assert create["additionalProperties"] is False
    assert "image" in create["required"]
