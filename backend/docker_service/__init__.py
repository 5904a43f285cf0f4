"""The one wrapper around the docker SDK: ``DockerService``, one facade over the engine, its
calls grouped by area (``client``: the SDK client, its pool and the error translation;
``containers``, ``execs``, ``images``, ``volumes``, ``streams``, ``archives``: files).

Every SDK call is blocking, so each runs in a thread pool sized for concurrent work and never on the
event loop. Docker's own errors are translated in one place (``EngineClient._translate``) into
``DockerUnavailable`` (the engine cannot be reached: 503), ``DockerNotFound``, ``DockerConflict``
and ``DockerError``, with messages stripped of host paths, sockets and addresses so they are safe
to show to a client. Long-lived streams (stats, logs) are read on the event loop instead, over
the engine's socket (``engine_http``), with the same errors; so are the two answers the SDK
gives only through its private parts, a start's or a stop's status (304: nothing to do) and a
hijacked exec or attach connection (``engine_socket``). Nothing here touches the SDK's private
attributes.
"""

from __future__ import annotations

from backend.docker_service.archives import ArchiveCalls, PathStat
from backend.docker_service.containers import ContainerCalls
from backend.docker_service.execs import ExecCalls, read_exec_output
from backend.docker_service.images import ImageCalls
from backend.docker_service.models import ContainerState, SandboxSpec
from backend.docker_service.streams import EventStream, StreamCalls
from backend.docker_service.volumes import VolumeCalls

__all__ = [
    "ContainerState",
    "DockerService",
    "EventStream",
    "PathStat",
    "SandboxSpec",
    "read_exec_output",
]


class DockerService(ExecCalls, ContainerCalls, ArchiveCalls, ImageCalls, VolumeCalls, StreamCalls):
    """Typed async facade over the docker SDK's low-level API client."""
