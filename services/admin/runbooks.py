"""The repository's ``docs/`` as HTML pages: what the alert rules' runbook links open.

``GET /runbooks/{name}`` (``api/routes/runbooks.py``) renders one Markdown file of ``docs/`` with
markdown-it-py (CommonMark plus tables and strikethrough; raw HTML in the Markdown is shown as
text, so a page carries no script) into a page with its own CSS and no external assets: the
on-call opens it from an alert without reaching the internet.

Every heading gets GitHub's anchor as its id (:func:`slug`): a link written for the Markdown on
GitHub, such as ``runbooks.md#fds-sla-violation`` in ``prometheus/rules``, lands on the same section
here, and links between the docs (``reliability.md``) resolve next to each other.

Only the ``.md`` files directly in the folder are pages. A requested name is looked up among
them, never joined to a path, so no request reads anything else.
"""

from __future__ import annotations

import html
import re
from collections.abc import MutableMapping
from itertools import pairwise
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
"""``docs/`` of the repository (``/app/docs`` in the image: the Dockerfile copies it)."""

# As github-slugger: letters, digits, "_", hyphens and spaces stay; any other character goes.
_NOT_IN_SLUG = re.compile(r"[^\w\- ]")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: lower case, punctuation dropped, each space a hyphen."""
    return _NOT_IN_SLUG.sub("", heading.strip().lower()).replace(" ", "-")


def _text(inline: Token) -> str:
    """The text a reader sees in a heading (code spans without their backticks, no emphasis marks)."""
    return "".join(child.content for child in inline.children or () if child.type in ("text", "code_inline"))


def _heading_ids(state: StateCore) -> None:
    """Set each heading's id as GitHub does; a repeated anchor gets ``-1``, ``-2``... as there.
    The first level-1 heading is the page's title (``env["title"]``)."""
    counts: dict[str, int] = {}
    for opening, inline in pairwise(state.tokens):
        if opening.type != "heading_open":
            continue
        text = _text(inline)
        if opening.tag == "h1":
            state.env.setdefault("title", text)
        anchor = base = slug(text)
        while anchor in counts:
            counts[base] += 1
            anchor = f"{base}-{counts[base]}"
        counts[anchor] = 0
        opening.attrSet("id", anchor)


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.core.ruler.push("heading_ids", _heading_ids)
    return md


_CSS = """
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1f2328; background: #fff; }
nav { padding: .6rem 1.5rem; border-bottom: 1px solid #d1d9e0; background: #f6f8fa; font-size: .9rem; }
main { max-width: 58rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.6em 0 .6em; }
h1, h2 { padding-bottom: .3em; border-bottom: 1px solid #d1d9e0; }
:target { background: #fff8c5; }
a { color: #0969da; }
code { font: .875em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #eff1f3;
       padding: .15em .35em; border-radius: 4px; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 6px; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d1d9e0; padding: .35em .75em; text-align: left; vertical-align: top; }
blockquote { margin: 0; padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; }
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<nav><a href="./">ShopFDS docs</a></nav>
<main>
{body}</main>
</body>
</html>
"""


def _page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), css=_CSS, body=body)


class Docs:
    """The Markdown files directly in ``directory``, each rendered as a page on request."""

    def __init__(self, directory: Path = DOCS_DIR) -> None:
        self.directory = directory
        self._md = _markdown()

    def names(self) -> list[str]:
        """The pages: ``.md`` files directly in the folder, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(path.name for path in self.directory.glob("*.md") if path.is_file())

    def page(self, name: str) -> str | None:
        """The HTML page of ``name`` (``runbooks.md``), or None when the folder has no such page."""
        if name not in self.names():
            return None
        env: MutableMapping[str, Any] = {}
        body = self._md.render((self.directory / name).read_text(encoding="utf-8"), env)
        return _page(f"{env.get('title') or name} · ShopFDS", body)

    def index(self) -> str:
        """A page listing every page with its title."""
        items = "".join(f'<li><a href="{html.escape(name)}">{html.escape(self._title(name))}</a> '
                        f"<code>{html.escape(name)}</code></li>\n" for name in self.names())
        return _page("ShopFDS docs", f"<h1>ShopFDS docs</h1>\n<ul>\n{items}</ul>\n")

    def _title(self, name: str) -> str:
        env: MutableMapping[str, Any] = {}
        self._md.parse((self.directory / name).read_text(encoding="utf-8"), env)
        return str(env.get("title") or name)
