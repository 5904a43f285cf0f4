"""Containers, their settings and lifecycle, logs, stats and kept volumes: every bad request
refused, nothing changed (alice's running ``box`` included)."""

from __future__ import annotations

import pytest

from tests.conftest import BUSYBOX
from tests.hostile.world import Case, World, run_case

pytestmark = pytest.mark.asyncio(loop_scope="module")

CREATE = "/api/containers"
SETTINGS = "/api/containers/{box}/settings"


def _create(case: str, status: int, error: str, **body: object) -> Case:
    return Case(f"create-{case}", "POST", CREATE, status, error, body={"image": BUSYBOX, **body})


def _case(name: str, method: str, path: str, status: int, error: str, **kw: object) -> Case:
    return Case(name, method, path, status, error, **kw)  # type: ignore[arg-type]


NAMES = ["abc\n", "abc\r", "-dash", "x" * 65, "a b", "a_b", "", "a\x00b", "ünï", "a.b", "a/b"]
INVALID = "invalid parameters"
RESOURCES = [
    ("memory_mb", 0), ("memory_mb", -1), ("memory_mb", 10**6), ("memory_mb", "512"),
    ("memory_mb", 512.5), ("memory_mb", True), ("memory_mb", None), ("cpu_shares", 0),
    ("cpu_shares", 10**9), ("disk_mb", 0), ("disk_mb", 99_999), ("disk_mb", [64]),
]  # fmt: skip
ENVIRONMENTS = [
    {"KEY\n": "v"}, {"1BAD": "v"}, {"K-Y": "v"}, {"": "v"}, {"K": "a\x00b"}, {"K": 5},
    {"K": None}, [], "K=v", {f"K{i}": "v" for i in range(65)}, {"K": "v" * 4097},
    {"K" * 129: "v"},
]  # fmt: skip
LABELS = [
    {"corral.owner": "me"}, {"": "x"}, {"k\x00": "v"}, {"k\n": "v"}, {"k": "v\x1b[2J"},
    {"k": 5}, {f"k{i}": "v" for i in range(33)}, ["k"],
]  # fmt: skip

CREATES = (
    [_create(f"name-{i}", 400, "invalid container name", name=n) for i, n in enumerate(NAMES)]
    + [
        _create("name-number", 400, INVALID, name=5),
        _create("name-taken", 409, "container with this name already exists", name="box"),
        Case("create-image-missing", "POST", CREATE, 400, INVALID, body={"name": "x"}),
        _create("image-unknown", 400, "unsupported image", image="nope"),
        _create("image-empty", 400, "unsupported image", image=""),
        _create("image-number", 400, INVALID, image=5),
        _create("image-newline", 400, "unsupported image", image=BUSYBOX + "\n"),
        _create("role-unknown", 400, "unsupported role", role="nope"),
        _create("role-wrong-image", 400, "unsupported role", role="python"),
    ]
    + [_create(f"{f}-{i}", 400, INVALID, **{f: v}) for i, (f, v) in enumerate(RESOURCES)]
    + [_create(f"env-{i}", 400, INVALID, environment=e) for i, e in enumerate(ENVIRONMENTS)]
    + [_create(f"labels-{i}", 400, INVALID, labels=lb) for i, lb in enumerate(LABELS)]
    + [
        _create("volume-traversal", 400, INVALID, volume="../etc"),
        _create("volume-newline", 400, INVALID, volume="v\n"),
        _create("volume-number", 400, INVALID, volume=5),
        _create("volume-not-kept", 404, "volume not found", volume="corral-vol-nope"),
    ]
    + [_create(f"field-{f}", 400, INVALID, **{f: v}) for f, v in (
        ("tier", "pro"), ("owner_id", "x"), ("runtime", "runc"), ("privileged", True),
    )]
    + [
        _case("create-array", "POST", CREATE, 400, INVALID, body=[BUSYBOX]),
        _case("create-broken-json", "POST", CREATE, 400, "invalid json", raw=b'{"image": '),
        _case("create-deep-array", "POST", CREATE, 400, "invalid json", raw=b"[" * 60_000),
        _case("create-deep-object", "POST", CREATE, 400, "invalid json",
              raw=b'{"image": "corral/busybox", "labels": ' + b'{"a": ' * 40 + b"1" + b"}" * 41),
        _case("create-nan", "POST", CREATE, 400, "invalid json", raw=b'{"image": "x", "memory_mb": NaN}'),
        _case("create-overflow", "POST", CREATE, 400, "invalid json", raw=b'{"image": "x", "memory_mb": 1e400}'),
        _case("create-too-large", "POST", CREATE, 413, "request too large", raw=b"[" + b"1," * 40_000 + b"1]"),
        _case("create-wait-maybe", "POST", CREATE + "?wait=maybe", 400, INVALID, body={"image": BUSYBOX}),
        _case("create-wait-1", "POST", CREATE + "?wait=1", 400, INVALID, body={"image": BUSYBOX}),
        _case("create-read-only", "POST", CREATE, 403, "not authorized", body={"image": BUSYBOX}, who="read"),
        _case("create-anonymous", "POST", CREATE, 401, "unauthorized", body={"image": BUSYBOX}, who="none"),
    ]
)  # fmt: skip

