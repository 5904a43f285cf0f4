"""The options several ``corral`` commands share are declared once (``corral.options``), each
with its environment fallback, and parsed the same wherever they are given; each command says
its log level in its parser defaults. In-process and quick: nothing here needs a backend."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from corral import cli, runner
from corral.options import SERVER, TOKEN


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the console's config file
    for name in ("CORRAL_SERVER", "CORRAL_TOKEN", "CORRAL_PASSWORD", "CORRAL_LOG"):
        monkeypatch.delenv(name, raising=False)


def test_server_and_token_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    for argv in (
        ["--server", "http://a", "--token", "t", "ls"],
        ["ls", "--server", "http://a", "--token", "t"],
        ["--server", "http://a", "ls", "--token", "t"],
        ["--token", "t", "agent", "--server", "http://a"],
    ):
        args = parser.parse_args(argv)
        assert (SERVER.value(args), TOKEN.value(args)) == ("http://a", "t"), argv


def test_the_environment_is_the_fallback_and_the_command_line_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = cli.build_parser()
    monkeypatch.setenv("CORRAL_SERVER", "http://env")
    monkeypatch.setenv("CORRAL_TOKEN", "env-token")
    bare = parser.parse_args(["events"])
    assert (SERVER.value(bare), TOKEN.value(bare)) == ("http://env", "env-token")
    assert TOKEN.given(bare) is None  # given means on the command line
    given = parser.parse_args(["agent", "--server", "http://cli"])
    assert (SERVER.value(given), TOKEN.value(given)) == ("http://cli", "env-token")


def test_container_commands_log_warnings_and_run_on_the_client() -> None:
    parser = cli.build_parser()
    for argv in (
        ["ls"],
        ["create"],
        ["rm", "x"],
        ["logs", "x"],
        ["volumes"],
        ["volumes", "rm", "v"],
    ):
        args = parser.parse_args(argv)
        assert args.log_level == "WARNING", argv
        assert isinstance(args.func, functools.partial) and args.func.func is runner.run, argv
    for argv in ([], ["serve"], ["user", "list"], ["roles", "list"], ["agent"]):
        assert parser.parse_args(argv).log_level == "INFO", argv


def test_the_console_and_the_agent_refuse_a_server_without_a_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--server", "http://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err == "corral: --server needs --token (or $CORRAL_TOKEN)\n"
    assert cli.main(["agent", "--server", "http://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err == "corral agent: --server and --token are required\n"
