"""The error answers every service gives, added to each operation of its OpenAPI schema.

FastAPI documents a route's own responses (and 422 when it takes input); the answers that come
from the shared machinery of ``create_service_app`` are added here, where they are produced:

- 400: a body that is not text (invalid UTF-8) cannot be parsed (FastAPI);
- 401 and 403: a bearer token that is missing or invalid, or of another role (``security.require_roles``);
- 413: a body over ``max_body_bytes`` (``BodyLimitMiddleware``);
- 503: the database is unreachable (``create_service_app``'s handler).

Each is ``{"detail": "<what went wrong>"}``; a route's own declaration of the same code wins.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class Error(BaseModel):
    """The body of an error answer other than a validation error (422)."""

    detail: str


_BODY = {"400": "the body could not be parsed", "413": "the body is larger than the service accepts"}
_SECURED = {"401": "missing, invalid or expired bearer token", "403": "the token's role may not do this"}
_ALWAYS = {"503": "the database is unreachable; retry later (Retry-After)"}


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` list the shared error answers (call once, before the schema is built)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = Error.model_json_schema()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                _add(operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add(operation: dict[str, Any]) -> None:
    codes = dict(_ALWAYS)
    if "requestBody" in operation:
        codes.update(_BODY)
    if operation.get("security"):
        codes.update(_SECURED)
    responses = operation.setdefault("responses", {})
    for code, description in codes.items():
        responses.setdefault(code, _error_response(description))


def _error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response whose body is ``{"detail": "..."}``."""
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    """A route's own error answer, for ``responses=``: ``{404: error("no such product")}``."""
    return {"model": Error, "description": description}
