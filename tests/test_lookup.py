"""The two lookups of a ``{id}`` agree: the database's (``find_container``) and the one over a
user's remembered list (``find_listed``, which answers ``GET /api/containers/{id}``)."""

from __future__ import annotations

import hashlib
import uuid

from backend.auth.principal import FULL_SCOPES, Principal
from backend.containers.lookup import find_container, find_listed
from backend.db.models import Container, User
from backend.state import CONTAINERS, SESSIONS
from tests.conftest import Api


def _docker_id(seed: str, prefix: str = "") -> str:
    return (prefix + hashlib.sha256(seed.encode()).hexdigest())[:64]


async def test_the_remembered_list_finds_what_the_database_finds(api: Api) -> None:
    owner, headers = await api.user()
    other, _ = await api.user()
    shared = "abcdef012345"  # two Docker IDs share this prefix: ambiguous, so no match
    rows = [
        Container(user_id=owner.id, name="web", docker_id=_docker_id("a", shared)),
        Container(user_id=owner.id, name="db", docker_id=_docker_id("b", shared)),
        Container(user_id=owner.id, name="fresh", docker_id=None),
        Container(user_id=owner.id, name="deadbeef0000", docker_id=_docker_id("c")),
        Container(user_id=other.id, name="web", docker_id=_docker_id("d")),
    ]
    async with api.app[SESSIONS]() as session:
        for row in rows:
            row.id = str(uuid.uuid4())
            row.image, row.status, row.runtime = "corral/busybox", "stopped", "runsc"
            row.memory_mb, row.cpu_shares, row.disk_mb, row.labels = 256, 500, 1024, {}
        session.add_all(rows)
        await session.commit()
        user = await session.get(User, owner.id)
    assert user is not None
    principal = Principal(user, FULL_SCOPES, "jwt", "t", None)
    web, _db, fresh, hexname, theirs = rows
    assert web.docker_id is not None and hexname.docker_id is not None
    idents = [
        web.id, f"  {web.id.upper()} ", web.docker_id, web.docker_id.upper(), "web", " web ",
        "db", "fresh", fresh.id, shared, web.docker_id[:12], web.docker_id[:20],
        "deadbeef0000", hexname.docker_id[:12], theirs.id, str(theirs.docker_id), "nope",
        "", "WEB", "web\n", "x" * 300,
    ]  # fmt: skip
    listed = await api.app[CONTAINERS].repository.list_json(principal, False)
    for ident in idents:
        async with api.app[SESSIONS]() as session:
            row = await find_container(session, principal, ident)
        found = find_listed(listed, ident)
        assert (found["db_id"] if found else None) == (row.id if row else None), ident

    # and through the route: the same object as the list's, or the same 404
    got = await api.client.get(f"/api/containers/{web.docker_id[:20]}", headers=headers)
    assert got.status == 200 and (await got.json())["db_id"] == web.id
    missing = await api.client.get(f"/api/containers/{theirs.id}", headers=headers)
    unknown = await api.client.get(f"/api/containers/{uuid.uuid4()}", headers=headers)
    assert missing.status == unknown.status == 404
    assert await missing.read() == await unknown.read()
