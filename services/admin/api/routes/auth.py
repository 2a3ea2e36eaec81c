"""``POST /v1/admin/auth/login``: a JWT with role admin, failed attempts rate-limited."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from services.common.app import CacheDep
from services.common.login_guard import LoginGuard
from services.common.openapi import error
from services.common.security import issue_token

from ...login import credentials_ok
from ...schemas import Login, Token
from ..deps import InstrumentsDep, SettingsDep

router = APIRouter(prefix="/v1/admin/auth", tags=["auth"])


@router.post("/login", responses={401: error("invalid username or password"),
                                   429: error("too many failed logins; retry later")})
async def login(body: Login, request: Request, cache: CacheDep, settings: SettingsDep,
                instruments: InstrumentsDep) -> Token:
    logins = instruments["admin_logins_total"]
    client_ip = request.client.host if request.client else "unknown"
    guard = LoginGuard(cache, settings.login_attempts_per_minute, body.username, client_ip)
    if wait := await guard.retry_after():
        logins.add(1, {"result": "rate_limited"})
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; retry later",
                            headers={"Retry-After": str(wait)})
    if not await credentials_ok(body.username, body.password, settings.admin_username,
                                request.app.state.admin_password_hash):
        logins.add(1, {"result": "failed"})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid username or password",
                            headers={"WWW-Authenticate": "Bearer"})
    await guard.succeeded()
    logins.add(1, {"result": "success"})
    token = issue_token(settings.jwt_secret, settings.admin_username, "admin", settings.jwt_ttl_seconds)
    return Token(access_token=token)
