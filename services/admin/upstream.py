"""Calls to the FDS and ecommerce, each with a short-lived ``service`` token.

Every failure of the other side (unreachable, timeout, 5xx, a body that breaks the contract)
becomes ``UpstreamError`` -> 502 with a detail naming the service; the answers the admin acts on
(404 unknown transaction, 409 already reviewed) are returned to the caller to decide.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from services.common.security import service_headers

from .schemas import Feedback, Order, ReviewQueue, StoredEvaluation

M = TypeVar("M", bound=BaseModel)


class UpstreamError(Exception):
    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = f"{service}: {detail}"


class Upstream:
    def __init__(self, fds: httpx.AsyncClient, ecommerce: httpx.AsyncClient, secret: str) -> None:
        self.fds = fds
        self.ecommerce = ecommerce
        self.secret = secret

    async def reviews(self, limit: int) -> ReviewQueue:
        response = await self._send("fds", "GET", "/v1/fds/reviews", params={"limit": limit})
        return _parse("fds", response, ReviewQueue)

    async def stats(self) -> dict[str, Any]:
        response = await self._send("fds", "GET", "/v1/fds/stats")
        body = _json("fds", response)
        if not isinstance(body, dict):
            raise UpstreamError("fds", "stats is not a JSON object")
        return body

    async def transaction(self, transaction_id: str) -> StoredEvaluation | None:
        response = await self._send("fds", "GET", f"/v1/fds/transactions/{transaction_id}")
        if response.status_code == 404:
            return None
        return _parse("fds", response, StoredEvaluation)

    async def feedback(self, transaction_id: str, is_fraud: bool) -> Feedback | None:
        """The FDS label; ``None`` when the FDS already holds a different one (409)."""
        response = await self._send("fds", "POST", f"/v1/fds/transactions/{transaction_id}/feedback",
                                    json={"is_fraud": is_fraud})
        if response.status_code == 409:
            return None
        return _parse("fds", response, Feedback)

    async def review_order(self, order_id: str, decision: str) -> Order | None:
        """The reviewed order; ``None`` when ecommerce refuses because it is no longer held (409)."""
        response = await self._send("ecommerce", "POST", f"/v1/orders/{order_id}/review",
                                    json={"decision": decision})
        if response.status_code == 409:
            return None
        return _parse("ecommerce", response, Order)

    async def order(self, order_id: str) -> Order:
        return _parse("ecommerce", await self._send("ecommerce", "GET", f"/v1/orders/{order_id}"), Order)

    async def _send(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        http = self.fds if service == "fds" else self.ecommerce
        try:
            return await http.request(method, path, headers=service_headers(self.secret, "admin"), **kwargs)
        except httpx.TimeoutException as exc:
            raise UpstreamError(service, f"{method} {path} timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(service, f"{method} {path} failed: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self.fds.aclose()
        await self.ecommerce.aclose()


def _json(service: str, response: httpx.Response) -> Any:
    if not response.is_success:
        raise UpstreamError(service, f"{response.request.method} {response.request.url.path} "
                                     f"answered {response.status_code}{_detail(response)}")
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamError(service, "answered with a body that is not JSON") from exc


def _parse(service: str, response: httpx.Response, model: type[M]) -> M:
    body = _json(service, response)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise UpstreamError(service, f"answered a body that is not a {model.__name__}") from exc


def _detail(response: httpx.Response) -> str:
    # Only a short string detail is repeated: enough to diagnose, never a whole upstream body.
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    return f" ({detail})" if isinstance(detail, str) and len(detail) <= 200 else ""
