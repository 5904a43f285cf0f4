"""The contract's Authentication section, route by route and error by error."""

from __future__ import annotations

import os
import stat
import time
from datetime import timedelta

import jwt
import pytest

from backend.state import SETTINGS, SIGNER
from tests.conftest import Api


async def test_guest_login_gives_a_50_hour_session(api: Api) -> None:
    resp = await api.client.post("/api/auth/guest", json={"username": "guest_1"})
    body = await resp.json()
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert set(body) >= {"token", "user", "guest", "expires_in", "expires_at"}
    assert body["guest"] is True
    assert body["expires_in"] == 50 * 3600
    assert body["user"]["tier"] == "guest"
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert {"sub", "iat", "exp", "jti", "tier", "guest", "admin"} <= set(claims)
    assert claims["guest"] is True and claims["admin"] is False

    me = await api.client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    data = await me.json()
    assert me.status == 200
    assert data["tier"] == "guest"
    assert data["limits"]["containers"] == 1
    assert data["limits"]["memory_mb"] == {"min": 512, "max": 512, "default": 512}
    assert data["usage"] == {"containers": 0, "disk_mb": 0, "kept_volumes": 0, "kept_volumes_mb": 0}


@pytest.mark.parametrize(
    "body",
    [
        {"username": "a"},
        {"username": "x" * 31},
        {"username": "bad name"},
        {"username": 5},
        {},
        {"username": "ok_name", "tier": "pro"},
    ],
)
async def test_guest_login_rejects_bad_usernames(api: Api, body: dict[str, object]) -> None:
    resp = await api.client.post("/api/auth/guest", json=body)
    data = await resp.json()
    assert resp.status == 400
    assert data["error"] == "invalid parameters"
    assert data["message"]


async def test_password_login_and_uniform_failures(api: Api) -> None:
    await api.user("alice", password="s3cret-pass")
    ok = await api.client.post(
        "/api/auth/login", json={"username": "alice", "password": "s3cret-pass"}
    )
    data = await ok.json()
    assert ok.status == 200
    assert set(data) >= {"token", "user", "expires_in"}
    assert data["user"]["username"] == "alice"

    wrong = await api.client.post("/api/auth/login", json={"username": "alice", "password": "x"})
    unknown = await api.client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    assert wrong.status == unknown.status == 401
    assert await wrong.read() == await unknown.read()
    assert (await wrong.json())["error"] == "unauthorized"


def _forge(
    payload: dict[str, object],
    key: str | bytes = "another-key-that-is-long-enough-for-hs256",
    alg: str = "HS256",
) -> str:
    return jwt.encode(payload, key, algorithm=alg)


async def test_bad_tokens_are_401(api: Api) -> None:
    user, good = await api.user()
    now = int(time.time())
    claims = {"sub": user.id, "iat": now, "exp": now + 600, "jti": "j1"}
    secret = api.app[SIGNER]._secret
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {good['Authorization'][7:]}"},
        "malformed": {"Authorization": "Bearer not.a.token"},
        "other key": {"Authorization": f"Bearer {_forge(claims)}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "expired": {"Authorization": "Bearer " + _forge({**claims, "exp": now - 10}, secret)},
        "no exp": {"Authorization": "Bearer " + _forge({"sub": user.id, "iat": now}, secret)},
        "no sub": {"Authorization": "Bearer " + _forge({"iat": now, "exp": now + 60}, secret)},
        "HS512": {"Authorization": "Bearer " + _forge(claims, secret * 2, "HS512")},
        "unknown api token": {"Authorization": "Bearer crl_" + "0" * 64},
    }
    for name, headers in cases.items():
        resp = await api.client.get("/api/containers", headers=headers)
        assert resp.status == 401, name
        assert (await resp.json())["error"] == "unauthorized", name

    ok = await api.client.get("/api/containers", headers=good)
    assert ok.status == 200


async def test_logout_revokes_the_session_token(api: Api) -> None:
    _, headers = await api.user()
    out = await api.client.post("/api/auth/logout", headers=headers)
    assert out.status == 200
    again = await api.client.get("/api/me", headers=headers)
    assert again.status == 401


