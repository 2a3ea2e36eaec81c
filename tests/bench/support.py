"""What the bench smoke tests share: running a bench as ``make bench`` does, and wrk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, out: Path, *args: str, timeout: float = 300) -> tuple[dict[str, Any], str]:
    """``python -m <module> <args> --json <out>`` from the repository: its figures and its output;
    fails the test with the bench's stderr when it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--json", str(out)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8")), proc.stdout


def require_wrk() -> None:
    """wrk drives the closed loops: missing, the test fails in CI (``make wrk`` installs it) and
    is skipped elsewhere."""
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            raise AssertionError("wrk missing: `make wrk` installs it")
        pytest.skip("wrk not installed")
