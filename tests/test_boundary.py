"""The architecture's hard lines: the backend never imports the console or the client, the
console reaches the backend only over HTTP/WebSocket (never by importing it), and what both sides
import is shared on purpose: ``corral.shapes``, the declarations of what travels between them,
and ``corral.aio``, the backoff and task ownership every side uses (standard library only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

# The postgres pass repeats nothing here (tests/databases.py).
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
SHAPES = "corral.shapes"
AIO = "corral.aio"
SHARED = (SHAPES, AIO)


def _modules(package: str) -> dict[str, set[str]]:
    """Each file's imported modules, by their full dotted names."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from corral import shapes`` imports corral.shapes, not corral's other parts
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                names.update(subs if all(_shared(sub) for sub in subs) else [node.module])
        found[str(path.relative_to(ROOT))] = names
    return found


def _imports(package: str) -> dict[str, set[str]]:
    """Each file's imported top-level packages; a shared module (``corral.shapes``,
    ``corral.aio``) counts as its own."""
    return {
        path: {_shared(name) or name.split(".")[0] for name in names}
        for path, names in _modules(package).items()
    }


def _shared(name: str) -> str | None:
    """The shared module ``name`` is part of, if any."""
    return next((s for s in SHARED if name == s or name.startswith(s + ".")), None)


def test_backend_never_imports_the_console() -> None:
    offenders = {
        path: sorted(names & {"textual", "tui", "corral", "rich"})
        for path, names in _imports("backend").items()
        if names & {"textual", "tui", "corral", "rich"}
    }
    assert offenders == {}
    assert any(SHAPES in names for names in _imports("backend").values())
    assert any(AIO in names for names in _imports("backend").values())


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


def test_the_shapes_import_only_the_standard_library_and_pydantic() -> None:
    """What both sides import must pull in neither side (nor aiohttp, SQLAlchemy, Textual)."""
    allowed = {"pydantic", "pydantic_core", "typing_extensions", SHAPES}
    offenders = {
        path: sorted(names - allowed - set(sys.stdlib_module_names))
        for path, names in _imports("corral/shapes").items()
        if names - allowed - set(sys.stdlib_module_names)
    }
    assert offenders == {}
    assert _imports("corral/shapes"), "the check must read the shapes' files"


def test_the_shared_building_blocks_import_only_the_standard_library() -> None:
    offenders = {
        path: sorted(names - set(sys.stdlib_module_names) - {AIO})
        for path, names in _imports("corral/aio").items()
        if names - set(sys.stdlib_module_names) - {AIO}
    }
    assert offenders == {}
    assert _imports("corral/aio"), "the check must read the shared modules"


def test_the_check_sees_imports() -> None:
    """Guard against a check that passes because it reads nothing."""
    assert any("aiohttp" in names for names in _imports("backend").values())


# What running SQL looks like from outside the services: sqlalchemy's statement builders, the
# session factory, or a session's own calls. The admin commands may name the session types
# (``sqlalchemy.ext.asyncio``): they open the database the services then use.
SESSION_CALLS = {"execute", "scalar", "scalars", "stream", "commit", "flush", "add_all", "begin"}
SESSION_ROW_CALLS = {"get", "add", "delete", "merge", "refresh"}


def _sql_in(source: str) -> list[str]:
    """Each place ``source`` runs SQL or reaches for what runs it, as ``what (line)``, in
    line order."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name} ({node.lineno})"
                for a in node.names
                if a.name.split(".")[0] == "sqlalchemy"
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = {alias.name for alias in node.names}
            if (
                node.module.split(".")[0] == "sqlalchemy"
                and node.module != "sqlalchemy.ext.asyncio"
            ):
                found.append(
                    f"from {node.module} import {', '.join(sorted(names))} ({node.lineno})"
                )
            if node.module == "backend.state" and names & {"SESSIONS"}:
                found.append(f"the SESSIONS key ({node.lineno})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, receiver = node.func.attr, node.func.value
            on_session = isinstance(receiver, ast.Name) and "session" in receiver.id.lower()
            if attr in SESSION_CALLS or (attr in SESSION_ROW_CALLS and on_session):
                found.append(f"{attr}() ({node.lineno})")
    return sorted(found, key=lambda text: int(text.rsplit("(", 1)[1].rstrip(")")))


def test_handlers_and_admin_commands_run_no_sql() -> None:
    """Users and tokens are read and written by ``backend.auth.users``, containers by their
    repository, kept volumes by ``backend.containers.kept``: a handler or an admin command that
    runs a statement itself bypasses them (and the events their writes announce)."""
    files = [*(ROOT / "backend" / "handlers").glob("*.py"), ROOT / "backend" / "admin.py"]
    offenders = {
        str(path.relative_to(ROOT)): found for path in files if (found := _sql_in(path.read_text()))
    }
    assert offenders == {}
    assert len(files) > 5, "the check must read the handlers"


def test_the_sql_check_sees_sql() -> None:
    """Guard against a check that passes because it recognises nothing: the guest sign-in as a
    handler once wrote it is caught, line by line."""
    handler = """
from sqlalchemy import select
from backend.state import SESSIONS

async def guest_login(request):
    async with request.app[SESSIONS]() as session:
        taken = await session.scalar(select(User).where(User.username == name))
        session.add(user)
        await session.commit()
"""
    assert _sql_in(handler) == [
        "from sqlalchemy import select (2)",
        "the SESSIONS key (3)",
        "scalar() (7)",
        "add() (8)",
        "commit() (9)",
    ]
    assert _sql_in("from sqlalchemy.ext.asyncio import AsyncSession\nitems.get(key)\n") == []


def test_benchmarks_scripts_and_devkit_import_nothing_from_the_tests() -> None:
    """What they share with the tests lives in ``devkit`` (the backend as a process, engine
    clean-up, waiting with a deadline, the console's fake API), never in ``tests/``."""
    outside = {
        path: names
        for package in ("benchmarks", "scripts", "devkit")
        for path, names in _imports(package).items()
    }
    assert {path for path, names in outside.items() if "tests" in names} == set()
    assert any("devkit" in names for names in _imports("benchmarks").values())
    assert any("devkit" in names for names in _imports("scripts").values())
