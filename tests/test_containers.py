"""The contract's Containers section (settings aside) against the real engine with runsc."""

from __future__ import annotations

import asyncio

import docker
import pytest
from sqlalchemy import func, select

from backend.db.models import Container, EventRecord
from backend.settings import Settings
from backend.state import SESSIONS
from devkit.waiting import wait_for
from tests.conftest import BUSYBOX, Api, serve

CONTAINER_KEYS = {
    "id",
    "db_id",
    "name",
    "image",
    "role",
    "status",
    "created_at",
    "last_used_at",
    "resources",
    "runtime",
    "labels",
}


async def _row_count(api: Api) -> int:
    async with api.app[SESSIONS]() as session:
        return int(await session.scalar(select(func.count()).select_from(Container)) or 0)


async def test_create_answers_202_then_runs_with_progress_events(
    api: Api, docker_client: docker.DockerClient, instance: str
) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers",
        json={"image": BUSYBOX, "name": "first", "labels": {"team": "a"}},
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 202
    assert body["status"] == "creating"
    assert body["message"]
    assert set(body) >= CONTAINER_KEYS
    assert body["labels"] == {"team": "a"}
    assert body["resources"] == {"memory_mb": 512, "cpu_shares": 500, "disk_mb": 2048}

    async def running() -> bool:
        return (await api.get(headers, body["db_id"]))["status"] == "running"

    await wait_for(running, 30, what="the container to run")
    got = await api.get(headers, body["db_id"])
    assert len(got["id"]) == 64 and got["id"] != got["db_id"]
    assert docker_client.containers.get(got["id"]).status == "running"

    async with api.app[SESSIONS]() as session:
        events = (
            (await session.execute(select(EventRecord).order_by(EventRecord.seq))).scalars().all()
        )
    types = [e.type for e in events]
    assert types[0] == "container_created"
    assert "container_started" in types
    progress = [e.payload for e in events if e.type == "container_progress"]
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    assert progress[-1]["progress"] == 100 and progress[-1]["complete"] is True
    assert all(set(p) >= {"id", "stage", "message", "progress"} for p in progress)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_sandbox_is_hardened_and_labelled(
    api: Api, docker_client: docker.DockerClient, instance: str
) -> None:
    user, headers = await api.user()
    made = await api.create(
        headers, memory_mb=256, cpu_shares=750, environment={"SECRET_KEY": "hunter2"}
    )
    assert "environment" not in made
    assert "hunter2" not in str(made)
    attrs = docker_client.api.inspect_container(made["id"])
    host = attrs["HostConfig"]
    assert host["Runtime"] == "runsc"
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 750_000_000
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["CapDrop"] == ["ALL"]
    assert "SYS_ADMIN" not in (host["CapAdd"] or [])
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NetworkMode"] == "none"
    assert host["RestartPolicy"]["Name"] in ("", "no")
    labels = attrs["Config"]["Labels"]
    assert labels["corral.managed"] == "true"
    assert labels["corral.db_id"] == made["db_id"]
    assert labels["corral.user_id"] == user.id
    assert labels["corral.instance"] == instance
    assert made["db_id"] in attrs["Name"]
    assert made["name"] not in attrs["Name"]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/home/user"]["Name"] == f"corral-vol-{made['db_id']}"
    assert "SECRET_KEY=hunter2" in attrs["Config"]["Env"]

    code, out = docker_client.containers.get(made["id"]).exec_run(
        ["sh", "-c", "echo ok > f; cat f"]
    )
    assert code == 0 and out.strip() == b"ok"


