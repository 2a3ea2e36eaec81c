"""``/runbooks/``: the docs as HTML pages, without a token; nothing outside ``docs/*.md`` is served.

The links of the alert rules are fetched from the admin app in tests/pipeline/test_prometheus_rules.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from services.admin.runbooks import DOCS_DIR, Docs

from ..conftest import Backend, serve
from .helpers import make_admin


class Elements(HTMLParser):
    """The tags of a page with their attributes, and its title."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.title = ""
        self._in_title = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def ids(self, *tags: str) -> list[str]:
        return [str(attrs["id"]) for tag, attrs in self.tags if "id" in attrs and (not tags or tag in tags)]


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    embedded = Backend("embedded", {"data_dir": str(tmp_path / "data"), "redis_url": None, "database_url": None})
    async with serve(make_admin(embedded, tmp_path)) as client:
        yield client


async def test_a_doc_is_a_page_with_github_heading_ids_and_no_external_asset(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/runbooks/runbooks.md")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Elements(response.text)
    assert page.title.startswith("ShopFDS runbooks")
    ids = page.ids("h1", "h2", "h3")
    assert {"shopfds-runbooks", "following-an-exemplar-to-its-trace", "fds-sla-violation",
            "ecommerce-availability-budget-burn"} <= set(ids)
    # The "# trace ids of ..." comment in a fenced block of that section is code, not a heading.
    assert not any(i.startswith("trace-ids") for i in ids)
    assert [tag for tag, _ in page.tags if tag in ("script", "link", "img", "iframe")] == []
    assert "style" in [tag for tag, _ in page.tags]
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_the_index_links_every_doc_and_each_link_opens(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/runbooks/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    links = [str(attrs["href"]) for tag, attrs in Elements(response.text).tags if tag == "a" and attrs.get("href")]
    names = sorted(p.name for p in DOCS_DIR.glob("*.md"))
    assert "runbooks.md" in names and set(names) <= set(links)
    for name in names:
        page = await admin.get(httpx.URL(str(response.url)).join(name))
        assert page.status_code == 200, name
        assert Elements(page.text).ids("h1"), name


@pytest.mark.parametrize("path", [
    "/runbooks/..%2Fpyproject.toml", "/runbooks/../README.md", "/runbooks/..%2F..%2Fetc%2Fpasswd",
    "/runbooks/%2e%2e", "/runbooks/nope.md", "/runbooks/runbooks", "/runbooks/RUNBOOKS.MD",
    "/runbooks/.md", "/runbooks/schemas%2Fcompose-spec.json",
])
async def test_anything_but_a_doc_is_404(admin: httpx.AsyncClient, path: str) -> None:
    response = await admin.get(path)
    assert response.status_code == 404
    assert "[project]" not in response.text and "<html" not in response.text


def test_a_name_is_looked_up_among_the_docs_never_joined_to_a_path(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "guide.md").write_text("# Guide\n")
    (folder / "notes.txt").write_text("# Notes\n")
    (folder / "sub" / "inner.md").write_text("# Inner\n")
    (folder / "dir.md").mkdir()
    (tmp_path / "secret.md").write_text("# Secret\n")
    docs = Docs(folder)
    assert docs.names() == ["guide.md"]
    assert docs.page("guide.md") is not None
    for name in ("../secret.md", "sub/inner.md", "notes.txt", "dir.md", str(folder / "guide.md"),
                 "./guide.md", "guide.md/", "", "."):
        assert docs.page(name) is None, name
    assert Docs(tmp_path / "missing").page("guide.md") is None


def test_heading_ids_follow_github(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text(
        "# The `fds_score` & Co.\n\n"
        "## FDS SLA Violation\n\n"
        "## What it means?\n\n"
        "## What it means?\n\n"
        "### Ünïcode *emphasis* [link](other.md)\n\n"
        "```bash\n# not a heading\n```\n\n"
        "<script>alert(1)</script>\n"
    )
    page = Docs(tmp_path).page("page.md")
    assert page is not None
    parsed = Elements(page)
    assert parsed.ids() == ["the-fds_score--co", "fds-sla-violation", "what-it-means", "what-it-means-1",
                            "ünïcode-emphasis-link"]
    assert parsed.title.startswith("The fds_score & Co.")
    # Raw HTML in the Markdown is text, not markup.
    assert "script" not in [tag for tag, _ in parsed.tags]
