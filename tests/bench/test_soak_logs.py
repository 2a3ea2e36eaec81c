"""A failed soak keeps the services' output, JSON logs and spans."""

from __future__ import annotations

from pathlib import Path

from bench.soak import keep_logs


def test_keep_logs_copies_output_logs_and_the_trace_store(tmp_path: Path) -> None:
    run = tmp_path / "run"
    files = {"out/fds.log": "started", "logs/fds.jsonl": '{"level": "WARNING"}', "traces/fds.jsonl": "{}"}
    for name, text in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    keep_logs(run, tmp_path / "kept")
    kept = {str(p.relative_to(tmp_path / "kept")): p.read_text() for p in (tmp_path / "kept").rglob("*") if p.is_file()}
    assert kept == files
