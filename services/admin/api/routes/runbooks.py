"""``GET /runbooks/`` and ``GET /runbooks/{name}``: the docs as pages, where runbook links lead.

Pages for people, not part of the JSON API: left out of the OpenAPI schema. No token: the docs
hold nothing secret, and an on-call following an alert's link has no admin token in the browser.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import HTMLResponse

from ...runbooks import Docs

router = APIRouter(prefix="/runbooks", tags=["runbooks"], include_in_schema=False)
docs = Docs()
# The pages are our own Markdown without raw HTML; the policy still forbids any script or fetch.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}


# Plain functions: FastAPI runs them in its thread pool, so reading and rendering a file does not
# hold up the event loop.
@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return HTMLResponse(docs.index(), headers=HEADERS)


@router.get("/{name}", response_class=HTMLResponse)
def page(name: str) -> HTMLResponse:
    html = docs.page(name)
    if html is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such page in docs/")
    return HTMLResponse(html, headers=HEADERS)
