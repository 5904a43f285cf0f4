"""Nothing the backend logs holds a token or a secret: a sign-in, a token issue, event streams
and a terminal opened with ``?token=`` and the token subprotocol, a container's environment, a
wrong password. The backend runs as ``corral serve`` runs it (``backend.server.make_runner``,
access log on) with every logger at DEBUG, and the captured log is searched for each secret."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from backend.access_log import redact
from backend.app import create_app
from backend.auth.passwords import hash_password
from backend.db.models import User
from backend.server import make_runner
from backend.settings import Settings
from backend.state import SESSIONS
from devkit.waiting import wait_for

PASSWORD = "correct-horse-battery-staple"
ENV_SECRET = "s3cr3t-value-in-the-environment"


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[str, web.Application]]:
    app = create_app(settings)
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", app
    finally:
        await runner.cleanup()


async def _json(resp: aiohttp.ClientResponse, status: int) -> dict[str, object]:
    body: dict[str, object] = await resp.json()
    assert resp.status == status, body
    return body


async def test_no_token_or_secret_reaches_the_log(
    served: tuple[str, web.Application], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url, app = served
    caplog.set_level(logging.DEBUG)
    async with app[SESSIONS]() as session:
        session.add(User(username="ada", tier="free", password_hash=hash_password(PASSWORD)))
        await session.commit()
    secrets: list[str] = [PASSWORD, ENV_SECRET, settings.secret_path.read_text().strip()]
    async with aiohttp.ClientSession() as http:
        wrong = {"username": "ada", "password": "a-wrong-" + PASSWORD}
        await _json(await http.post(f"{url}/api/auth/login", json=wrong), 401)
        secrets.append(wrong["password"])
        right = {"username": "ada", "password": PASSWORD}
        jwt = str((await _json(await http.post(f"{url}/api/auth/login", json=right), 200))["token"])
        guest = await http.post(f"{url}/api/auth/guest", json={"username": "visitor"})
        secrets += [jwt, str((await _json(guest, 200))["token"])]
        bearer = {"Authorization": f"Bearer {jwt}"}
        issued = await http.post(f"{url}/api/tokens", json={"name": "ci"}, headers=bearer)
        api_token = str((await _json(issued, 201))["token"])
        secrets.append(api_token)

        body = {"image": "corral/busybox", "environment": {"API_KEY": ENV_SECRET}}
        create = await http.post(f"{url}/api/containers?wait=true", json=body, headers=bearer)
        made = await _json(create, 201)
        events = await http.ws_connect(f"{url}/api/containers/events?token={api_token}")
        assert json.loads((await events.receive()).data)["type"] == "list"
        await events.close()
        events = await http.ws_connect(
            f"{url}/api/containers/events", protocols=("corral.v1", f"corral.token.{jwt}")
        )
        await events.receive()
        await events.close()
        terminal = await http.ws_connect(f"{url}/ws/terminal/{made['id']}?token={jwt}")
        await terminal.receive()  # connected
        await terminal.send_str(json.dumps({"type": "input", "data": "env; exit\n"}))
        async with asyncio.timeout(15):
            async for message in terminal:
                if message.type is aiohttp.WSMsgType.TEXT and '"exit"' in message.data:
                    break
        await terminal.close()
        await http.get(f"{url}/api/nowhere?token={api_token}")  # a 404 with a token in it
        await http.delete(f"{url}/api/containers/{made['id']}", headers=bearer)

    # A WebSocket's access line is written when its handler returns, which may be after the
    # client saw it close: wait for the terminal's.
    await wait_for(lambda: "/ws/terminal/" in caplog.text, 10, what="the terminal's access line")
    text = caplog.text
    assert "/api/containers/events?token=<redacted>" in text  # the access log did log them
    assert "/ws/terminal/" in text and "POST /api/auth/login" in text
    for secret in secrets:
        assert secret not in text, f"a secret reached the log: {secret[:12]}..."


def test_redact_leaves_other_text_alone() -> None:
    assert redact("/api/containers/web?all=true") == "/api/containers/web?all=true"
    assert redact("/x?a=1&TOKEN=abc&b=2") == "/x?a=1&TOKEN=<redacted>&b=2"
    assert redact("/api/containers/crl_" + "a" * 64) == "/api/containers/<redacted>"
