"""The end state every fault test checks: the database and Docker agree, and no data was lost.

Agreement, row by row, against the engine's containers of the instance label:
- a row that names a Docker ID names a container that exists, and its status says what that
  container does (``running``/``configuring`` while it runs; ``stopped``/``error`` when not);
- a ``missing`` row, and a row with no Docker ID, has no container at all;
- every container of the instance belongs to a row, and is that row's (no orphan, no second one).

The rows are read straight from the database (``tests.databases.read``: a connection of its own,
a SQLite file read-only), so the check works the same on an in-process backend and on one in its
own process, dead or alive, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker
from sqlalchemy import select

from backend.db.models import Container
from tests.databases import read

RUNS = frozenset({"running", "configuring"})
HALTED = frozenset({"stopped", "error"})


@dataclass(frozen=True)
class Row:
    id: str
    status: str
    docker_id: str | None


def read_rows(database_url: str) -> list[Row]:
    """Every container row of the database at ``database_url`` (``resolved_database_url``)."""
    found = read(database_url, select(Container.id, Container.status, Container.docker_id))
    return [Row(str(i), str(s), d) for i, s, d in found]


def engine_containers(client: docker.DockerClient, instance: str) -> list[dict[str, Any]]:
    listing: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": f"corral.instance={instance}"}
    )
    return listing


def disagreements(rows: list[Row], containers: list[dict[str, Any]]) -> list[str]:
    """Every way the rows and the containers disagree, said plainly (empty: they agree)."""
    by_id = {c["Id"]: c for c in containers}
    by_row: dict[str, list[str]] = {}
    for c in containers:
        by_row.setdefault((c.get("Labels") or {}).get("corral.db_id", ""), []).append(c["Id"])
    problems = []
    for row in rows:
        theirs = by_row.pop(row.id, [])
        if row.status == "missing" or row.docker_id is None:
            if theirs:
                problems.append(f"{row.id} is {row.status} but has containers {theirs}")
            continue
        state = by_id.get(row.docker_id, {}).get("State")
        if state is None:
            problems.append(f"{row.id} is {row.status} but {row.docker_id[:12]} does not exist")
        elif (state == "running") != (row.status in RUNS) or (
            state != "running" and row.status not in HALTED
        ):
            problems.append(f"{row.id} is {row.status} but its container is {state}")
        if [c for c in theirs if c != row.docker_id]:
            problems.append(f"{row.id} has other containers: {theirs}")
    for db_id, ids in by_row.items():
        problems.append(f"containers {ids} belong to no row ({db_id or 'unlabelled'})")
    return problems


def check_agreement(database: str, client: docker.DockerClient, instance: str) -> list[str]:
    return disagreements(read_rows(database), engine_containers(client, instance))


def assert_agreement(database: str, client: docker.DockerClient, instance: str) -> None:
    problems = check_agreement(database, client, instance)
    assert not problems, "the database and Docker disagree:\n" + "\n".join(problems)
