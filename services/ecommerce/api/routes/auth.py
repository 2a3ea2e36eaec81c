"""Shopper accounts: register and log in (JWT with role ``user``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.app import CacheDep, SessionDep
from services.common.client_ip import client_ip
from services.common.login_guard import LoginGuard
from services.common.openapi import error
from services.common.security import hash_password, issue_token, verify_password

from ...models import User
from ...schemas import LoginIn, RegisterIn, RegisterOut, TokenOut

router = APIRouter(prefix="/v1/auth", tags=["auth"])
_unknown_user_hash: str | None = None


@router.post("/register", status_code=status.HTTP_201_CREATED, responses={409: error("e-mail already registered")})
async def register(body: RegisterIn, request: Request, session: SessionDep) -> RegisterOut:
    if await session.scalar(select(User.id).where(User.email == body.email)):
        raise HTTPException(status.HTTP_409_CONFLICT, "e-mail already registered")
    user = User(email=body.email, name=body.name, password_hash=await hash_password(body.password))
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:  # registered by a concurrent request
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "e-mail already registered") from exc
    request.app.state.metrics.registration()
    return RegisterOut(user_id=user.id, email=user.email)


@router.post("/login", responses={401: error("wrong e-mail or password"),
                                   429: error("too many failed attempts for this account or address")})
async def login(body: LoginIn, request: Request, session: SessionDep,
                cache: CacheDep) -> TokenOut:
    settings = request.app.state.settings
    guard = LoginGuard(cache, settings.login_attempts_per_minute, body.email.lower(), client_ip(request),
                       scope="shop")
    wait = await guard.retry_after()
    if wait:
        request.app.state.metrics.login(False)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; try again later",
                            headers={"Retry-After": str(wait)})
    user = await session.scalar(select(User).where(User.email == body.email.lower()))
    # Unknown e-mails cost one argon2 check too, so timing does not tell which e-mails exist.
    ok = await verify_password(user.password_hash if user else await _dummy_hash(), body.password)
    request.app.state.metrics.login(ok and user is not None)
    if not ok or user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong e-mail or password",
                            headers={"WWW-Authenticate": "Bearer"})
    await guard.succeeded()
    request.app.state.active_users.seen(user.id)
    return TokenOut(access_token=issue_token(settings.jwt_secret, user.id, "user", settings.jwt_ttl_seconds),
                    user_id=user.id)


async def _dummy_hash() -> str:
    global _unknown_user_hash
    if _unknown_user_hash is None:
        _unknown_user_hash = await hash_password("no-such-user-password")
    return _unknown_user_hash
