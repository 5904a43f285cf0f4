"""The engine requests made without the docker SDK's private parts (``engine_socket``): a start's
and a stop's status, and hijacked attach and exec connections, on the real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import docker
import pytest

from backend.docker_service import DockerService, read_exec_output
from backend.errors import DockerConflict, DockerNotFound
from devkit.engine import remove_instance
from tests.conftest import BUSYBOX

# The postgres pass repeats nothing here (tests/databases.py).
pytestmark = pytest.mark.no_database

Make = Callable[[list[str]], str]


@pytest.fixture
async def service() -> AsyncIterator[DockerService]:
    docker_service = DockerService(None, workers=4)
    yield docker_service
    await docker_service.aclose()
    docker_service.close()


@pytest.fixture
def make(docker_client: docker.DockerClient, instance: str) -> Iterator[Make]:
    """Create a busybox sandbox running ``command`` (removed after the test)."""

    def create(command: list[str]) -> str:
        made = docker_client.containers.create(
            BUSYBOX,
            command,
            runtime="runsc",
            network_mode="none",  # as every sandbox: the host need not have a docker0 bridge
            labels={"corral.instance": instance},
        )
        return str(made.id)

    yield create
    remove_instance(instance, docker_client)


async def _never() -> bool:
    return False


async def test_start_and_stop_say_whether_anything_changed(
    service: DockerService, make: Make
) -> None:
    ident = make(["sleep", "60"])
    assert await service.start(ident) is True
    assert await service.start(ident) is False  # the engine's 304: already running
    state = await service.inspect(ident)
    assert state is not None and state.running
    assert await service.stop(ident, 1) is True
    assert await service.stop(ident, 1) is False
    with pytest.raises(DockerNotFound):
        await service.start("corral-test-no-such-container")


async def test_an_attach_keeps_output_that_arrives_with_the_engine_answer(
    service: DockerService, make: Make
) -> None:
    """Attaching to a finished container replays its output at once, in the same read as the
    engine's 101 answer: the answer is read without taking any of it."""
    script = "for i in 1 2 3; do echo line-$i; done"
    ident = make(["sh", "-c", script])
    await service.start(ident)
    assert await service.wait(ident, 30) == 0
    sock = await service.attach_output(ident)
    try:
        output = b"".join([chunk async for chunk in read_exec_output(sock, 5.0, _never)])
    finally:
        sock.close()
    assert output == b"line-1\nline-2\nline-3\n"


async def test_a_tty_exec_is_a_two_way_socket_and_a_refusal_is_the_engines(
    service: DockerService, make: Make
) -> None:
    ident = make(["sleep", "60"])
    await service.start(ident)
    _exec_id, sock = await service.exec_tty(ident, ["/bin/sh"], {}, "/", 80, 24)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, b"echo sum-$((20+22))\n")
        seen = b""
        async with asyncio.timeout(10):
            while b"sum-42" not in seen:
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, seen
                seen += chunk
    finally:
        sock.close()
    await service.stop(ident, 1)
    with pytest.raises(DockerConflict, match="not running"):
        await service.exec_stream(ident, ["true"], {}, None)
