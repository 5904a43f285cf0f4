"""Long-lived streams: stats and logs read on the event loop (``engine_http``, no thread per
stream), and the engine's event stream for the watcher's thread."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

from backend.docker_service.client import EngineClient

log = logging.getLogger(__name__)


class StreamCalls(EngineClient):
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