async def test_ids_resolve_by_db_id_docker_id_and_prefix(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    for ident in (made["db_id"], made["id"], made["id"][:12], made["id"][:20].upper()):
        assert (await api.get(headers, ident))["db_id"] == made["db_id"]
    for ident in (made["id"][:11], "nonsense", "0" * 64, "agentx"):
        resp = await api.client.get(f"/api/containers/{ident}", headers=headers)
        assert resp.status == 404
        assert (await resp.json())["error"] == "container not found"


async def test_another_users_container_is_indistinguishable_from_none(api: Api) -> None:
    _, owner = await api.user()
    _, other = await api.user()
    made = await api.create(owner)
    unknown_id = "11111111-2222-4333-8444-555555555555"
    for method, suffix in (("GET", ""), ("POST", "/start"), ("POST", "/stop"), ("DELETE", "")):
        theirs = await api.client.request(
            method, f"/api/containers/{made['db_id']}{suffix}", headers=other
        )
        missing = await api.client.request(
            method, f"/api/containers/{unknown_id}{suffix}", headers=other
        )
        assert theirs.status == missing.status == 404
        assert await theirs.read() == await missing.read()
    listed = await (await api.client.get("/api/containers", headers=other)).json()
    assert listed["containers"] == [] and listed["count"] == 0
    assert (await api.get(owner, made["db_id"]))["status"] == "running"


async def test_per_tier_container_limit(
    api: Api, docker_client: docker.DockerClient, instance: str
) -> None:
    guest = await (await api.client.post("/api/auth/guest", json={"username": "lim"})).json()
    headers = {"Authorization": f"Bearer {guest['token']}"}
    await api.create(headers)
    resp = await api.client.post("/api/containers", json={"image": BUSYBOX}, headers=headers)
    body = await resp.json()
    assert resp.status == 403
    assert body["error"] == "container limit reached"
    assert (body["current"], body["limit"], body["tier"]) == (1, 1, "guest")
    assert (
        len(
            docker_client.containers.list(
                all=True, filters={"label": f"corral.instance={instance}"}
            )
        )
        == 1
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"memory_mb": 4096},
            "memory_mb",
            "memory_mb must be between 256 and 2048 on the free tier",
        ),
        (
            {"memory_mb": 128},
            "memory_mb",
            "memory_mb must be between 256 and 2048 on the free tier",
        ),
        (
            {"cpu_shares": 9000},
            "cpu_shares",
            "cpu_shares must be between 250 and 2000 on the free tier",
        ),
        ({"disk_mb": 1}, "disk_mb", "disk_mb must be between 1024 and 10240 on the free tier"),
    ],
)
async def test_out_of_range_resources_are_rejected_not_clamped(
    api: Api,
    docker_client: docker.DockerClient,
    instance: str,
    body: dict[str, int],
    field: str,
    message: str,
) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers", json={"image": BUSYBOX, **body}, headers=headers
    )
    data = await resp.json()
    assert resp.status == 400
    assert data == {"error": "invalid parameters", "message": message, "field": field}
    assert await _row_count(api) == 0
    assert (
        docker_client.containers.list(all=True, filters={"label": f"corral.instance={instance}"})
        == []
    )


@pytest.mark.parametrize("value", [True, "512", 512.5, None, [512]])
async def test_numbers_must_be_json_integers(api: Api, value: object) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers", json={"image": BUSYBOX, "memory_mb": value}, headers=headers
    )
    data = await resp.json()
    assert resp.status == 400
    assert data["error"] == "invalid parameters" and data["field"] == "memory_mb"
    assert await _row_count(api) == 0


@pytest.mark.parametrize(
    "raw",
    [
        '{"image": "corral/busybox", "memory_mb": NaN}',
        '{"image": "corral/busybox", "memory_mb": Infinity}',
        # A fraction, in either notation (1e3 and 512.0 are integers: JSON has one number type,
        # and JSON Schema's integer is any number without a fraction).
        '{"image": "corral/busybox", "memory_mb": 5.125e2}',
        '{"image": "corral/busybox", "memory_mb": 512.5}',
    ],
)
async def test_non_finite_and_float_numbers_are_refused(api: Api, raw: str) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers", data=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"] in ("invalid parameters", "invalid json")
    assert await _row_count(api) == 0


