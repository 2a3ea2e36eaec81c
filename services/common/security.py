"""Passwords (argon2id) and tokens (JWT, HS256) with roles: ``user``, ``admin``, ``service``.

Service-to-service calls carry a short-lived ``service`` token signed with the shared
``SHOPFDS_JWT_SECRET``; admin routes and FDS feedback accept only the roles they name.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): about 10-20 ms a hash here, instead of the
# library default's 64 MiB x 3 passes, which queues logins for seconds on a 2-core host under load.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_bearer = HTTPBearer(auto_error=False)
ALGORITHM = "HS256"


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (tens of ms): keep it off the event loop.
    return await run_in_threadpool(_hasher.hash, password)


async def verify_password(hashed: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    return await run_in_threadpool(check)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str


def issue_token(secret: str, subject: str, role: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {"sub": subject, "role": role, "iat": now, "exp": now + ttl_seconds, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def service_headers(secret: str, service: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(secret, service, 'service', 300)}"}


def decode_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired token",
                            headers={"WWW-Authenticate": "Bearer"}) from exc
    return Principal(str(claims["sub"]), str(claims.get("role", "user")))


def require_roles(*roles: str):  # type: ignore[no-untyped-def]
    """A dependency that returns the caller's ``Principal`` when its role is one of ``roles``."""

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = decode_token(request.app.state.settings.jwt_secret, credentials.credentials)
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role!r} may not do this")
        return principal

    return dependency


UserDep = Annotated[Principal, Depends(require_roles("user"))]
AdminDep = Annotated[Principal, Depends(require_roles("admin"))]
StaffDep = Annotated[Principal, Depends(require_roles("admin", "service"))]
