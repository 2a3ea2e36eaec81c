"""The admin service's settings: the one admin account, login limits, upstream timeout."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.common.settings import DEFAULT_ADMIN_PASSWORD, ServiceSettings


class Settings(ServiceSettings):
    admin_username: str = Field("admin", min_length=1, max_length=64)
    admin_password: SecretStr = Field(SecretStr(DEFAULT_ADMIN_PASSWORD),
                                      description="Hashed with argon2 at start; the default refuses production.")
    login_attempts_per_minute: int = Field(5, ge=1, description="Failed logins allowed per account and per IP.")
    admin_upstream_timeout: float = Field(5.0, gt=0, description="Seconds for each call to the FDS or ecommerce.")

    def default_secrets(self) -> list[str]:
        names = super().default_secrets()
        if self.admin_password.get_secret_value() == DEFAULT_ADMIN_PASSWORD:
            names.append("SHOPFDS_ADMIN_PASSWORD")
        return names
