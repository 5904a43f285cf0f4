"""The one wrapper around the docker SDK.

Every SDK call is blocking, so each runs in a thread pool sized for concurrent work and never on the
event loop. Docker's own errors are translated here, once, into ``DockerUnavailable`` (the engine
cannot be reached: 503), ``DockerNotFound``, ``DockerConflict`` and ``DockerError``, with messages
stripped of host paths, sockets and addresses so they are safe to show to a client. Long-lived
streams (stats, logs) are read on the event loop instead, over the engine's socket
(``backend.docker_http``), with the same errors.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import docker
import docker.errors
import docker.types
import docker.utils
import requests.exceptions

from backend.docker_http import EngineHttp
from backend.errors import (
    DockerConflict,
    DockerError,
    DockerNotFound,
    DockerUnavailable,
    sanitize,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SandboxSpec:
    """Everything Docker needs to create one sandbox; built by the container service."""

    name: str
    image: str
    runtime: str
    labels: dict[str, str]
    environment: dict[str, str]
    volume: str
    mount_point: str
    memory_mb: int
    cpu_millicores: int
    pids_limit: int
    network_mode: str
    hostname: str
    command: list[str]
    cap_add: tuple[str, ...] = ()
    extra_binds: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    log_max_mb: int = 10  # the sandbox's output kept by the engine: two files of this size


@dataclass(frozen=True)
class ContainerState:
    """The parts of ``docker inspect`` the backend acts on."""

    id: str
    name: str
    status: str  # Docker's own word: created, running, exited, dead, paused, restarting, removing
    running: bool
    exit_code: int | None
    oom_killed: bool
    labels: dict[str, str]
    started_at: str | None = None


class DockerService:
    """Typed async facade over the docker SDK's low-level API client."""

    def __init__(self, base_url: str | None, workers: int = 32, timeout_s: int = 60) -> None:
        self._base_url = base_url
        self._timeout = timeout_s
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker")
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()
        base_url = base_url or docker.utils.kwargs_from_env().get("base_url")
        self._http = EngineHttp(base_url, float(timeout_s))
        self._version: str | None = None

    # -- plumbing -----------------------------------------------------------------------------

    def _api(self) -> docker.APIClient:
        """The SDK client, built on first use so the backend can start while the engine is down."""
        with self._client_lock:
            if self._client is None:
                kwargs: dict[str, Any] = dict(docker.utils.kwargs_from_env())
                if self._base_url:
                    kwargs["base_url"] = self._base_url
                try:
                    self._client = docker.APIClient(
                        version="auto", timeout=self._timeout, max_pool_size=self._workers, **kwargs
                    )
                except docker.errors.DockerException as exc:
                    raise DockerUnavailable() from exc
            return self._client

    @staticmethod
    def _translate(exc: BaseException) -> BaseException:
        if isinstance(exc, docker.errors.NotFound):
            return DockerNotFound(sanitize(str(exc.explanation or exc)), 404)
        if isinstance(exc, docker.errors.APIError):
            status = exc.status_code
            text = sanitize(str(exc.explanation or exc))
            if status == 409:
                return DockerConflict(text, status)
            return DockerError(text, status)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return DockerError("the Docker engine did not answer in time")
        if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError):
            return DockerUnavailable()
        if isinstance(exc, docker.errors.DockerException):
            return (
                DockerUnavailable()
                if "connection" in str(exc).lower()
                else DockerError(sanitize(str(exc)))
            )
        return exc

    def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (DockerUnavailable, DockerError):
            raise
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking SDK call in the pool, translating its errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, functools.partial(self._blocking, fn, *args, **kwargs)
        )

    async def aclose(self) -> None:
        """Close the streams' connection pool (before ``close``, on the loop)."""
        await self._http.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- engine -------------------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return bool(await self.run(lambda: self._api().ping()))
        except (DockerUnavailable, DockerError):
            return False

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.run(lambda: self._api().info())
        return result

    async def runtimes(self) -> set[str]:
        return set(((await self.info()).get("Runtimes") or {}).keys())

    async def image_exists(self, reference: str) -> bool:
        return await self.image_details(reference) is not None

    async def image_details(self, reference: str) -> dict[str, Any] | None:
        def inspect() -> dict[str, Any]:
            result: dict[str, Any] = self._api().inspect_image(reference)  # type: ignore[no-untyped-call]
            return result

        try:
            return await self.run(inspect)
        except DockerNotFound:
            return None

    async def list_images(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every image carrying all ``labels`` (a label given as ``""`` only has to exist)."""
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        rows: list[dict[str, Any]] = await self.run(lambda: self._api().images(filters=filters))
        return rows

    async def remove_image(self, reference: str) -> bool:
        """Remove an image (never forced: one a container still uses stays, DockerConflict);
        False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_image(reference))
        except DockerNotFound:
            return False
        return True

    async def commit(self, container_id: str, repository: str, tag: str, changes: list[str]) -> str:
        """Commit a stopped container's file system as ``repository:tag``, with Dockerfile
        ``changes`` (LABEL, CMD) applied to the configuration; the new image's ID. The tag
        appears in one engine operation, so no half-made image is ever tagged."""
        result: dict[str, Any] = await self.run(
            lambda: self._api().commit(
                container_id, repository=repository, tag=tag, changes=changes, pause=False
            )
        )
        return str(result["Id"])

    # -- volumes ------------------------------------------------------------------------------

    async def create_volume(
        self, name: str, labels: dict[str, str], driver_opts: dict[str, str] | None = None
    ) -> None:
        await self.run(
            lambda: self._api().create_volume(
                name=name, driver="local", driver_opts=driver_opts or None, labels=labels
            )
        )

    async def volume_exists(self, name: str) -> bool:
        try:
            await self.run(lambda: self._api().inspect_volume(name))
        except DockerNotFound:
            return False
        return True

    async def remove_volume(self, name: str) -> bool:
        """Remove a volume; False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_volume(name, force=True))
        except DockerNotFound:
            return False
        return True

    async def list_volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        result = await self.run(lambda: self._api().volumes(filters=filters))
        return list(result.get("Volumes") or [])

    # -- containers ---------------------------------------------------------------------------

    async def create_container(self, spec: SandboxSpec) -> str:
        def create() -> str:
            api = self._api()
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
        in Docker's multiplexed framing (see ``read_exec_output``)."""

        def attach() -> socket.socket:
            wrapped: Any = self._api().attach_socket(
                container_id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
            )
            raw: socket.socket = getattr(wrapped, "_sock", wrapped)
            raw.setblocking(False)
            return raw

        return await self.run(attach)

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
        states = [_state_from_summary(row) for row in rows]
        return [s for s in states if s.name.startswith(prefix)]

    async def start(self, container_id: str) -> bool:
        """Start a container; False when it was already running (the engine's 304).

        The engine's answer decides "already running", so no inspect is needed beforehand."""

        status = await self.run(self._post_status, "/containers/{0}/start", container_id)
        return status != 304

    async def stop(self, container_id: str, timeout_s: int) -> bool:
        """Stop a container (SIGKILL after ``timeout_s``); False when it was not running."""

        status = await self.run(
            self._post_status,
            "/containers/{0}/stop",
            container_id,
            params={"t": timeout_s},
            timeout=self._timeout + timeout_s,
        )
        return status != 304

    async def remove(self, container_id: str) -> bool:
        """Force-remove a container; False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_container(container_id, force=True))
        except DockerNotFound:
            return False
        return True

    def _post_status(self, path: str, container_id: str, **kwargs: Any) -> int:
        """POST to an endpoint whose status code the SDK's wrapper hides (304: no change)."""
        api: Any = self._api()
        res = api._post(api._url(path, container_id), **kwargs)
        api._raise_for_status(res)
        return int(res.status_code)

    async def rename(self, container_id: str, name: str) -> None:
        await self.run(lambda: self._api().rename(container_id, name))

    async def inspect(self, container_id: str) -> ContainerState | None:
        try:
            raw: dict[str, Any] = await self.run(
                lambda: self._api().inspect_container(container_id)
            )
        except DockerNotFound:
            return None
        return _state_from_inspect(raw)

    async def list_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all ``labels``, in one engine call."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        rows: list[dict[str, Any]] = await self.run(
            lambda: self._api().containers(all=True, filters=filters)
        )
        return [_state_from_summary(row) for row in rows]

    async def exec_run(
        self,
        container_id: str,
        cmd: list[str],
        user: str = "",
        workdir: str | None = None,
        timeout_s: float = 30.0,
    ) -> tuple[int, bytes]:
        """Run a command to completion inside a container; its exit code and combined output.

        Read from the event loop with a deadline: an exec whose sandbox dies under it can keep
        its stream open forever (seen under runsc), and a blocking read would hold a worker
        thread, and the process's exit, with it. Raises DockerError when it does not finish."""
        exec_id, sock = await self.exec_stream(container_id, cmd, {}, workdir, user)

        async def still_running() -> bool:
            running, _ = await self.exec_state(exec_id)
            state = await self.inspect(container_id)
            return running and state is not None and state.running

        output = bytearray()
        try:
            async with asyncio.timeout(timeout_s):
                async for chunk in read_exec_output(sock, 1.0, still_running):
                    output += chunk
        except TimeoutError as exc:
            raise DockerError(f"the command did not finish within {timeout_s:.0f} s") from exc
        finally:
            sock.close()
        for _ in range(50):
            running, code = await self.exec_state(exec_id)
            if not running:
                return (code if code is not None else -1), bytes(output)
            await asyncio.sleep(0.02)  # Docker records the exit just after the stream ends
        return -1, bytes(output)

    async def exec_tty(
        self,
        container_id: str,
        cmd: list[str],
        environment: dict[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> tuple[str, socket.socket]:
        """Start an interactive exec with a TTY; its ID and the raw, non-blocking socket that
        carries its input and output."""

        def start() -> tuple[str, socket.socket]:
            api = self._api()
            created = api.exec_create(
                container_id,
                cmd,
                tty=True,
                stdin=True,
                environment=environment,
                workdir=workdir,
            )
            exec_id = str(created["Id"])
            wrapped: Any = api.exec_start(exec_id, socket=True, tty=True)
            raw: socket.socket = getattr(wrapped, "_sock", wrapped)
            api.exec_resize(exec_id, height=rows, width=cols)
            raw.setblocking(False)
            return exec_id, raw

        return await self.run(start)

    async def exec_stream(
        self,
        container_id: str,
        cmd: list[str],
        environment: dict[str, str],
        workdir: str | None,
        user: str = "",
    ) -> tuple[str, socket.socket]:
        """Start a non-interactive exec (no TTY, no stdin) whose output is read as it comes: its
        ID and the raw, non-blocking socket carrying Docker's multiplexed stream (see
        ``read_exec_output``). The process keeps running if the socket is closed early."""

        def start() -> tuple[str, socket.socket]:
            api = self._api()
            created = api.exec_create(
                container_id,
                cmd,
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                environment=environment,
                workdir=workdir,
                user=user,
            )
            exec_id = str(created["Id"])
            wrapped: Any = api.exec_start(exec_id, socket=True)
            raw: socket.socket = getattr(wrapped, "_sock", wrapped)
            raw.setblocking(False)
            return exec_id, raw

        return await self.run(start)

    async def exec_resize(self, exec_id: str, cols: int, rows: int) -> None:
        await self.run(lambda: self._api().exec_resize(exec_id, height=rows, width=cols))

    async def exec_state(self, exec_id: str) -> tuple[bool, int | None]:
        """Whether an exec still runs, and its exit code once it has ended."""
        info: dict[str, Any] = await self.run(lambda: self._api().exec_inspect(exec_id))
        code = info.get("ExitCode")
        return bool(info.get("Running")), (int(code) if code is not None else None)

    # -- streams read on the event loop (see backend.docker_http) -------------------------------

    async def _path(self, path: str, container_id: str) -> str:
        if self._version is None:
            self._version = await self.run(lambda: str(self._api().api_version))
        return f"/v{self._version}" + path.format(container_id)

    async def stats_stream(self, container_id: str) -> AsyncIterator[dict[str, Any]]:
        """Docker's streaming stats of a container: one raw sample about every second, for as
        long as it is read. A stopped container's stream goes on with empty samples (``read``
        of year 1); the caller ends it."""
        path = await self._path("/containers/{0}/stats", container_id)
        async for sample in self._http.json_lines(path, {"stream": "1"}):
            if isinstance(sample, dict):
                yield sample

    async def stats_once(self, container_id: str) -> dict[str, Any]:
        """One raw sample, with the previous reading the engine took a second earlier (so CPU
        can be computed from it): takes about one to two seconds."""
        path = await self._path("/containers/{0}/stats", container_id)
        sample = await self._http.json(path, {"stream": "0"}, float(self._timeout))
        return sample if isinstance(sample, dict) else {}

    async def open_logs(
        self, container_id: str, *, tail: int, follow: bool, timestamps: bool, idle_s: float
    ) -> AsyncGenerator[bytes, None]:
        """A container's stdout and stderr (demultiplexed, in order), the last ``tail`` lines
        first; with ``follow`` the stream goes on until the container stops. Opening raises
        (DockerNotFound: no such container); the stream then yields ``b""`` after ``idle_s``
        without output (see ``EngineHttp.frames``)."""
        path = await self._path("/containers/{0}/logs", container_id)
        params = {
            "stdout": "1",
            "stderr": "1",
            "tail": str(tail),
            "follow": "1" if follow else "0",
            "timestamps": "1" if timestamps else "0",
        }
        return await self._http.frames(path, params, idle_s)

    def open_events(self, filters: dict[str, Any]) -> EventStream:
        """A blocking stream of engine events (for a thread of its own), closable from any
        thread so the watcher can stop it at shutdown."""
        try:
            return EventStream(self._api().events(decode=True, filters=filters), self._translate)
        except Exception as exc:
            raise self._translate(exc) from exc


async def read_exec_output(
    sock: socket.socket,
    idle_s: float,
    still_running: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """The payloads of Docker's multiplexed exec stream (8-byte frame headers: stream type,
    three zero bytes, big-endian length), stdout and stderr alike, until it ends.

    A stream can stay open after its process is gone (seen: a sandbox killed for memory left
    ``docker exec`` waiting forever), so after ``idle_s`` without data ``still_running()`` is
    asked, and a False ends the stream."""
    loop = asyncio.get_running_loop()
    buffer = b""
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout=idle_s)
        except TimeoutError:
            if await still_running():
                continue
            return
        except OSError:
            return
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            yield buffer[8 : 8 + size]
            buffer = buffer[8 + size :]


class EventStream:
    """Docker's event stream with errors translated; ``close()`` unblocks a reader."""

    def __init__(self, stream: Any, translate: Callable[[BaseException], BaseException]) -> None:
        self._stream = stream
        self._translate = translate

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._stream
        except Exception as exc:
            raise self._translate(exc) from exc

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.debug("closing the event stream failed", exc_info=True)


def _state_from_inspect(raw: dict[str, Any]) -> ContainerState:
    state = raw.get("State") or {}
    return ContainerState(
        id=str(raw["Id"]),
        name=str(raw.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "unknown")),
        running=bool(state.get("Running")),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        labels=dict((raw.get("Config") or {}).get("Labels") or {}),
        started_at=state.get("StartedAt"),
    )


def _state_from_summary(row: dict[str, Any]) -> ContainerState:
    names = row.get("Names") or [""]
    return ContainerState(
        id=str(row["Id"]),
        name=str(names[0]).lstrip("/"),
        status=str(row.get("State", "unknown")),
        running=row.get("State") == "running",
        exit_code=None,
        oom_killed=False,
        labels=dict(row.get("Labels") or {}),
    )