@pytest.mark.parametrize("field", ["tier", "owner_id", "runtime", "privileged"])
async def test_unknown_fields_are_rejected(api: Api, field: str) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers", json={"image": BUSYBOX, field: "x"}, headers=headers
    )
    data = await resp.json()
    assert resp.status == 400
    assert data["error"] == "invalid parameters" and data["field"] == field
    assert await _row_count(api) == 0


@pytest.mark.parametrize("name", ["-lead", "", "has space", "x" * 65, "dots.no", "ümlaut"])
async def test_invalid_names(api: Api, name: str) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers", json={"image": BUSYBOX, "name": name}, headers=headers
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid container name"
    assert await _row_count(api) == 0


async def test_bad_environment_and_labels(api: Api) -> None:
    _, headers = await api.user()
    cases = [
        {"environment": {"1BAD": "x"}},
        {"environment": {f"K{i}": "v" for i in range(65)}},
        {"labels": {"corral.managed": "false"}},
        {"labels": {f"k{i}": "v" for i in range(33)}},
        {"labels": {"a": 1}},
    ]
    for extra in cases:
        resp = await api.client.post(
            "/api/containers", json={"image": BUSYBOX, **extra}, headers=headers
        )
        assert resp.status == 400, extra
        assert (await resp.json())["error"] == "invalid parameters", extra
    assert await _row_count(api) == 0


