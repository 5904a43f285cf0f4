"""The architecture's one hard line: the backend never imports the console, and the console
reaches the backend only over HTTP/WebSocket (never by importing it)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_backend_never_imports_the_console() -> None:
    offenders = {
        path: sorted(names & {"textual", "tui", "corral", "rich"})
        for path, names in _imports("backend").items()
        if names & {"textual", "tui", "corral", "rich"}
    }
    assert offenders == {}


def test_console_never_imports_the_backend() -> None:
    offenders = {
        path: sorted(names & {"backend", "docker", "sqlalchemy"})
        for path, names in _imports("tui").items()
        if names & {"backend", "docker", "sqlalchemy"}
    }
    assert offenders == {}


def test_the_client_never_imports_the_backend() -> None:
    """``corral.client`` is the one client (console, command line, tests): it speaks HTTP and
    WebSocket only, so it works against any server, local or remote."""
    offenders = {
        path: sorted(names & {"backend", "docker", "sqlalchemy", "tui", "textual"})
        for path, names in _imports("corral/client").items()
        if names & {"backend", "docker", "sqlalchemy", "tui", "textual"}
    }
    assert offenders == {}
    assert _imports("corral/client"), "the check must read the client's files"


def test_the_check_sees_imports() -> None:
    """Guard against a check that passes because it reads nothing."""
    assert any("aiohttp" in names for names in _imports("backend").values())


SQL_STATEMENTS = {"select", "update", "delete", "insert", "text"}


def test_handlers_and_admin_commands_run_no_sql() -> None:
    """Users and tokens are read and written by ``backend.auth.users``, containers by their
    repository: a handler or an admin command that builds a statement itself bypasses them."""
    files = [*(ROOT / "backend" / "handlers").glob("*.py"), ROOT / "backend" / "admin.py"]
    offenders: dict[str, list[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                found = sorted({alias.name for alias in node.names} & SQL_STATEMENTS)
                if found:
                    offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}
    assert len(files) > 5, "the check must read the handlers"
