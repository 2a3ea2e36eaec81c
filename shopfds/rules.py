"""The alert rules as Prometheus loads them, with runbook links a person can click.

Every ``runbook_url`` annotation in ``prometheus/rules`` is an absolute link to a section of
``docs/`` under :data:`DEFAULT_RUNBOOK_BASE_URL`: the admin service's ``/runbooks/`` pages, which
render ``docs/`` with GitHub's heading anchors (``services/admin/runbooks.py``). Locally
(``shopfds up``, ``shopfds demo``) and in compose the admin is published on localhost:8003, so a
link in Alertmanager or Grafana opens its runbook with no step in between (compose mounts the
files as they are).

In a cluster, or wherever the on-call reads the runbooks somewhere else (the admin's Ingress, an
internal mirror or wiki), set ``SHOPFDS_RUNBOOK_BASE_URL`` to the URL of that ``docs/`` folder:

- ``shopfds up`` and ``shopfds demo`` load the rules rendered under that base;
- ``shopfds rules --out DIR`` writes them for compose or Kubernetes to mount (or load as a
  PrometheusRule) instead of ``prometheus/rules``.

Precedence: an explicit base, then ``SHOPFDS_RUNBOOK_BASE_URL``, then the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .procs import ROOT

RULES_DIR = ROOT / "prometheus" / "rules"
DEFAULT_RUNBOOK_BASE_URL = "http://localhost:8003/runbooks/"
"""Where ``docs/`` is read by default: the admin service's runbook pages, on the port ``shopfds up``
and compose publish it on."""
RUNBOOK_BASE_URL_ENV = "SHOPFDS_RUNBOOK_BASE_URL"
"""Base URL of ``docs/`` in the rules' runbook links; default :data:`DEFAULT_RUNBOOK_BASE_URL`."""
_KEY = "runbook_url: "


def runbook_base_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The base URL the runbook links are under, ending with ``/``; ValueError unless http(s)."""
    base = explicit or (env or {}).get(RUNBOOK_BASE_URL_ENV) or os.environ.get(RUNBOOK_BASE_URL_ENV)
    base = (base or DEFAULT_RUNBOOK_BASE_URL).strip()
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment \
            or any(c.isspace() for c in base):
        raise ValueError(f"{RUNBOOK_BASE_URL_ENV}={base!r}: expected an http(s) URL of the docs folder, "
                         f"e.g. {DEFAULT_RUNBOOK_BASE_URL}")
    return base if base.endswith("/") else f"{base}/"


def render_rules(dest: Path, base_url: str) -> list[Path]:
    """Write the rule files to ``dest`` with every runbook link under ``base_url``.

    Line by line, so the files keep their comments and layout; a runbook link that is not under
    the default base is an error in the rule file, not something to carry over silently.
    """
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(RULES_DIR.glob("*.yml")):
        lines = source.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            indent, _, value = line.partition(_KEY)
            if not value or indent.strip():
                continue
            if not value.startswith(DEFAULT_RUNBOOK_BASE_URL):
                raise ValueError(f"{source.name}:{i + 1}: runbook_url is not under {DEFAULT_RUNBOOK_BASE_URL}")
            lines[i] = f"{indent}{_KEY}{base_url}{value.removeprefix(DEFAULT_RUNBOOK_BASE_URL)}"
        target = dest / source.name
        target.write_text("".join(lines))
        written.append(target)
    return written


def rule_files(workdir: Path, base_url: str) -> list[str]:
    """The ``rule_files`` of a Prometheus config: the repository's when ``base_url`` is the
    default, else a rendering under ``workdir/rules``."""
    if base_url == DEFAULT_RUNBOOK_BASE_URL:
        return [str(RULES_DIR / "*.yml")]
    render_rules(workdir / "rules", base_url)
    return [str((workdir / "rules").resolve() / "*.yml")]