async def test_unsupported_image_is_never_pulled(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user()
    for image in ("alpine:latest", "corral/nope", ""):
        resp = await api.client.post("/api/containers", json={"image": image}, headers=headers)
        assert resp.status == 400
        assert (await resp.json())["error"] == "unsupported image"
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get("alpine:latest")
    missing = await api.client.post("/api/containers", json={}, headers=headers)
    assert missing.status == 400
    assert (await missing.json())["field"] == "image"


async def test_unsupported_role(api: Api) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/containers", json={"image": BUSYBOX, "role": "wizard"}, headers=headers
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "unsupported role"


async def test_duplicate_name_is_409(api: Api) -> None:
    _, headers = await api.user()
    _, other = await api.user()
    await api.create(headers, name="dup")
    resp = await api.client.post(
        "/api/containers", json={"image": BUSYBOX, "name": "dup"}, headers=headers
    )
    assert resp.status == 409
    assert (await resp.json())["error"] == "container with this name already exists"
    await api.create(other, name="dup")


async def test_start_and_stop_are_idempotent(api: Api, docker_client: docker.DockerClient) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    url = f"/api/containers/{made['id']}"

    stop = await (await api.client.post(f"{url}/stop", headers=headers)).json()
    assert stop == {
        "message": "container stopped",
        "id": made["id"],
        "name": made["name"],
        "status": "stopped",
    }
    assert docker_client.containers.get(made["id"]).status == "exited"
    again = await api.client.post(f"{url}/stop", headers=headers)
    assert again.status == 200
    assert (await again.json())["message"] == "container already stopped"

    start = await (await api.client.post(f"{url}/start", headers=headers)).json()
    assert start == {
        "message": "container started",
        "id": made["id"],
        "name": made["name"],
        "status": "running",
    }
    assert docker_client.containers.get(made["id"]).status == "running"
    again = await api.client.post(f"{url}/start", headers=headers)
    assert again.status == 200
    assert (await again.json())["message"] == "container already running"
    assert (await api.get(headers, made["id"]))["status"] == "running"


async def test_delete_removes_the_volume(api: Api, docker_client: docker.DockerClient) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    resp = await api.client.delete(f"/api/containers/{made['id']}", headers=headers)
    body = await resp.json()
    assert resp.status == 200
    assert {k: body[k] for k in ("message", "id", "db_id", "name")} == {
        "message": "container deleted",
        "id": made["id"],
        "db_id": made["db_id"],
        "name": made["name"],
    }
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(made["id"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(f"corral-vol-{made['db_id']}")
    assert (await api.client.get(f"/api/containers/{made['db_id']}", headers=headers)).status == 404


async def test_delete_with_keep_volume_keeps_the_data(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    docker_client.containers.get(made["id"]).exec_run(["sh", "-c", "echo keep > /home/user/f"])
    resp = await api.client.delete(
        f"/api/containers/{made['id']}?keep_volume=true", headers=headers
    )
    assert resp.status == 200
    volume = docker_client.volumes.get(f"corral-vol-{made['db_id']}")
    out = docker_client.containers.run(
        BUSYBOX,
        ["cat", "/v/f"],
        remove=True,
        runtime="runsc",
        network_mode="none",
        volumes={volume.name: {"bind": "/v", "mode": "ro"}},
    )
    assert out.strip() == b"keep"


async def test_list_shape_and_limit(api: Api) -> None:
    _, headers = await api.user(tier="pro")
    await api.create(headers, name="one")
    await api.create(headers, name="two")
    body = await (await api.client.get("/api/containers", headers=headers)).json()
    assert body["count"] == 2 and body["limit"] == 10
    assert [c["name"] for c in body["containers"]] == ["one", "two"]
    assert all(set(c) >= CONTAINER_KEYS for c in body["containers"])


async def test_images_and_roles(api: Api) -> None:
    _, headers = await api.user()
    images = await (await api.client.get("/api/images", headers=headers)).json()
    busybox = next(i for i in images["images"] if i["name"] == BUSYBOX)
    assert busybox["available"] is True
    roles = await (await api.client.get("/api/roles", headers=headers)).json()
    assert [r["id"] for r in roles["roles"]] == ["barebone", "standard", "python", "node", "go"]
    assert roles["roles"][0]["packages"] == []


async def test_list_and_get_ask_docker_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.state import ENGINES

    _, headers = await api.user(tier="pro")
    made = [await api.create(headers, name=f"n{i}") for i in range(3)]
    calls: list[object] = []
    engines = api.app[ENGINES]
    service = engines.first.docker
    original = service.run
    watcher_tasks = engines.first.watch.current._tasks
    probe_tasks = engines._tasks

    async def counting(*args: object, **kwargs: object) -> object:
        task = asyncio.current_task()
        # The watcher may sync meanwhile, and the engine's health is probed in the background.
        if task not in watcher_tasks and task not in probe_tasks:
            calls.append(args[0])
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "run", counting)
    listed = await (await api.client.get("/api/containers", headers=headers)).json()
    assert listed["count"] == 3
    for item in made:
        assert (await api.get(headers, item["id"]))["status"] == "running"
    assert calls == []


async def test_an_expired_guest_cannot_create_or_start(settings: Settings) -> None:
    """The session's end is moved into the past in the database, as no request would: with
    remembered token checks off, so the next request reads it (time does this in real use)."""
    async with serve(settings.with_overrides(auth_cache_s=0)) as api:
        await _expired_guest(api)


async def _expired_guest(api: Api) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from backend.db.models import User, utcnow

    guest = await (await api.client.post("/api/auth/guest", json={"username": "late"})).json()
    headers = {"Authorization": f"Bearer {guest['token']}"}
    made = await api.create(headers)
    await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
    async with api.app[SESSIONS]() as session:
        await session.execute(
            update(User)
            .where(User.id == guest["user"]["id"])
            .values(session_expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()

    start = await api.client.post(f"/api/containers/{made['id']}/start", headers=headers)
    assert start.status == 403
    assert (await start.json())["error"] == "guest session expired"
    assert (await api.get(headers, made["id"]))["status"] == "stopped"
    listed = await api.client.get("/api/containers", headers=headers)
    assert listed.status == 200  # still signed in: they can see, stop and delete what they made
    gone = await api.client.delete(f"/api/containers/{made['id']}", headers=headers)
    assert gone.status == 200
    create = await api.client.post("/api/containers", json={"image": BUSYBOX}, headers=headers)
    assert create.status == 403
    assert (await create.json())["error"] == "guest session expired"
