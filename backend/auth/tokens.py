"""Signing and checking tokens.

JWTs are HS256 only (the algorithm list is fixed, so ``alg: none`` and key-confusion tricks are
refused) and must carry ``exp``, ``iat`` and ``sub``. API tokens are ``crl_`` + 64 hex characters,
shown once, and stored only as their SHA-256 hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from backend.db.models import ApiToken, User, utcnow

API_TOKEN_RE = re.compile(r"^crl_[0-9a-f]{64}$")
JWT_ALGORITHM = "HS256"


def load_or_create_secret(path: Path) -> bytes:
    """The signing key: made on first start, kept beside the database, owner-readable only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


@dataclass(frozen=True)
class IssuedJwt:
    token: str
    jti: str
    expires_at: datetime


class JwtSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, user: User, lifetime: timedelta) -> IssuedJwt:
        now = utcnow()
        expires = now + lifetime
        jti = uuid.uuid4().hex
        claims = {
            "sub": user.id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": jti,
            "tier": user.tier,
            "guest": user.is_guest,
            "admin": user.is_admin,
        }
        token = jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)
        return IssuedJwt(token=token, jti=jti, expires_at=expires.replace(microsecond=0))

    def decode(self, token: str) -> dict[str, Any] | None:
        """The verified claims, or None for any token that is not one of ours and current."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        if not isinstance(claims.get("sub"), str):
            return None
        return claims


def new_api_token() -> str:
    return "crl_" + secrets.token_hex(32)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token_row(
    user_id: str, name: str, scopes: Iterable[str], days: int | None
) -> tuple[str, ApiToken]:
    """A fresh API token and the row that stores it (its hash, never the token itself)."""
    token = new_api_token()
    row = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=hash_api_token(token),
        token_prefix=token[:12],
        scopes=sorted(set(scopes)),
        expires_at=(utcnow() + timedelta(days=days)).replace(microsecond=0) if days else None,
    )
    return token, row
