"""Sign-in, the caller and API tokens: every bad request refused, nothing changed."""

from __future__ import annotations

import base64
import json

import pytest

from tests.hostile.world import Case, World, run_case

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEEP = b"[" * 60_000
BIG = b'{"username": "' + b"x" * (65 * 1024) + b'"}'


def _case(name: str, method: str, path: str, status: int, error: str, **kw: object) -> Case:
    return Case(name, method, path, status, error, **kw)  # type: ignore[arg-type]


def _none_jwt() -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': 'x', 'exp': 9999999999})}."


GUEST = "/api/auth/guest"
GUEST_NAMES = [
    "gx\n", "gx\r\n", "g\x00x", "a", "x" * 31, "bad name", "", "gx\t", "ünï", "gx/", "gx;",
]  # fmt: skip
GUESTS = [
    _case(f"guest-name-{i}", "POST", GUEST, 400, "invalid parameters", body={"username": n}, who="none")
    for i, n in enumerate(GUEST_NAMES)
] + [
    _case("guest-name-number", "POST", GUEST, 400, "invalid parameters", body={"username": 5}, who="none"),
    _case("guest-name-null", "POST", GUEST, 400, "invalid parameters", body={"username": None}, who="none"),
    _case("guest-missing", "POST", GUEST, 400, "invalid parameters", body={}, who="none"),
    _case("guest-unknown-field", "POST", GUEST, 400, "invalid parameters", body={"username": "ok", "tier": "pro"}, who="none"),
    _case("guest-array", "POST", GUEST, 400, "invalid parameters", body=[1], who="none"),
    _case("guest-string", "POST", GUEST, 400, "invalid parameters", raw=b'"gx"', who="none"),
    _case("guest-broken-json", "POST", GUEST, 400, "invalid json", raw=b'{"username": ', who="none"),
    _case("guest-deep-json", "POST", GUEST, 400, "invalid json", raw=DEEP, who="none"),
    _case("guest-nan", "POST", GUEST, 400, "invalid json", raw=b'{"username": NaN}', who="none"),
    _case("guest-not-utf8", "POST", GUEST, 400, "invalid json", raw=b'{"username": "\xff\xfe"}', who="none"),
    _case("guest-too-large", "POST", GUEST, 413, "request too large", raw=BIG, who="none"),
    _case("guest-registered-name", "POST", GUEST, 409, "username taken", body={"username": "carol"}, who="none"),
]  # fmt: skip

LOGIN = "/api/auth/login"
LOGINS = [
    _case("login-wrong-password", "POST", LOGIN, 401, "unauthorized", body={"username": "carol", "password": "wrong"}, who="none"),
    _case("login-unknown-user", "POST", LOGIN, 401, "unauthorized", body={"username": "nobody", "password": "x"}, who="none"),
    _case("login-newline-name", "POST", LOGIN, 400, "invalid parameters", body={"username": "carol\n", "password": "correct horse"}, who="none"),
    _case("login-nul-name", "POST", LOGIN, 400, "invalid parameters", body={"username": "car\x00ol", "password": "x"}, who="none"),
    _case("login-missing-password", "POST", LOGIN, 400, "invalid parameters", body={"username": "carol"}, who="none"),
    _case("login-number-password", "POST", LOGIN, 400, "invalid parameters", body={"username": "carol", "password": 5}, who="none"),
    _case("login-long-name", "POST", LOGIN, 400, "invalid parameters", body={"username": "x" * 65, "password": "x"}, who="none"),
    _case("login-long-password", "POST", LOGIN, 400, "invalid parameters", body={"username": "carol", "password": "x" * 1025}, who="none"),
    _case("login-unknown-field", "POST", LOGIN, 400, "invalid parameters", body={"username": "carol", "password": "x", "admin": True}, who="none"),
    _case("login-null", "POST", LOGIN, 400, "invalid parameters", raw=b"null", who="none"),
    _case("login-deep-json", "POST", LOGIN, 400, "invalid json", raw=b'{"username": ' + b"[" * 50_000, who="none"),
    _case("login-infinity", "POST", LOGIN, 400, "invalid json", raw=b'{"username": "carol", "password": Infinity}', who="none"),
]  # fmt: skip

TOKENS = "/api/tokens"
TOKEN_BODIES = [
    {"name": ""}, {"name": "   "}, {"name": "a\x00"}, {"name": "a\n"}, {"name": "x" * 65},
    {"name": 5}, {"name": "x", "scopes": []}, {"name": "x", "scopes": ["admin"]},
    {"name": "x", "scopes": ["agent", "read"]}, {"name": "x", "scopes": "read"},
    {"name": "x", "expires_in_days": 0}, {"name": "x", "expires_in_days": 3651},
    {"name": "x", "expires_in_days": 1.5}, {"name": "x", "expires_in_days": "5"},
    {"name": "x", "expires_in_days": True}, {"name": "x", "tier": "pro"}, {},
]  # fmt: skip
TOKEN_CASES = [
    _case(f"token-body-{i}", "POST", TOKENS, 400, "invalid parameters", body=b)
    for i, b in enumerate(TOKEN_BODIES)
] + [
    _case("token-deep-json", "POST", TOKENS, 400, "invalid json", raw=b'{"name": ' + b"{" * 40_000),
    _case("token-overflow", "POST", TOKENS, 400, "invalid json", raw=b'{"name": "x", "expires_in_days": 1e999}'),
    _case("token-read-only-mints", "POST", TOKENS, 403, "not authorized", body={"name": "x"}, who="read"),
    _case("token-anonymous-mints", "POST", TOKENS, 401, "unauthorized", body={"name": "x"}, who="none"),
    _case("token-revoke-unknown", "DELETE", "/api/tokens/nope", 404, "not found"),
    _case("token-revoke-newline", "DELETE", "/api/tokens/{token}%0A", 404, "not found"),
    _case("token-revoke-others", "DELETE", "/api/tokens/{token}", 404, "not found", who="bob"),
    _case("token-revoke-read-only", "DELETE", "/api/tokens/{token}", 403, "not authorized", who="read"),
]  # fmt: skip

BAD_AUTH = [
    "Bearer", "Bearer x", "Basic YWxpY2U6eA==", "Bearer crl_" + "0" * 64, "Bearer crl_0",
    "Bearer " + _none_jwt(), "bearer  ", "Token abc",
]  # fmt: skip
AUTH_CASES = [
    _case(f"me-bad-auth-{i}", "GET", "/api/me", 401, "unauthorized", who="none", headers=(("Authorization", a),))
    for i, a in enumerate(BAD_AUTH)
] + [
    _case("me-token-in-query", "GET", "/api/me?token=x", 401, "unauthorized", who="none"),
    _case("logout-api-token", "POST", "/api/auth/logout", 400, "invalid parameters", who="read"),
    _case("logout-anonymous", "POST", "/api/auth/logout", 401, "unauthorized", who="none"),
    _case("guest-wrong-method", "GET", GUEST, 405, "method not allowed", who="none"),
    _case("me-wrong-method", "POST", "/api/me", 405, "method not allowed"),
    _case("tokens-wrong-method", "PUT", TOKENS, 405, "method not allowed"),
]  # fmt: skip

CASES = GUESTS + LOGINS + TOKEN_CASES + AUTH_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_refused_and_nothing_changed(
    world: World, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    await run_case(world, case, caplog)