SETTINGS_CASES = [
    _case("settings-name-newline", "PATCH", SETTINGS, 400, "invalid container name", body={"name": "b\n"}),
    _case("settings-name-taken-by-nobody-else", "PATCH", SETTINGS, 400, "invalid container name", body={"name": "-x"}),
    _case("settings-memory-zero", "PATCH", SETTINGS, 400, INVALID, body={"memory_mb": 0}),
    _case("settings-disk-string", "PATCH", SETTINGS, 400, INVALID, body={"disk_mb": "64"}),
    _case("settings-image", "PATCH", SETTINGS, 400, INVALID, body={"image": BUSYBOX}),
    _case("settings-environment", "PATCH", SETTINGS, 400, INVALID, body={"environment": {}}),
    _case("settings-deep-json", "PATCH", SETTINGS, 400, "invalid json", raw=b"[" * 60_000),
    _case("settings-array", "PATCH", SETTINGS, 400, INVALID, body=[]),
    _case("settings-others", "PATCH", SETTINGS, 404, "container not found", body={"memory_mb": 128}, who="bob"),
    _case("settings-read-only", "PATCH", SETTINGS, 403, "not authorized", body={"memory_mb": 128}, who="read"),
]  # fmt: skip

NOT_FOUND = "container not found"
IDS = ["{box}%0A", "{box_db}%0A", "box%0A", "box%00", "%20box", "nope", "{box}x", "BOX"]
ON_IDS = [
    _case(f"get-id-{i}", "GET", f"/api/containers/{ident}", 404, NOT_FOUND)
    for i, ident in enumerate(IDS)
] + [
    _case(f"{verb}-by-bob", method, f"/api/containers/{{box}}{suffix}", 404, NOT_FOUND, who="bob")
    for verb, method, suffix in (
        ("get", "GET", ""), ("start", "POST", "/start"), ("stop", "POST", "/stop"),
        ("delete", "DELETE", ""), ("reinstall", "POST", "/role/reinstall"),
        ("logs", "GET", "/logs"), ("stats", "GET", "/stats"),
    )
] + [
    _case("stop-newline", "POST", "/api/containers/box%0A/stop", 404, NOT_FOUND),
    _case("delete-newline", "DELETE", "/api/containers/{box_db}%0A", 404, NOT_FOUND),
    _case("stop-agent-newline", "POST", "/api/containers/agent:00000000-0000-4000-8000-000000000000%0A/stop", 404, "agent not found"),
    _case("stop-agent-unknown", "POST", "/api/containers/agent:00000000-0000-4000-8000-000000000000/stop", 404, "agent not found"),
    _case("delete-keep-maybe", "DELETE", "/api/containers/{box}?keep_volume=maybe", 400, INVALID),
    _case("delete-keep-empty", "DELETE", "/api/containers/{box}?keep_volume=", 400, INVALID),
    _case("stop-read-only", "POST", "/api/containers/{box}/stop", 403, "not authorized", who="read"),
    _case("delete-anonymous", "DELETE", "/api/containers/{box}", 401, "unauthorized", who="none"),
    _case("list-all-null", "GET", "/api/containers?all=null", 400, INVALID),
    _case("list-all-yes", "GET", "/api/containers?all=yes", 400, INVALID),
    _case("list-all-not-admin", "GET", "/api/containers?all=true", 403, "not authorized"),
    _case("logs-tail-zero", "GET", "/api/containers/{box}/logs?tail=0", 400, INVALID),
    _case("logs-tail-huge", "GET", "/api/containers/{box}/logs?tail=10001", 400, INVALID),
    _case("logs-tail-text", "GET", "/api/containers/{box}/logs?tail=ten", 400, INVALID),
    _case("logs-tail-newline", "GET", "/api/containers/{box}/logs?tail=5%0A", 400, INVALID),
    _case("logs-follow-maybe", "GET", "/api/containers/{box}/logs?follow=maybe", 400, INVALID),
    _case("volumes-delete-unknown", "DELETE", "/api/volumes/nope", 404, "volume not found"),
    _case("volumes-delete-newline", "DELETE", "/api/volumes/nope%0A", 404, "volume not found"),
    _case("volumes-all-not-admin", "GET", "/api/volumes?all=true", 403, "not authorized"),
    _case("volumes-delete-read-only", "DELETE", "/api/volumes/nope", 403, "not authorized", who="read"),
    _case("containers-put", "PUT", CREATE, 405, "method not allowed"),
    _case("containers-delete-all", "DELETE", CREATE, 405, "method not allowed"),
    _case("container-patch", "PATCH", "/api/containers/{box}", 405, "method not allowed"),
    _case("start-get", "GET", "/api/containers/{box}/start", 405, "method not allowed"),
    _case("no-such-route", "GET", "/api/containers/{box}/nope", 404, "not found"),
]  # fmt: skip

CASES = CREATES + SETTINGS_CASES + ON_IDS


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_refused_and_nothing_changed(
    world: World, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    await run_case(world, case, caplog)
