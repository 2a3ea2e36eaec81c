"""The catalog is SPEC.md's metric catalog: every name there, with its kind and labels, is here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from otel_setup import catalog

SPEC = Path(__file__).resolve().parents[3] / "shared" / "SPEC.md"
_LINE = re.compile(r"^- (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*) "
                   r"(counter|histogram|gauge|summary-style quantiles)[^{]*(\{[^}]*\})?")


def spec_text() -> str:
    """SPEC.md, the contract the catalog, dashboards and alerts are held to (beside the repository)."""
    if not SPEC.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SPEC} missing")
        pytest.skip("SPEC.md not beside the repository")
    return SPEC.read_text()


def spec_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    section = spec_text().split("## Metric catalog", 1)[1].split("\n## ", 1)[0]
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in section.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        names = re.findall(r"`([a-z0-9_]+)`", match.group(1))
        labels = tuple(x.split(":")[0].strip() for x in (match.group(3) or "{}")[1:-1].split(",") if x.strip())
        for name in names:
            found[name] = (match.group(2), labels)
    return found


def test_spec_lists_the_catalog() -> None:
    assert len(spec_metrics()) >= 40  # the parser still understands SPEC.md


@pytest.mark.parametrize("kind_map", [{"counter": {catalog.Kind.COUNTER}, "histogram": {catalog.Kind.HISTOGRAM},
                                       "gauge": {catalog.Kind.GAUGE, catalog.Kind.UPDOWN},
                                       "summary-style quantiles": {catalog.Kind.GAUGE}}])
def test_every_spec_metric_is_in_the_catalog_with_its_kind_and_labels(kind_map) -> None:
    problems = []
    for name, (kind, labels) in spec_metrics().items():
        spec = catalog.ALL.get(name)
        if spec is None:
            problems.append(f"{name}: missing")
            continue
        if spec.kind not in kind_map[kind]:
            problems.append(f"{name}: {spec.kind} but SPEC says {kind}")
        if labels and spec.labels != labels:
            problems.append(f"{name}: labels {spec.labels} but SPEC says {labels}")
    assert not problems, problems
