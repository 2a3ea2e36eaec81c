"""Smoke test of ``bench.before_after``: an earlier commit's FDS runs from a git worktree under this
harness beside this checkout's, both are measured and profiled, and the worktree is gone after.
Only the shape of the output is checked, never a timing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.before_after import BEFORE
from bench.report import render
from tests.bench.support import REPO_ROOT, require_wrk, run_bench


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_before_after_runs_the_earlier_commit_beside_this_one(tmp_path: Path) -> None:
    require_wrk()
    worktrees = _git("worktree", "list", "--porcelain")
    result, _ = run_bench("bench.before_after", tmp_path / "before_after.json", "--parts", "fds", "--duration", "1",
                          "--rounds", "1", "--warmup", "1", "--profile-seconds", "1")
    assert result["before"]["commit"] == _git("rev-parse", BEFORE) != result["after"]["commit"]
    assert result["after"]["commit"] == _git("rev-parse", "HEAD")
    # Every (commit, mode) pair ran, in ABBA order over the four.
    assert [(r["side"], r["mode"]) for r in result["fds"]["runs"]] == [
        ("before", "development"), ("before", "disabled"), ("after", "development"), ("after", "disabled")]
    for side in ("before", "after"):
        figures = result["fds"]["sides"][side]
        assert figures["errors"] == 0 and figures["ratio"] > 0
        assert figures["evaluations_per_s"]["development"] > 0 and figures["evaluations_per_s"]["disabled"] > 0
        # The earlier commit's own code ran: its frames are attributed to the project's packages.
        assert figures["profile"]["samples"] > 0 and figures["profile"]["packages_pct"].get("services", 0) > 0
        assert figures["telemetry_cpu_ms"] is not None and figures["telemetry_cpu_ms"] > 0
    assert _git("worktree", "list", "--porcelain") == worktrees  # the temporary worktree is removed
    markdown = render({"before_after": result})
    assert f"## Before and after: the FDS and ecommerce at `{BEFORE}`" in markdown
    assert "| before | `" + BEFORE + "` |" in markdown and "FDS: functions by own samples" in markdown
