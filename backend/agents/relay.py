"""Agent shells across replicas: an agent's WebSocket lives on one replica, and a terminal that
reaches another is relayed to it over the cluster's bus (PostgreSQL NOTIFY).

The replica the terminal reached (the origin) asks every replica (``open``, to ``*``); the one
holding the agent's connection answers ``holding`` at once, opens a shell on the agent, says
``opened`` (or ``error``), and then sends the shell's ``output`` (``alive`` while it is quiet)
and its ``exit``. The origin sends ``input``, ``resize`` and ``close`` to that holder alone.
``disconnect`` asks the holder to drop an agent's connection (a stop or delete made through
another replica).

Every message is one notification of at most ``CHUNK`` bytes of data (base64: a notification
holds under 8000 bytes), sent in order through the bus's one sending connection; output already
waiting goes in one round trip (up to ``BATCH``). The bus loses
what is sent while a replica's listening connection is down, so a reconnect ends every relayed
shell on that replica: a terminal that missed output would show a lie.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.agents.connection import OPEN_TIMEOUT_S, AgentConnection, AgentShell
from backend.cluster.keys import AGENTS_CHANNEL
from backend.terminal.bridge import size_of
from corral.aio import TaskOwner
from corral.shapes.terminal import DEFAULT_COLS, DEFAULT_ROWS

log = logging.getLogger(__name__)

CHUNK = 4096  # raw bytes per output or input message; base64 makes it 5464
BATCH = 64 * 1024  # output already waiting is sent together, in one round trip
HOLDER_TIMEOUT_S = 3.0  # how long the origin waits for a replica to say it holds the agent
# A quiet shell's holder says ``alive`` this often; an origin that hears nothing from it for
# ``SILENCE_S`` ends the terminal (the holder died: nothing else would ever tell it).
KEEPALIVE_S = 5.0
SILENCE_S = 3 * KEEPALIVE_S
EVERYONE = "*"

Message = dict[str, Any]


class Bus(Protocol):
    """What the relay needs of ``backend.cluster.bus.NotificationBus``."""

    def on(self, channel: str, handler: Callable[[str], None]) -> None: ...

    def on_connect(self, callback: Callable[[], None]) -> None: ...

    async def notify_many(self, channel: str, payloads: Sequence[str]) -> None: ...


def _chunks(data: bytes) -> list[str]:
    """``data`` as the ``data`` of as many messages as it takes (``CHUNK`` bytes each)."""
    return [
        base64.b64encode(data[i : i + CHUNK]).decode("ascii") for i in range(0, len(data), CHUNK)
    ]


def _decode(message: Message) -> bytes:
    try:
        return base64.b64decode(str(message.get("data", "")), validate=True)
    except ValueError:
        return b""


class RelayedShell:
    """A shell on an agent held by another replica, as a ``backend.terminal.shell.Shell``."""

    def __init__(self, relay: AgentRelay, session: str) -> None:
        self._relay = relay
        self.session = session
        self.holder: str | None = None
        self.holding = asyncio.Event()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._code: int | None = None
        self.ended = False
        self.heard_at = time.monotonic()  # the last message from the holder

    def feed(self, data: bytes) -> None:
        if not self.ended and data:
            self._output.put_nowait(data)

    def finish(self, code: int | None, why: str = "the agent closed the shell") -> None:
        if not self.ended:
            self.ended = True
            self._code = code
            self._output.put_nowait(b"")
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
            self.opened.exception()  # retrieved: nobody may be waiting any more
        self.holding.set()  # a wait for the holder ends too, and finds the shell ended

    async def read(self) -> bytes:
        while True:
            try:
                async with asyncio.timeout(SILENCE_S):
                    return await self._output.get()
            except TimeoutError:
                if time.monotonic() - self.heard_at >= SILENCE_S:
                    why = "the replica holding the agent stopped answering"
                    self.feed(f"\r\n[{why}]\r\n".encode())
                    self.finish(None, why)
                    self._relay.forget(self.session)

    async def write(self, data: bytes) -> None:
        await self._send(*({"op": "input", "data": chunk} for chunk in _chunks(data)))

    async def resize(self, cols: int, rows: int) -> None:
        await self._send({"op": "resize", "cols": cols, "rows": rows})

    async def exit_code(self) -> int | None:
        return self._code

    async def close(self) -> None:
        if not self.ended:
            with contextlib.suppress(ConnectionError, OSError):
                await self._send({"op": "close"})
            self.finish(None)
        self._relay.forget(self.session)

    async def _send(self, *messages: Message) -> None:
        if not self.ended and self.holder is not None:
            session = {"session": self.session}
            await self._relay.send(self.holder, *({**m, **session} for m in messages))


@dataclass
class _Served:
    """A shell this replica opened on its agent for another replica's terminal."""

    origin: str
    inbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)


