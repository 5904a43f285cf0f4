"""Requests aiohttp refuses before any route sees them (a line or a header over its 8,190-byte
limit, malformed HTTP), sent byte for byte: every one answered as the API's JSON error, none
logged as a traceback, nothing changed."""

from __future__ import annotations

import asyncio

import pytest

from tests.hostile.world import (
    World,
    assert_no_failure_logged,
    assert_refusal,
    snapshot,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONG = "a" * 9000
TOO_LARGE = (431, "request too large")
INVALID = (400, "invalid request")


def _request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


CASES: list[tuple[str, bytes, tuple[int, str]]] = [
    ("url-health", _request(f"GET /health?{LONG} HTTP/1.1\nHost: x\n"), TOO_LARGE),
    ("url-containers", _request(f"GET /api/containers/{LONG} HTTP/1.1\nHost: x\n"), TOO_LARGE),
    ("url-terminal", _request(f"GET /ws/terminal/{{box}}?token={LONG} HTTP/1.1\nHost: x\n"), TOO_LARGE),
    ("url-create", _request(f"POST /api/containers?{LONG} HTTP/1.1\nHost: x\nContent-Length: 2\n", b"{}"), TOO_LARGE),
    ("header-value", _request(f"GET /api/me HTTP/1.1\nHost: x\nX-Big: {LONG}\n"), TOO_LARGE),
    ("header-authorization", _request(f"GET /api/me HTTP/1.1\nHost: x\nAuthorization: Bearer {LONG}\n"), TOO_LARGE),
    ("header-name", _request(f"GET /api/me HTTP/1.1\nHost: x\n{LONG}: 1\n"), TOO_LARGE),
    ("many-headers", _request("GET /api/me HTTP/1.1\nHost: x\n" + "".join(f"X-{i}: 1\n" for i in range(200))), INVALID),
    ("header-without-colon", _request("GET /api/me HTTP/1.1\nHost: x\nBroken header\n"), INVALID),
    ("method-bad-characters", _request("G(E)T /api/me HTTP/1.1\nHost: x\n"), INVALID),
    ("request-line-short", _request("GET\n"), INVALID),
    ("version-unknown", _request("GET /api/me HTTP/9.9\nHost: x\n"), INVALID),
    ("not-http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", INVALID),
    ("content-length-negative", _request("POST /api/containers HTTP/1.1\nHost: x\nContent-Length: -1\n"), INVALID),
    ("content-length-text", _request("POST /api/containers HTTP/1.1\nHost: x\nContent-Length: ten\n"), INVALID),
    ("length-and-chunked", _request("POST /api/containers HTTP/1.1\nHost: x\nContent-Length: 2\nTransfer-Encoding: chunked\n", b"0\r\n\r\n"), INVALID),
    ("chunk-size-bad", _request("POST /api/containers HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n", b"zz\r\n{}\r\n0\r\n\r\n"), INVALID),
    ("encoding-unknown", _request("POST /api/containers HTTP/1.1\nHost: x\nTransfer-Encoding: gzip, chunked, x\n", b"0\r\n\r\n"), INVALID),
    ("nul-in-path", _request("GET /api/me\x00 HTTP/1.1\nHost: x\n"), INVALID),
    ("space-in-header-name", _request("GET /api/me HTTP/1.1\nHost: x\nX Y: 1\n"), INVALID),
]  # fmt: skip


async def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()  # the server closes after a refusal of this kind
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(("name", "request_bytes", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_refused_as_json(
    world: World,
    name: str,
    request_bytes: bytes,
    expected: tuple[int, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = await snapshot(world)
    request = request_bytes.replace(b"{box}", world.ids["box"].encode())
    status, headers, body = await _exchange(world.api.client.port, request)
    content_type = headers.get("content-type", "").split(";")[0]
    assert_refusal(status, content_type, body, expected)
    assert await snapshot(world) == before
    assert_no_failure_logged(caplog)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/health", "GET, HEAD"),
        ("PUT", "/api/containers", "GET, HEAD, POST"),
        ("POST", "/api/containers/{box}", "DELETE, GET, HEAD"),
        ("DELETE", "/api/containers/{box}/start", "POST"),
        ("POST", "/ws/terminal/{box}", "GET, HEAD"),
        ("PATCH", "/api/volumes", "GET, HEAD"),
    ],
)
async def test_405_says_what_is_allowed(
    world: World, method: str, path: str, allowed: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = await snapshot(world)
    resp = await world.api.client.request(method, world.path(path), headers=world.headers["alice"])
    assert_refusal(resp.status, resp.content_type, await resp.read(), (405, "method not allowed"))
    assert resp.headers["Allow"] == allowed
    assert await snapshot(world) == before
    assert_no_failure_logged(caplog)
