"""``SHOPFDS_METRICS_TOKEN`` on the stack's side: the local Prometheus config sends the token and
the report's scrape fallback does too; without it both are refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shopfds.report.sources import ScrapeSource
from shopfds.stack import prometheus_config
from tests.procs import uvicorn_app

TOKEN = "scrape-token-5f2c9e"


def test_local_prometheus_config_sends_the_token_on_every_job(tmp_path: Path) -> None:
    urls = {"ecommerce": "http://127.0.0.1:8000", "fds": "http://127.0.0.1:8001"}
    config = yaml.safe_load(prometheus_config(urls, tmp_path, token=TOKEN).read_text())
    assert {job["job_name"]: job["authorization"] for job in config["scrape_configs"]} == {
        name: {"credentials": TOKEN} for name in urls}
    plain = yaml.safe_load(prometheus_config(urls, tmp_path / "plain").read_text())
    assert all("authorization" not in job for job in plain["scrape_configs"])
    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("promtool not installed")
    check = subprocess.run([promtool, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_report_scrape_fallback_sends_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SHOPFDS_METRICS_TOKEN": TOKEN, "SHOPFDS_TRACE_STORE_DIR": str(tmp_path / "traces"),
           "SENTRY_DSN": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "", "SHOPFDS_LOG_FORMAT": "off"}
    with uvicorn_app("tests.shopfds.report_app:app", env, tmp_path / "app.log") as url:
        monkeypatch.delenv("SHOPFDS_METRICS_TOKEN", raising=False)
        refused = ScrapeSource({"fds": url}, probe_seconds=0)
        assert refused.targets == {"fds": False} and any("did not answer" in n for n in refused.notes)
        monkeypatch.setenv("SHOPFDS_METRICS_TOKEN", TOKEN)
        scraped = ScrapeSource({"fds": url}, probe_seconds=0)
        assert scraped.targets == {"fds": True} and "fds_errors_total" in scraped.texts["fds"]
