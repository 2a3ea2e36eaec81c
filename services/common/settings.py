"""Settings every service shares; each service subclasses ``ServiceSettings`` with its own.

Precedence: an explicit argument, then the environment, then the default. Standard names
(``DATABASE_URL``, ``REDIS_URL``, ``ENVIRONMENT``) are read as they are; the project's own
variables carry the ``SHOPFDS_`` prefix. README.md "Configuration" lists every one.

Secrets that are still their defaults stop a service whose ``ENVIRONMENT`` is production.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "shopfds-development-secret-change-me"
DEFAULT_ADMIN_PASSWORD = "admin"


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPFDS_", extra="ignore", populate_by_name=True)

    environment: Literal["development", "staging", "production"] = Field(
        "development", validation_alias=_alias("environment", "ENVIRONMENT"))
    database_url: str | None = Field(
        None, validation_alias=_alias("database_url", "DATABASE_URL"),
        description="SQLAlchemy URL; postgresql:// is served by asyncpg. Default: SQLite under data_dir.")
    redis_url: str | None = Field(
        None, validation_alias=_alias("redis_url", "REDIS_URL"),
        description="Redis for caches and counters; unset -> in-process cache.")
    cache_prefix: str = Field("shopfds:", description="Prefix of every Redis key this service writes.")
    database_connect_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="A database connection not established within this is a 503.")
    database_statement_timeout_seconds: float = Field(
        5.0, gt=0, le=600, description="A statement not answered within this is a 503 (PostgreSQL: client "
        "timeout and server statement_timeout; SQLite: the wait for its write lock).")
    redis_timeout_seconds: float = Field(
        0.5, gt=0, le=60, description="A Redis command not answered within this falls back in-process.")
    redis_connect_timeout_seconds: float = Field(
        0.5, gt=0, le=60, description="A Redis connection not established within this falls back in-process.")
    data_dir: str = Field(".shopfds/data", description="SQLite files and model artifacts (embedded default).")
    jwt_secret: str = Field(DEFAULT_JWT_SECRET, validation_alias=_alias("jwt_secret", "SHOPFDS_JWT_SECRET",
                                                                       "JWT_SECRET"))
    jwt_ttl_seconds: int = Field(3600, gt=0)
    max_body_bytes: int = Field(1_000_000, gt=0, description="Larger request bodies get 413.")
    trusted_proxies: str = Field(
        "", description="Comma-separated proxies (IPs or CIDRs) whose X-Forwarded-For is believed.")
    fault_injection: bool | None = Field(
        None, description="Expose /internal/faults (default: on outside production).")

    # Where the other services are (defaults: the seed ports on this host).
    ecommerce_url: str = "http://127.0.0.1:8000"
    fds_url: str = "http://127.0.0.1:8001"
    ml_url: str = "http://127.0.0.1:8002"
    admin_url: str = "http://127.0.0.1:8003"

    @property
    def faults_enabled(self) -> bool:
        return self.fault_injection if self.fault_injection is not None else self.environment != "production"

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        from .client_ip import parse_networks

        parse_networks(value)  # a typo is a start-up error, not a silently ignored proxy
        return value

    def sqlalchemy_url(self, service: str) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir}/{service}.db"
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite"):
            url = "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        return url

    def default_secrets(self) -> list[str]:
        """Names of secrets still at their development default (a service adds its own)."""
        return ["SHOPFDS_JWT_SECRET"] if self.jwt_secret == DEFAULT_JWT_SECRET else []

    def check_production(self) -> None:
        if self.environment == "production" and (names := self.default_secrets()):
            raise RuntimeError(
                f"refusing to start in production with default secrets: {', '.join(names)}; set them")
