"""checkov on the rendered Kubernetes manifests, the Dockerfile and docker-compose.yml.

Every finding is either fixed or skipped with its reason: deploy/checkov-skips.yaml for findings
that hold for every resource, a ``checkov.io/skip`` annotation on the one resource otherwise.
checkov has no policies for compose files; its secrets scan runs on docker-compose.yml. The
checks run offline (--skip-download), so findings carry no severity: none may be left unexplained.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
SKIPS = yaml.safe_load((ROOT / "deploy" / "checkov-skips.yaml").read_text())
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _checkov() -> str:
    found = str(CHECKOV) if CHECKOV.exists() else shutil.which("checkov")
    if found is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("checkov not installed (make test installs it)")
    assert found is not None
    return found


def _run(directory: Path, *frameworks: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [_checkov(), "-d", str(directory), "--framework", *frameworks, "--skip-download", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=300)
    assert result.stdout.strip(), result.stderr[-2000:]
    found = json.loads(result.stdout)
    runs: list[dict[str, Any]] = found if isinstance(found, list) else [found]
    return runs


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Rendered manifests under the Kubernetes policies; the Dockerfile under the Dockerfile
    policies; the compose file and the sources of deploy/ under the secrets scan (the dev
    overlay's Secret, rendered, is base64 of development-only values and is not scanned)."""
    manifests, sources = tmp_path_factory.mktemp("checkov-k8s"), tmp_path_factory.mktemp("checkov-src")
    for name in ("overlays/dev", "overlays/production", "prometheus-operator"):
        objects = render(ROOT / "deploy" / "kubernetes" / name)
        (manifests / f"{name.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(objects))
    shutil.copy(ROOT / "Dockerfile", sources / "Dockerfile")
    shutil.copy(ROOT / "docker-compose.yml", sources / "docker-compose.yml")
    shutil.copytree(ROOT / "deploy", sources / "deploy")
    runs = _run(manifests, "kubernetes") + _run(sources, "dockerfile", "secrets")
    assert {r["check_type"] for r in runs} >= {"kubernetes", "dockerfile"}, [r.get("check_type") for r in runs]
    return runs


def _results(report: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for run in report for c in run["results"].get(kind, [])]


def test_every_finding_is_fixed_or_skipped_with_a_reason(report: list[dict[str, Any]]) -> None:
    open_findings = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({Path(c['file_path']).name})"
                     for c in _results(report, "failed_checks") if c["check_id"] not in SKIPS]
    assert not open_findings, "\n".join(open_findings)


def test_every_skip_has_a_reason_and_is_still_needed(report: list[dict[str, Any]]) -> None:
    failing = {c["check_id"] for c in _results(report, "failed_checks")}
    for check, reason in SKIPS.items():
        assert len(str(reason).split()) >= 8, f"{check}: say why"
        assert check in failing, f"{check} no longer fails anywhere: drop it from deploy/checkov-skips.yaml"


def test_skip_annotations_carry_their_reason(report: list[dict[str, Any]]) -> None:
    skipped = _results(report, "skipped_checks")
    assert skipped, "the Prometheus service account token skip is annotated, checkov must report it"
    for check in skipped:
        assert len(str(check["check_result"].get("suppress_comment", "")).split()) >= 5, check["check_id"]


def test_the_checks_ran_on_every_rendered_resource(report: list[dict[str, Any]]) -> None:
    passed = _results(report, "passed_checks")
    resources = {c["resource"] for c in passed + _results(report, "failed_checks")}
    for name in ("Deployment.shopfds.fds", "StatefulSet.shopfds.otel-sampling", "StatefulSet.shopfds.vmstorage",
                 "Deployment.shopfds.otel-gateway", "PodMonitor.shopfds.shopfds-services"):
        if name.startswith("PodMonitor"):
            continue  # checkov has no policies for the Operator's kinds
        assert name in resources, name
    assert any(Path(c["file_path"]).name == "Dockerfile" for c in passed)