async def test_api_tokens_lifecycle_and_scopes(api: Api) -> None:
    _, headers = await api.user()
    resp = await api.client.post(
        "/api/tokens",
        json={"name": "ci", "scopes": ["read"], "expires_in_days": 30},
        headers=headers,
    )
    made = await resp.json()
    assert resp.status == 201
    assert set(made) >= {
        "token",
        "id",
        "name",
        "token_prefix",
        "scopes",
        "expires_at",
        "created_at",
    }
    assert made["token"].startswith("crl_") and len(made["token"]) == 68
    assert made["token"].startswith(made["token_prefix"])
    assert made["scopes"] == ["read"]
    reader = {"Authorization": f"Bearer {made['token']}"}

    listed = await (await api.client.get("/api/tokens", headers=headers)).json()
    assert [t["id"] for t in listed["tokens"]] == [made["id"]]
    assert "token" not in listed["tokens"][0]

    assert (await api.client.get("/api/containers", headers=reader)).status == 200
    denied = await api.client.post(
        "/api/containers", json={"image": "corral/busybox"}, headers=reader
    )
    assert denied.status == 403
    assert (await denied.json())["error"] == "not authorized"

    gone = await api.client.delete(f"/api/tokens/{made['id']}", headers=headers)
    assert gone.status == 200
    revoked = await api.client.get("/api/containers", headers=reader)
    assert revoked.status == 401
    assert (await revoked.json())["error"] == "unauthorized"


async def test_expired_api_token_is_401(api: Api) -> None:
    from sqlalchemy import update

    from backend.db.models import ApiToken, utcnow
    from backend.state import SESSIONS

    _, headers = await api.user()
    made = await (await api.client.post("/api/tokens", json={"name": "t"}, headers=headers)).json()
    async with api.app[SESSIONS]() as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == made["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    resp = await api.client.get("/api/me", headers={"Authorization": f"Bearer {made['token']}"})
    assert resp.status == 401


async def test_api_token_is_stored_only_as_a_hash(api: Api) -> None:
    from sqlalchemy import select

    from backend.db.models import ApiToken, Base
    from backend.state import SESSIONS
    from tests.databases import read

    _, headers = await api.user()
    made = await (await api.client.post("/api/tokens", json={"name": "t"}, headers=headers)).json()
    async with api.app[SESSIONS]() as session:
        row = (await session.execute(select(ApiToken))).scalar_one()
    assert made["token"] not in (row.token_hash, row.token_prefix)
    settings = api.app[SETTINGS]
    if settings.database_url is None:  # SQLite: every byte of the file and its log
        db_bytes = settings.database_path.read_bytes()
        wal = settings.database_path.with_name("corral.db-wal")
        if wal.exists():
            db_bytes += wal.read_bytes()
        assert made["token"].encode() not in db_bytes
    else:  # a server: every row of every table
        for table in Base.metadata.sorted_tables:
            rows = read(settings.resolved_database_url, select(table))
            assert made["token"] not in repr(rows), table.name


async def test_guests_cannot_mint_tokens(api: Api) -> None:
    guest = await (await api.client.post("/api/auth/guest", json={"username": "gg"})).json()
    resp = await api.client.post(
        "/api/tokens", json={"name": "x"}, headers={"Authorization": f"Bearer {guest['token']}"}
    )
    assert resp.status == 403
    assert (await resp.json())["error"] == "not authorized"


async def test_token_body_is_validated(api: Api) -> None:
    _, headers = await api.user()
    for body in (
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": "5"},
        {"scopes": ["read"]},
    ):
        resp = await api.client.post("/api/tokens", json=body, headers=headers)
        assert resp.status == 400, body
        assert (await resp.json())["error"] == "invalid parameters"


async def test_signing_key_is_private(api: Api) -> None:
    path = api.app[SETTINGS].secret_path
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_admin_routes_need_an_admin(api: Api) -> None:
    _, user = await api.user()
    _, admin = await api.user(admin=True)
    denied = await api.client.get("/api/containers?all=true", headers=user)
    assert denied.status == 403
    assert (await denied.json())["error"] == "not authorized"
    assert (await api.client.get("/api/containers?all=true", headers=admin)).status == 200
