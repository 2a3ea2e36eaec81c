"""shopfds.rules: the runbook links' base URL, from argument, environment or default, down to the
rules the local Prometheus loads and the files ``shopfds rules`` writes."""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shopfds.cli import app
from shopfds.rules import DEFAULT_RUNBOOK_BASE_URL, RULES_DIR, RUNBOOK_BASE_URL_ENV, runbook_base_url
from shopfds.stack import prometheus_config

BASE = "https://wiki.example.com/shopfds/docs/"
URLS = {"fds": "http://127.0.0.1:8001"}


def runbook_urls(paths: list[str]) -> list[str]:
    return [rule["annotations"]["runbook_url"] for path in paths for group in yaml.safe_load(Path(path).read_text())
            ["groups"] for rule in group["rules"] if "alert" in rule]


def test_base_url_precedence_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNBOOK_BASE_URL_ENV, raising=False)
    assert runbook_base_url() == DEFAULT_RUNBOOK_BASE_URL
    monkeypatch.setenv(RUNBOOK_BASE_URL_ENV, "https://process.example.com/docs")
    assert runbook_base_url() == "https://process.example.com/docs/"
    assert runbook_base_url(env={RUNBOOK_BASE_URL_ENV: BASE}) == BASE
    assert runbook_base_url("http://given.example.com/d/", env={RUNBOOK_BASE_URL_ENV: BASE}) == "http://given.example.com/d/"
    for bad in ("docs/", "ftp://example.com/docs/", "https:///docs/", "https://example.com/docs/#x",
                "https://example.com/my docs/"):
        with pytest.raises(ValueError, match=RUNBOOK_BASE_URL_ENV):
            runbook_base_url(bad)


def test_local_prometheus_loads_the_rules_with_links_under_the_configured_base(tmp_path: Path) -> None:
    default = yaml.safe_load(prometheus_config(URLS, tmp_path / "default").read_text())
    assert default["rule_files"] == [str(RULES_DIR / "*.yml")]

    config_path = prometheus_config(URLS, tmp_path / "moved", runbook_base=BASE)
    (pattern,) = yaml.safe_load(config_path.read_text())["rule_files"]
    files = sorted(glob.glob(pattern))
    assert [Path(f).name for f in files] == sorted(p.name for p in RULES_DIR.glob("*.yml"))
    urls = runbook_urls(files)
    assert urls and all(u.startswith(f"{BASE}runbooks.md#") for u in urls), urls
    assert len(urls) == len(runbook_urls([str(p) for p in RULES_DIR.glob("*.yml")]))
    promtool = shutil.which("promtool")
    if promtool:
        checked = subprocess.run([promtool, "check", "config", str(config_path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_command_writes_the_rules_under_the_given_base(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rules", "--out", str(tmp_path), "--runbook-base-url", BASE.rstrip("/")],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    urls = runbook_urls(sorted(str(p) for p in tmp_path.glob("*.yml")))
    assert urls and all(u.startswith(f"{BASE}runbooks.md#") for u in urls), urls
    bad = CliRunner().invoke(app, ["rules", "--out", str(tmp_path / "x"), "--runbook-base-url", "docs/"])
    assert bad.exit_code == 2 and RUNBOOK_BASE_URL_ENV in bad.output and not (tmp_path / "x").exists()