class AgentRelay:
    def __init__(
        self,
        bus: Bus,
        local: Callable[[str], AgentConnection | None],
        disconnect: Callable[[str], Coroutine[Any, Any, None]],
    ) -> None:
        self._bus = bus
        self._local = local  # this replica's connection of an agent, if it holds one
        self._disconnect = disconnect  # drop this replica's connection of an agent
        self.node = uuid.uuid4().hex[:16]  # this replica, for as long as it runs
        self._relayed: dict[str, RelayedShell] = {}  # origin side, by session
        self._served: dict[str, _Served] = {}  # holder side, by session
        self._tasks = TaskOwner("agent-relay")
        self._numbers = itertools.count()
        bus.on(AGENTS_CHANNEL, self._heard)
        bus.on_connect(self._reconnected)

    async def send(self, to: str, *messages: Message) -> None:
        """Messages to replica ``to`` (or ``EVERYONE``), in one round trip, after those sent
        before them. Each carries a number of its own: PostgreSQL would deliver two identical
        payloads of one round trip (the same output twice) once."""
        if not messages:
            return
        payloads = [
            json.dumps(
                {**message, "to": to, "from": self.node, "n": next(self._numbers)},
                separators=(",", ":"),
            )
            for message in messages
        ]
        try:
            await self._bus.notify_many(AGENTS_CHANNEL, payloads)
        except Exception as exc:  # the database is gone: the terminal cannot go on
            raise ConnectionError(f"the replicas cannot reach each other: {exc}") from exc

    # -- the origin's side ----------------------------------------------------------------------

    async def open_shell(self, agent_id: str, cols: int, rows: int) -> RelayedShell:
        """A shell on ``agent_id``, whichever replica holds it; ``ConnectionError`` when none
        says so within ``HOLDER_TIMEOUT_S``, or the shell does not open."""
        shell = RelayedShell(self, uuid.uuid4().hex)
        self._relayed[shell.session] = shell
        try:
            open_message = {"op": "open", "agent": agent_id, "cols": cols, "rows": rows}
            await self.send(EVERYONE, {**open_message, "session": shell.session})
            try:
                async with asyncio.timeout(HOLDER_TIMEOUT_S):
                    await shell.holding.wait()
            except TimeoutError:
                raise ConnectionError("no replica holds its connection") from None
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await asyncio.shield(shell.opened)
        except BaseException:
            await shell.close()
            raise
        return shell

    def forget(self, session: str) -> None:
        self._relayed.pop(session, None)

    async def disconnect(self, agent_id: str) -> None:
        """Have the replica that holds ``agent_id`` (another one) drop its connection."""
        await self.send(EVERYONE, {"op": "disconnect", "agent": agent_id})

    def _to_origin(self, message: Message) -> None:
        shell = self._relayed.get(str(message.get("session", "")))
        if shell is None:
            return
        op, holder = message.get("op"), str(message.get("from", ""))
        if shell.holder is not None and holder != shell.holder:
            # A second replica held the agent too (it was reconnecting): keep the first.
            if op in ("holding", "opened"):
                self._tasks.spawn(self._quietly(holder, {"op": "close", "session": shell.session}))
            return
        shell.heard_at = time.monotonic()
        if op == "holding":
            shell.holder = holder
            shell.holding.set()
        elif op == "opened" and not shell.opened.done():
            shell.opened.set_result(None)
        elif op == "output":
            shell.feed(_decode(message))
        elif op == "exit":
            code = message.get("code")
            shell.finish(code if isinstance(code, int) else None)
            self.forget(shell.session)
        elif op == "error":
            why = str(message.get("data", "the agent could not open a shell"))
            if shell.opened.done():
                shell.feed(f"\r\n[agent error: {why}]\r\n".encode())
            shell.finish(None, why)
            self.forget(shell.session)

    # -- the holder's side ----------------------------------------------------------------------

    def _to_holder(self, message: Message) -> None:
        op, session = message.get("op"), str(message.get("session", ""))
        if op == "open":
            connection = self._local(str(message.get("agent", "")))
            if connection is not None and session not in self._served:
                served = _Served(origin=str(message.get("from", "")))
                self._served[session] = served
                self._tasks.spawn(self._serve(connection, session, served, message))
        elif op == "disconnect":
            agent_id = str(message.get("agent", ""))
            if self._local(agent_id) is not None:
                self._tasks.spawn(self._disconnect(agent_id))
        elif (known := self._served.get(session)) is not None:
            known.inbox.put_nowait(message)

    async def _serve(
        self, connection: AgentConnection, session: str, served: _Served, message: Message
    ) -> None:
        origin = served.origin
        reply = {"session": session}
        try:
            await self.send(origin, {**reply, "op": "holding"})
            try:
                shell = await connection.open_shell(
                    *(size_of(message) or (DEFAULT_COLS, DEFAULT_ROWS))
                )
            except (ConnectionError, TimeoutError) as exc:
                await self.send(origin, {**reply, "op": "error", "data": str(exc)})
                return
            try:
                await self.send(origin, {**reply, "op": "opened"})
                inbox = asyncio.create_task(self._apply(shell, served.inbox))
                try:
                    ended = False
                    while not ended:
                        data = await _next_output(shell)
                        if data is None:  # quiet: say this replica is still here
                            await self.send(origin, {**reply, "op": "alive"})
                            continue
                        data, ended = _with_waiting(shell, data)
                        outputs = ({**reply, "op": "output", "data": c} for c in _chunks(data))
                        await self.send(origin, *outputs)
                finally:
                    inbox.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await inbox
                await self.send(origin, {**reply, "op": "exit", "code": await shell.exit_code()})
            finally:
                await shell.close()
        except ConnectionError as exc:
            log.info("relayed agent shell %s ended: %s", session, exc)
        finally:
            self._served.pop(session, None)

    async def _apply(self, shell: AgentShell, inbox: asyncio.Queue[Message]) -> None:
        """The origin's messages to the shell, one at a time, in the order they were sent."""
        while True:
            message = await inbox.get()
            op = message.get("op")
            if op == "input":
                await shell.write(_decode(message))
            elif op == "resize" and (size := size_of(message)) is not None:
                await shell.resize(*size)
            elif op == "close":
                await shell.close()

    # -- the bus --------------------------------------------------------------------------------

    def _heard(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("to") not in (self.node, EVERYONE):
            return
        if message.get("op") in ("holding", "opened", "alive", "output", "exit", "error"):
            self._to_origin(message)
        else:
            self._to_holder(message)

    def _reconnected(self) -> None:
        """Messages sent while this replica was not listening are lost: end every relayed
        shell rather than show a terminal with output missing."""
        for shell in list(self._relayed.values()):
            shell.feed(b"\r\n[the connection between replicas was lost]\r\n")
            shell.finish(None, "the connection between replicas was lost")
        self._relayed.clear()
        for served in list(self._served.values()):
            served.inbox.put_nowait({"op": "close"})

    async def _quietly(self, to: str, message: Message) -> None:
        with contextlib.suppress(ConnectionError):
            await self.send(to, message)

    async def close(self) -> None:
        for shell in list(self._relayed.values()):
            shell.finish(None, "server shutting down")
        self._relayed.clear()
        await self._tasks.close()


async def _next_output(shell: AgentShell) -> bytes | None:
    """The shell's next output (``b""`` once it has ended), or None after ``KEEPALIVE_S``
    without any (a cancelled queue read loses nothing)."""
    try:
        async with asyncio.timeout(KEEPALIVE_S):
            return await shell.read()
    except TimeoutError:
        return None


def _with_waiting(shell: AgentShell, data: bytes) -> tuple[bytes, bool]:
    """``data`` and the output already waiting after it, up to about ``BATCH`` bytes; and
    whether the shell has ended."""
    ended = not data
    while not ended and len(data) < BATCH and (more := shell.read_nowait()) is not None:
        ended = not more
        data += more
    return data, ended
