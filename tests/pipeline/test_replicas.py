"""FDS replicas under compose (``docker-compose.replicas.yml``): every replica its own Prometheus
target, found by DNS, and otherwise the same Prometheus configuration as the single-replica stack."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class _ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (``!reset``, ``!override``) read as the value they carry."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(_tag, _tagged)


def _load(path: str) -> Any:
    return yaml.load((ROOT / path).read_text(), Loader=_ComposeLoader)  # a SafeLoader subclass


def test_the_replicas_config_is_the_compose_config_with_fds_found_by_dns() -> None:
    single, replicas = _load("prometheus/prometheus.yml"), _load("prometheus/prometheus.replicas.yml")
    jobs = {job["job_name"]: job for job in replicas["scrape_configs"]}
    assert jobs["fds"]["dns_sd_configs"] == [{"names": ["fds"], "type": "A", "port": 8001, "refresh_interval": "15s"}]
    assert "static_configs" not in jobs["fds"]
    expected = {**single, "scrape_configs": [
        {k: v for k, v in job.items() if k != "static_configs"} | {"dns_sd_configs": jobs["fds"]["dns_sd_configs"]}
        if job["job_name"] == "fds" else job for job in single["scrape_configs"]]}
    assert replicas == expected


def test_the_override_scales_the_fds_and_mounts_the_replicas_config() -> None:
    override = _load("docker-compose.replicas.yml")["services"]
    base = _load("docker-compose.yml")["services"]
    assert override["fds"]["ports"] == [] and override["fds"]["deploy"]["replicas"] == "${SHOPFDS_FDS_REPLICAS:-2}"
    mounts = override["prometheus"]["volumes"]
    assert "./prometheus/prometheus.replicas.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    # every other mount of the base service is kept
    assert set(base["prometheus"]["volumes"]) - {"./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"} \
        <= set(mounts)
    assert set(override) <= set(base)


def test_promtool_accepts_the_replicas_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("promtool not installed (make test installs it)")
    checked = subprocess.run([promtool, "check", "config", "--syntax-only",
                              str(ROOT / "prometheus" / "prometheus.replicas.yml")],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
