"""A service started the way ``shopfds up`` starts it runs on uvloop with the httptools parser."""

from __future__ import annotations

from pathlib import Path

from shopfds.procs import uvicorn_app


def test_a_started_service_serves_on_uvloop_and_httptools(tmp_path: Path) -> None:
    pids: dict[str, int] = {}
    env = {"SHOPFDS_DATA_DIR": str(tmp_path / "data"), "SHOPFDS_TRACE_STORE_DIR": str(tmp_path / "traces"),
           "SHOPFDS_ML_URL": "http://127.0.0.1:9"}
    with uvicorn_app("services.fds.main:app", env, tmp_path / "fds.log", pids=pids):
        libraries = Path(f"/proc/{pids['services.fds.main:app']}/maps").read_text()
    assert "/uvloop/" in libraries  # uvicorn's --loop auto found it
    assert "/httptools/" in libraries  # and --http auto the C parser, not h11
