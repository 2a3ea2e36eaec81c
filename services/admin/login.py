"""Admin login: one account from the settings; failed attempts limited per account and per IP
(``services.common.login_guard``)."""

from __future__ import annotations

import hmac

from services.common.security import verify_password


async def credentials_ok(username: str, password: str, expected_username: str, password_hash: str) -> bool:
    # The hash is checked whatever the username, so a wrong name takes as long as a wrong password.
    password_ok = await verify_password(password_hash, password)
    name_ok = hmac.compare_digest(username.casefold().encode(), expected_username.casefold().encode())
    return password_ok and name_ok
