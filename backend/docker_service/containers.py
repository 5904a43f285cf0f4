"""Containers: create (a sandbox, or a short-lived image build), start, stop, remove, rename,
inspect, list and find."""

from __future__ import annotations

import re
import socket
from collections.abc import Collection, Mapping
from typing import Any

import docker.types

from backend.docker_service.client import EngineClient
from backend.docker_service.models import (
    ContainerState,
    SandboxSpec,
    state_from_inspect,
    state_from_summary,
)
from backend.docker_service.volumes import VolumeCalls
from backend.errors import DockerNotFound


class ContainerCalls(EngineClient):
    async def create_container(self, spec: SandboxSpec) -> str:
        """Create a sandbox (not started); ``VolumeGone`` unless its volume exists with
        ``spec.volume_labels`` (checked in the same worker call, just before the create)."""

        def create() -> str:
            api = self._api()
            VolumeCalls.require_volume(api, spec.volume, spec.volume_labels)
            binds: dict[str, Mapping[str, str]] = {
                spec.volume: {"bind": spec.mount_point, "mode": "rw"},
                **spec.extra_binds,
            }
            host_config = api.create_host_config(
                binds=binds,
                mem_limit=f"{spec.memory_mb}m",
                memswap_limit=f"{spec.memory_mb}m",
                nano_cpus=spec.cpu_millicores * 1_000_000,
                pids_limit=spec.pids_limit,
                cap_drop=["ALL"],
                cap_add=list(spec.cap_add),
                security_opt=["no-new-privileges"],
                network_mode=spec.network_mode,
                runtime=spec.runtime,
                restart_policy={"Name": "no"},
                init=False,
                # json-file whatever the engine's default: GET .../logs must be able to read it,
                # and the output a sandbox may write is bounded on the host's disk.
                log_config=docker.types.LogConfig(
                    type="json-file",
                    config={"max-size": f"{spec.log_max_mb}m", "max-file": "2"},
                ),
            )
            created = api.create_container(
                image=spec.image,
                command=spec.command,
                name=spec.name,
                hostname=spec.hostname,
                environment=spec.environment,
                labels=spec.labels,
                working_dir=spec.mount_point,
                host_config=host_config,
                network_disabled=spec.network_mode == "none",
                stop_signal="SIGTERM",
            )
            return str(created["Id"])

        return await self.run(create)

    async def create_build_container(
        self,
        name: str,
        image: str,
        command: list[str],
        runtime: str,
        binds: Mapping[str, Mapping[str, str]],
    ) -> str:
        """A short-lived container that builds an image (no network, nothing of a sandbox's
        limits): it runs ``command`` as the image's user in the image's configuration, so a
        commit of it inherits that configuration unchanged."""

        def create() -> str:
            api = self._api()
            host_config = api.create_host_config(
                binds=dict(binds),
                network_mode="none",
                runtime=runtime,
                security_opt=["no-new-privileges"],
                restart_policy={"Name": "no"},
            )
            created = api.create_container(
                image=image,
                command=command,
                name=name,
                host_config=host_config,
                network_disabled=True,
            )
            return str(created["Id"])

        return await self.run(create)

    async def attach_output(self, container_id: str) -> socket.socket:
        """The raw, non-blocking socket of a (not yet started) container's stdout and stderr,
        in Docker's multiplexed framing (see ``read_exec_output``); hijacked by
        ``engine_socket``, as ``docker attach`` does."""
        path = await self._path("/containers/{0}/attach", container_id)
        params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
        return await self._socket.hijack(path, params, None)

    async def wait(self, container_id: str, timeout_s: int) -> int:
        """Wait for a container to exit; its exit code."""

        def wait() -> int:
            result: Any = self._api().wait(container_id, timeout=timeout_s)
            return int(result.get("StatusCode", -1))

        return await self.run(wait)

    async def list_named(self, prefix: str) -> list[ContainerState]:
        """Every container whose name starts with ``prefix`` (running or not)."""
        rows: list[dict[str, Any]] = await self.run(
            lambda: self._api().containers(all=True, filters={"name": prefix})
        )
        states = [state_from_summary(row) for row in rows]
        return [s for s in states if s.name.startswith(prefix)]

    async def start(self, container_id: str) -> bool:
        """Start a container; False when it was already running (the engine's 304).

        The engine's answer decides "already running", so no inspect is needed beforehand. The
        SDK's ``start`` hides that answer, so this one request goes through ``engine_socket``."""
        path = await self._path("/containers/{0}/start", container_id)
        return await self._socket.request("POST", path) != 304

    async def stop(self, container_id: str, timeout_s: int) -> bool:
        """Stop a container (SIGKILL after ``timeout_s``); False when it was not running."""

        path = await self._path("/containers/{0}/stop", container_id)
        status = await self._socket.request(
            "POST", path, {"t": timeout_s}, timeout_s=self._timeout + timeout_s
        )
        return status != 304

    async def remove(self, container_id: str) -> bool:
        """Force-remove a container; False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_container(container_id, force=True))
        except DockerNotFound:
            return False
        return True

    async def rename(self, container_id: str, name: str) -> None:
        await self.run(lambda: self._api().rename(container_id, name))

    async def inspect(self, container_id: str) -> ContainerState | None:
        try:
            raw: dict[str, Any] = await self.run(
                lambda: self._api().inspect_container(container_id)
            )
        except DockerNotFound:
            return None
        return state_from_inspect(raw)

    async def list_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all ``labels``, in one engine call."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        rows: list[dict[str, Any]] = await self.run(
            lambda: self._api().containers(all=True, filters=filters)
        )
        return [state_from_summary(row) for row in rows]

    async def find_containers(
        self, ids: Collection[str], names: Collection[str]
    ) -> list[ContainerState]:
        """The containers (running or not) whose ID is among ``ids`` or whose name is among
        ``names``, in at most two engine calls however many are asked for: one inspect each
        made confirming 1,000 lost containers cost 2,000 calls. Docker matches an ``id`` filter
        as a prefix and a ``name`` filter as a regular expression, so this may return more than
        was asked for (never less); callers compare IDs and names exactly."""
        queries: list[dict[str, list[str]]] = []
        if ids:
            queries.append({"id": sorted(set(ids))})
        if names:
            queries.append({"name": [f"^/{re.escape(name)}$" for name in sorted(set(names))]})
        found: dict[str, ContainerState] = {}
        for filters in queries:
            rows: list[dict[str, Any]] = await self.run(
                lambda filters=filters: self._api().containers(all=True, filters=filters)
            )
            found.update((state.id, state) for state in map(state_from_summary, rows))
        return list(found.values())
