"""The SDK client, its thread pool, and the one translation of Docker's errors."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions

from backend.docker_service.engine_http import EngineHttp
from backend.docker_service.engine_socket import EngineSocket
from backend.errors import (
    DockerConflict,
    DockerError,
    DockerNotFound,
    DockerUnavailable,
    sanitize,
)

T = TypeVar("T")


class EngineClient:
    """The plumbing every area of ``DockerService`` shares: ``run`` one blocking SDK call in
    the pool with its errors translated, and the engine-wide calls."""

    def __init__(self, base_url: str | None, workers: int = 32, timeout_s: int = 60) -> None:
        self._base_url = base_url
        self._timeout = timeout_s
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker")
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()
        base_url = base_url or docker.utils.kwargs_from_env().get("base_url")
        self._http = EngineHttp(base_url, float(timeout_s))
        self._socket = EngineSocket(base_url, float(timeout_s))
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

    async def _path(self, path: str, *ids: str) -> str:
        """``path`` with ``ids`` filled in, under the API version the SDK settled on (for the
        calls made without the SDK: ``engine_http``, ``engine_socket``)."""
        if self._version is None:
            self._version = await self.run(lambda: str(self._api().api_version))
        return f"/v{self._version}" + path.format(*ids)

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
