"""The terminal WebSocket: a real shell in a runsc sandbox."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import docker

from devkit.waiting import wait_for
from tests.conftest import WS_HANDSHAKE, Api, sh


class Term:
    """A terminal client that accumulates output and waits for patterns (with deadlines)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.output = ""
        self.exit_code: Any = "running"
        self.others: list[dict[str, Any]] = []

    async def _receive_once(self, timeout_s: float) -> None:
        msg = await self.ws.receive(timeout=timeout_s)
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = msg.json()
            if data["type"] == "output":
                self.output += data["data"]
            elif data["type"] == "exit":
                self.exit_code = data["code"]
            else:
                self.others.append(data)
        elif msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            raise ConnectionError("closed")

    async def expect(self, pattern: str, timeout_s: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (found := re.search(pattern, self.output)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} in terminal output: {self.output[-500:]!r}")
            await self._receive_once(remaining)
        return found

    async def until_exit(self, timeout_s: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while self.exit_code == "running":
            await self._receive_once(max(0.01, deadline - time.monotonic()))
        return self.exit_code

    async def send(self, text: str) -> None:
        await self.ws.send_json({"type": "input", "data": text})


async def _open(api: Api, headers: dict[str, str], ident: str, query: str = "") -> Term:
    ws = await api.client.ws_connect(f"/ws/terminal/{ident}{query}", headers=headers)
    term = Term(ws)
    await term._receive_once(10)
    assert term.others[0] == {"type": "connected"}
    return term


async def test_shell_runs_commands_resizes_and_reports_exit_code(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    term = await _open(api, headers, made["id"], "?cols=100&rows=30")
    await term.send("echo marker-$((40+2))\n")
    await term.expect(r"marker-42")
    await term.send("echo $TERM:$HOME:$(pwd)\n")
    await term.expect(r"xterm-256color:/home/user:/home/user")
    await term.send("stty size\n")
    await term.expect(r"30 100")
    await term.ws.send_json({"type": "resize", "cols": 120, "rows": 40})
    await term.send("stty size\n")
    await term.expect(r"40 120")
    await term.ws.send_str("echo raw-text\n")  # a plain text frame is raw input
    await term.expect(r"raw-text\r?\n")
    await term.ws.send_bytes(b"echo raw-bytes\n")
    await term.expect(r"raw-bytes\r?\n")
    await term.ws.send_json({"type": "ping"})
    await term.send("exit 3\n")
    assert await term.until_exit() == 3
    assert {"type": "pong"} in term.others
    await term.ws.close()


async def test_a_bad_initial_size_falls_back_to_the_default_not_a_refusal(api: Api) -> None:
    """``?cols=&rows=`` come from the terminal's declared query shape: a size that is not a
    number from 1 to 1000 gets its default (80 columns, 24 rows), the other one is kept."""
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    term = await _open(api, headers, made["id"], "?cols=5000&rows=30")
    await term.send("stty size\n")
    await term.expect(r"30 80")
    await term.ws.close()
    term = await _open(api, headers, made["id"], "?cols=abc&rows=0")
    await term.send("stty size\n")
    await term.expect(r"24 80")
    await term.ws.close()
    document = await (await api.client.get("/api/openapi.json")).json()
    parameters = document["paths"]["/ws/terminal/{id}"]["get"]["parameters"]
    sizes = {p["name"]: p["schema"] for p in parameters if p["in"] == "query"}
    bounds = {name: (s["minimum"], s["maximum"], s["default"]) for name, s in sizes.items()}
    assert bounds == {"cols": (1, 1000, 80), "rows": (1, 1000, 24)}


async def test_two_terminals_at_once_and_closing_ends_the_shell(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    first = await _open(api, headers, made["id"])
    second = await _open(api, headers, made["id"])
    await first.send("echo first-$$\n")
    await second.send("echo second-$$\n")
    pid_one = (await first.expect(r"first-(\d+)")).group(1)
    pid_two = (await second.expect(r"second-(\d+)")).group(1)
    assert pid_one != pid_two

    await first.ws.close()

    def shell_gone() -> bool:
        code, _ = sh(docker_client, made["id"], f"kill -0 {pid_one}")
        return code != 0

    await wait_for(shell_gone, 10, what="the closed terminal's shell to end")
    await second.send("echo still-here\n")
    await second.expect(r"still-here\r?\n")
    await second.ws.close()


async def test_large_output_arrives_whole_and_uncompressed(api: Api) -> None:
    """Half a megabyte of output (past the exec stream's pause threshold) arrives complete and
    in order; and frames are not deflated even when the client offers it (browsers always do):
    compressing a one-byte echo costs more than it saves."""
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    ws = await api.client.ws_connect(f"/ws/terminal/{made['id']}", headers=headers, compress=15)
    assert ws.compress == 0
    term = Term(ws)
    await term._receive_once(10)
    await term.send("stty -echo; seq 1 80000; echo end-$((6*7))\n")
    await term.expect(r"end-42", timeout_s=60)
    numbers = re.findall(r"^(\d+)\r?$", term.output, flags=re.MULTILINE)
    assert [int(n) for n in numbers] == list(range(1, 80001))
    await term.ws.close()


async def test_refusals_before_the_upgrade(api: Api) -> None:
    _, headers = await api.user(tier="test")
    _, other = await api.user(tier="test")
    made = await api.create(headers)
    await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)

    async def status_of(ident: str, hdrs: dict[str, str]) -> tuple[int, str]:
        resp = await api.client.get(f"/ws/terminal/{ident}", headers={**hdrs, **WS_HANDSHAKE})
        body = await resp.json()
        return resp.status, body["error"]

    assert await status_of(made["id"], headers) == (400, "container is not running")
    assert await status_of(made["id"], other) == (404, "container not found")
    assert await status_of("0" * 64, headers) == (404, "container not found")
    assert await status_of(made["id"], {}) == (401, "unauthorized")
    token = await (
        await api.client.post(
            "/api/tokens", json={"name": "ro", "scopes": ["read"]}, headers=headers
        )
    ).json()
    reader = {"Authorization": f"Bearer {token['token']}"}
    assert await status_of(made["id"], reader) == (403, "not authorized")


async def test_token_in_query_and_subprotocol(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    token = headers["Authorization"][7:]
    ws = await api.client.ws_connect(f"/ws/terminal/{made['id']}?token={token}")
    assert (await ws.receive_json(timeout=10)) == {"type": "connected"}
    await ws.close()
    ws = await api.client.ws_connect(
        f"/ws/terminal/{made['id']}", protocols=("corral.v1", f"corral.token.{token}")
    )
    assert ws.protocol == "corral.v1"
    assert (await ws.receive_json(timeout=10)) == {"type": "connected"}
    await ws.close()
