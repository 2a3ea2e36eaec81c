"""Request headers of a caller with a given role, for the in-process reliability tests."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from services.common.security import issue_token


async def caller_headers(client: httpx.AsyncClient, app: FastAPI, role: str) -> dict[str, str]:
    """A registered, logged-in shopper for ``user``; a token minted with the app's secret otherwise."""
    if role != "user":
        return {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, role, role, 600)}"}
    credentials = {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "s3cret-pass"}
    assert (await client.post("/v1/auth/register", json={**credentials, "name": "Kim"})).status_code == 201
    login = await client.post("/v1/auth/login", json=credentials)
    return {"Authorization": f"Bearer {login.json()['access_token']}"}
