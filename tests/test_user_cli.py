"""``corral user add`` from scripts (issue 11, item 14): without a terminal it never prompts (a
clear refusal instead of an EOFError traceback), ``--password-stdin`` reads one line, and
``--tier`` takes the configured tiers, guest included."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from backend.admin import Admin
from backend.auth.passwords import verify_password
from backend.db.models import User
from backend.settings import load_settings
from tests.test_cli import Result, _clean_env


async def user_cli(
    data_dir: Path, *args: str, stdin: bytes | None = None, close_stdin: bool = False
) -> Result:
    """``corral user ...`` as a subprocess with no terminal: stdin is the bytes given, or
    /dev/null, or (``close_stdin``) no file descriptor 0 at all."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corral.cli",
        "user",
        *args,
        "--data-dir",
        str(data_dir),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in _clean_env().items() if k != "CORRAL_PASSWORD"},
        preexec_fn=(lambda: os.close(0)) if close_stdin else None,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def _users(data_dir: Path) -> dict[str, User]:
    async with Admin(load_settings(data_dir=data_dir)) as admin:
        return {u.username: u for u in await admin.list_users()}


async def test_without_a_terminal_it_refuses_instead_of_prompting(tmp_path: Path) -> None:
    for close_stdin in (False, True):
        result = await user_cli(tmp_path, "add", "alice", close_stdin=close_stdin)
        assert result.code == 2, result.err
        assert "Traceback" not in result.err and "EOFError" not in result.err
        assert "no terminal" in result.err and "--password-stdin" in result.err
        assert "Password for" not in result.out + result.err
    assert await _users(tmp_path) == {}


async def test_password_from_stdin(tmp_path: Path) -> None:
    made = await user_cli(tmp_path, "add", "bob", "--password-stdin", stdin=b"s3cret pass\n")
    assert made.code == 0, made.err
    assert made.out.strip() == "added user bob (tier free)"
    stored = (await _users(tmp_path))["bob"].password_hash
    assert stored is not None and verify_password("s3cret pass", stored)

    empty = await user_cli(tmp_path, "add", "carol", "--password-stdin", stdin=b"")
    assert empty.code == 2 and "no password on standard input" in empty.err
    token_only = await user_cli(tmp_path, "add", "dave", "--no-password", close_stdin=True)
    assert token_only.code == 0, token_only.err
    both = await user_cli(tmp_path, "add", "erin", "--password-stdin", "--no-password")
    assert both.code == 2 and "not allowed with" in both.err
    users = await _users(tmp_path)
    assert set(users) == {"bob", "dave"} and users["dave"].password_hash is None


async def test_tier_takes_the_configured_tiers_guest_included(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[tiers.team]\ncontainers = 3\n")
    guest = await user_cli(tmp_path, "add", "visitor", "--tier", "guest", "--no-password")
    assert guest.code == 0, guest.err
    assert guest.out.strip() == "added user visitor (tier guest)"
    team = await user_cli(tmp_path, "add", "crew", "--tier", "team", "--no-password")
    assert team.code == 0, team.err
    bogus = await user_cli(tmp_path, "add", "x", "--tier", "gold", "--password-stdin")
    assert bogus.code == 2
    assert "unknown tier 'gold'; the configured tiers are guest, free, pro, enterprise, team" in (
        bogus.err
    )
    assert set(await _users(tmp_path)) == {"visitor", "crew"}
    helped = await user_cli(tmp_path, "add", "--help")
    assert helped.code == 0 and "guest" in helped.out and "--password-stdin" in helped.out
