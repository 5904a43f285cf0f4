"""The container commands of ``corral``, run as real subprocesses against a real backend (the
test's server via ``--server``, or the embedded one on a data directory)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import BUSYBOX, Api


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def corral(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corral.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**_clean_env(), **(env or {})},
    )
    async with asyncio.timeout(timeout_s):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CORRAL_SERVER", "CORRAL_TOKEN")}


def remote(api: Api, headers: dict[str, str]) -> list[str]:
    return ["--server", api.url, "--token", headers["Authorization"].removeprefix("Bearer ")]


async def test_ls_create_start_stop_rm_against_a_server(api: Api) -> None:
    _, headers = await api.user()
    server = remote(api, headers)
    empty = await corral(*server, "ls", "--json")
    assert empty.code == 0, empty.err
    assert empty.json() == {"containers": [], "count": 0, "limit": 5}

    made = await corral(
        *server,
        "create",
        "--name",
        "from-cli",
        "--image",
        BUSYBOX,
        "--memory",
        "256",
        "--cpu",
        "750",
        "--env",
        "SECRET=hunter2",
        "--label",
        "team=a",
        "--label",
        "tier=b=c",
        "--wait",
        "--json",
    )
    assert made.code == 0, made.err
    body = made.json()
    assert (body["name"], body["status"]) == ("from-cli", "running")
    assert body["labels"] == {"team": "a", "tier": "b=c"}
    assert body["resources"]["memory_mb"] == 256 and body["resources"]["cpu_shares"] == 750
    assert "hunter2" not in made.out

    listed = await corral(*server, "ls")
    assert listed.code == 0
    assert "from-cli" in listed.out and body["id"][:12] in listed.out
    assert "1 of 5 containers" in listed.out

    stopped = await corral(*server, "stop", body["id"][:12], "--json")
    assert stopped.code == 0 and stopped.json()["status"] == "stopped"
    started = await corral(*server, "start", body["db_id"])
    assert started.code == 0
    assert started.out.strip() == f"container started: from-cli ({body['id'][:12]})"
    removed = await corral(*server, "rm", body["id"], "--keep-volume", "--json")
    assert removed.code == 0
    assert removed.json()["volume_kept"] is True
    assert (await api.client.get(f"/api/containers/{body['db_id']}", headers=headers)).status == 404


async def test_refusals_exit_1_with_the_message_and_usage_exits_2(api: Api) -> None:
    _, headers = await api.user()
    server = remote(api, headers)
    missing = await corral(*server, "start", "0" * 64)
    assert missing.code == 1
    assert missing.err.strip() == "error: No container with this ID exists for you."
    as_json = await corral(*server, "rm", "0" * 64, "--json")
    assert as_json.code == 1 and as_json.json()["error"] == "container not found"
    bad_token = await corral("--server", api.url, "--token", "nope", "ls")
    assert bad_token.code == 1 and bad_token.err.startswith("error: ")
    out_of_range = await corral(*server, "create", "--image", BUSYBOX, "--memory", "9999")
    assert out_of_range.code == 1
    assert "memory_mb must be between 256 and 2048" in out_of_range.err
    unreachable = await corral("--server", "http://127.0.0.1:9", "--token", "t", "ls")
    assert unreachable.code == 1 and "cannot reach" in unreachable.err

    usages = [
        [*server, "start"],
        [*server, "create", "--memory", "lots"],
        [*server, "create", "--label", "no-equals-sign"],
        [*server, "settings", "some-id"],
        ["--token", "t", "ls"],
        ["ls", "--bogus"],
    ]
    results = await asyncio.gather(*(corral(*usage) for usage in usages))
    for usage, result in zip(usages, results, strict=True):
        assert result.code == 2, (usage, result.err)
        assert result.err


async def test_every_command_has_help() -> None:
    commands = ("ls", "create", "start", "stop", "rm", "settings", "events")
    results = await asyncio.gather(*(corral(command, "--help") for command in commands))
    for command, result in zip(commands, results, strict=True):
        assert result.code == 0, command
        assert result.out.startswith(f"usage: corral {command}"), command
        assert "--server" in result.out and "--json" in result.out


async def test_server_and_token_from_the_environment(api: Api) -> None:
    _, headers = await api.user()
    token = headers["Authorization"].removeprefix("Bearer ")
    result = await corral("ls", "--json", env={"CORRAL_SERVER": api.url, "CORRAL_TOKEN": token})
    assert result.code == 0, result.err
    assert result.json()["count"] == 0


async def test_events_follows_the_stream(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corral.cli",
        *remote(api, headers),
        "events",
        "--json",
        "--count",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        first = json.loads(await proc.stdout.readline())
        assert first["type"] == "list" and first["container"]["count"] == 1
        async with api.corral(headers) as client:
            await client.stop_container(made["id"])
            await client.start_container(made["id"])
        rest = [json.loads(await proc.stdout.readline()) for _ in range(2)]
        assert await proc.wait() == 0
    assert [m["type"] for m in rest] == ["container_stopped", "container_started"]
    assert [m["seq"] for m in rest] == [first["seq"] + 1, first["seq"] + 2]

    since = await corral(
        *remote(api, headers), "events", "--since", str(first["seq"]), "--count", "2"
    )
    assert since.code == 0
    lines = since.out.splitlines()
    assert "container_stopped" in lines[0] and "container_started" in lines[1]


async def test_settings_renames(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers, name="before")
    result = await corral(
        *remote(api, headers), "settings", made["id"], "--name", "after", "--json"
    )
    assert result.code == 0, result.err
    assert result.json()["container"]["name"] == "after"


async def test_without_a_server_it_runs_on_the_local_data_directory(
    tmp_path: Path, instance: str, settings: object
) -> None:
    data_dir = tmp_path / "embedded"
    data_dir.mkdir()
    (data_dir / "instance-id").write_text(instance + "\n")  # the fixture cleans up by label
    local = ["--data-dir", str(data_dir)]
    empty = await corral(*local, "ls", "--json")
    assert empty.code == 0, empty.err
    assert empty.json()["count"] == 0
    made = await corral(*local, "create", "--name", "local", "--wait", "--json")
    assert made.code == 0, made.err
    assert made.json()["status"] == "running"
    listed = await corral(*local, "ls", "--json")
    assert [c["name"] for c in listed.json()["containers"]] == ["local"]
    removed = await corral(*local, "rm", "local-does-not-exist")
    assert removed.code == 1
    assert (await corral(*local, "rm", made.json()["id"])).code == 0
