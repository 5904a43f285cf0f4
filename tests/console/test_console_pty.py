"""The console on a real pseudo-terminal: a shell opened from an input survives the repaints
that happen behind it, starts on a clean screen, and gives the console back."""

from __future__ import annotations

import asyncio

from tests.conftest import Api
from tests.test_shell_cli import PtyProcess


async def test_a_shell_opened_from_an_input_stays_alive_through_repaints(api: Api) -> None:
    _, headers = await api.user(tier="test")
    await api.create(headers, name="alpha")
    beta = await api.create(headers, name="beta")
    token = headers["Authorization"].removeprefix("Bearer ")
    console = PtyProcess("--server", api.url, "--token", token)
    try:
        await console.expect("beta")
        # Typed into an input (here the command line; the filter is the same kind), then
        # enter: the shell opens from a screen whose input had the focus a moment ago.
        console.write(b":")
        await console.expect("command: ls")
        console.write(b"shell alp")
        await console.expect("shell alp")
        console.write(b"\r")
        # A clean screen first (home, clear), then the banner.
        await console.expect(r"\x1b\[H\x1b\[2JShell in alpha")

        # Before the fix, the filter's blinking cursor and every event's repaint queued output
        # for a writer that was not running while the shell ran; after ~30 of them the console
        # hung for good. Here: many events, and the shell must keep answering through them.
        client = api.corral(headers)
        async with client:
            for round_ in range(10):
                await client.stop_container(beta["db_id"])
                await client.start_container(beta["db_id"])
                console.write(f"echo ok-{round_}-$((6*7))\r".encode())
                await console.expect(f"ok-{round_}-42", timeout_s=10)
        console.write(b"\x1d")  # ctrl+] comes back
        await console.expect("Detached from alpha", timeout_s=15)
        console.write(b"q")
        assert await console.wait(20) == 0
    finally:
        if console.proc.poll() is None:
            console.proc.kill()
            await asyncio.to_thread(console.proc.wait)
