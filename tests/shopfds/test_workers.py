"""``shopfds up --workers N`` on the CLI's side: per-process storage is refused by name, and every
worker gets its own metrics port listed in the file_sd file the local Prometheus reads."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shopfds.cli import app as cli
from shopfds.stack import SEED_PORTS, prometheus_config, run_stack
from shopfds.workers import plan, worker_env, write_targets


@pytest.mark.parametrize(("env", "missing"), [
    ({}, "DATABASE_URL and REDIS_URL"),
    ({"DATABASE_URL": "sqlite:///x.db", "REDIS_URL": "redis://127.0.0.1:6379/0"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}, "REDIS_URL"),
])
def test_workers_on_the_embedded_default_are_refused_naming_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], missing: str) -> None:
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["up", "--workers", "2", "--workdir", str(tmp_path), "--no-prometheus"])
    assert result.exit_code == 1 and f"set {missing}" in " ".join(result.output.split()), result.output
    assert not (tmp_path / "run" / "state.json").exists()  # nothing was started


def test_each_worker_has_its_own_metrics_target_and_instance_id(tmp_path: Path) -> None:
    workers = plan(SEED_PORTS, 3)
    files = write_targets(tmp_path / "targets", workers)
    fds = json.loads(files["fds"].read_text())
    ports = [int(group["targets"][0].rsplit(":", 1)[1]) for group in fds]
    assert len(set(ports)) == 3 and SEED_PORTS["fds"] not in ports
    assert [group["labels"] for group in fds] == [{"worker": str(n)} for n in (1, 2, 3)]
    env = worker_env(workers["fds"][1], {"OTEL_RESOURCE_ATTRIBUTES": "deployment.region=kr"})
    assert env["SHOPFDS_METRICS_PORT"] == str(ports[1])
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.region=kr,service.instance.id=fds-2"
    config = yaml.safe_load(prometheus_config({"fds": "http://127.0.0.1:8001"}, tmp_path, targets=files).read_text())
    assert config["scrape_configs"][0]["file_sd_configs"] == [{"files": [str(files["fds"].resolve())]}]


def _running_under(workdir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(workdir).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_a_worker_that_fails_to_start_leaves_no_worker_running(tmp_path: Path) -> None:
    """Regression: the workers started before a failing one were left running by run_stack."""
    from tests.services.conftest import PG_DSN, REDIS_URL
    from tests.services.test_system import _postgres

    database = f"shopfds_wkfail_{uuid.uuid4().hex[:8]}"
    _postgres(f'CREATE DATABASE "{database}"')
    env = {"DATABASE_URL": PG_DSN.rsplit("/", 1)[0] + f"/{database}", "REDIS_URL": REDIS_URL,
           "SHOPFDS_CACHE_PREFIX": f"shopfds-wkfail:{uuid.uuid4().hex[:8]}:", "SHOPFDS_DEFAULT_SAMPLES": "1000",
           "SHOPFDS_RULES_PATH": str(tmp_path / "no-such-rules.yaml")}  # the FDS cannot start
    try:
        with pytest.raises(RuntimeError, match="fds-1 exited"), run_stack(tmp_path / "stack", env=env, workers=2):
            pass
        assert _running_under(tmp_path / "stack") == []
    finally:
        _postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
