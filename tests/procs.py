"""Test wrappers over ``shopfds.procs``: a missing Prometheus skips locally and fails in CI."""

from __future__ import annotations

import os

import pytest

from shopfds import procs
from shopfds.procs import free_port, uvicorn_app, wait_http

__all__ = ["free_port", "prometheus", "uvicorn_app", "wait_http"]


def prometheus(targets, workdir, interval="1s", token=None):
    if procs.prometheus_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed (make test installs it with apt-get)")
        pytest.skip("prometheus binary not installed")
    return procs.prometheus(targets, workdir, interval, token)
