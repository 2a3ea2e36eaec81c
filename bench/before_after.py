"""The FDS and the checkout before and after the telemetry-cost work, profiled in one run.

    python -m bench.before_after [--before REV] [--duration S] [--rounds R] [--profile-seconds S]
                                 [--checkout-duration S] [--json FILE]

The services of an earlier commit (``--before``; by default 4b81073, the last commit before the
work on the telemetry's price began) run from a temporary git worktree under this checkout's
harness, beside this checkout's own services: same machine, same load generators, same
interpreter and libraries, in one sitting, so the two sides differ only by the code of the
services and of ``otel_setup``.

- **FDS** (embedded default, as ``bench.saturation``): ``POST /v1/fds/evaluate`` saturated by wrk,
  development defaults (100 % sampling, local trace store) and ``OTEL_SDK_DISABLED=true``, both
  commits, in ABBA order over all four; then py-spy (``--gil``) on each side's development FDS at
  saturation.
- **ecommerce** (PostgreSQL + Redis, development defaults): the checkout flow at saturation as
  ``bench.checkout_saturation`` runs it (telemetry on and off, ABBA), one commit after the other,
  with py-spy on each side's ecommerce.

Per side: throughput, CPU per evaluation or checkout, and the profile's share by package, the
telemetry packages' share (``opentelemetry``, ``otel_setup``, ``sentry_sdk``) and the CPU that
share stands for. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown

from bench import checkout_saturation, saturation
from bench.report import before_after_section
from shopfds import procs
from shopfds.procs import ROOT

BEFORE = "4b81073"
SIDES = ("before", "after")
PARTS = ("fds", "checkout")
err = Console(stderr=True)


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


@contextmanager
def worktree(rev: str) -> Iterator[tuple[Path, str]]:
    """A detached worktree of ``rev`` for the time of the block: (path, full commit id)."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="shopfds-before-") as tmp:
        path = Path(tmp) / "src"
        git("worktree", "add", "--detach", "--force", str(path), commit)
        try:
            yield path, commit
        finally:
            git("worktree", "remove", "--force", str(path))


@contextmanager
def services_from(root: Path) -> Iterator[None]:
    """Services started in the block run the code under ``root``."""
    previous, procs.SERVICE_ROOT = procs.SERVICE_ROOT, root
    try:
        yield
    finally:
        procs.SERVICE_ROOT = previous


def abba(rounds: int, runs: Sequence[tuple[str, str]]) -> Iterator[tuple[int, str, str]]:
    for r in range(rounds):
        yield from ((r, side, mode) for side, mode in (runs if r % 2 == 0 else tuple(reversed(runs))))


def fds(args: argparse.Namespace, roots: dict[str, Path], workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    bodies = workdir / "bodies.txt"
    saturation.write_bodies(bodies)
    wrk = argparse.Namespace(threads=1, connections=args.connections, workers=1,
                             profile_seconds=args.profile_seconds)
    modes = (saturation.DEV, saturation.OFF)
    with ExitStack() as stack:
        running: dict[tuple[str, str], tuple[str, int]] = {}
        for side in SIDES:
            with services_from(roots[side]):
                ml_url, _ = stack.enter_context(saturation.service("ml", workdir / side / "ml", {}, {}))
                for mode in modes:
                    running[side, mode] = stack.enter_context(saturation.service(
                        "fds", workdir / side / mode, {"ml": ml_url}, saturation.MODE_ENV[mode]))
        for (side, mode), (url, pid) in running.items():
            err.print(f"FDS {side} {mode}: warm-up")
            saturation.closed_loop(url, pid, bodies, wrk, args.warmup)
        runs = []
        for r, side, mode in abba(args.rounds, list(running)):
            run = saturation.closed_loop(*running[side, mode], bodies, wrk, args.duration)
            runs.append({"round": r, "side": side, "mode": mode, **run})
            err.print(f"FDS round {r + 1}/{args.rounds} {side} {mode}: {run['evaluations_per_s']}/s, "
                      f"{run['cpu_ms_per_evaluation']['fds']} ms CPU per evaluation")
        profiles = {}
        for side in SIDES if args.profile_seconds > 0 else ():
            err.print(f"FDS {side}: py-spy at saturation ({args.profile_seconds:g}s)")
            with services_from(roots[side]):
                profiles[side] = saturation.profile(*running[side, saturation.DEV], bodies, wrk, workdir / side,
                                                    saturation.DEV)
    out: dict[str, Any] = {}
    for side in SIDES:
        mine = {mode: [r for r in runs if r["side"] == side and r["mode"] == mode] for mode in modes}
        dev, off = (statistics.median(r["evaluations_per_s"] for r in mine[m]) for m in modes)
        cpu = {m: statistics.median(r["cpu_ms_per_evaluation"]["fds"] for r in mine[m]) for m in modes}
        out[side] = {"evaluations_per_s": {saturation.DEV: dev, saturation.OFF: off},
                     "ratio": round(dev / off, 3) if off else None,
                     "cpu_ms_per_evaluation": cpu,
                     "errors": sum(sum(r["errors"].values()) for r in runs if r["side"] == side),
                     "profile": profiles.get(side), **_telemetry_cpu(profiles.get(side), cpu[saturation.DEV])}
    return {"runs": runs, "sides": out}


def checkout(args: argparse.Namespace, roots: dict[str, Path], workdir: Path) -> dict[str, Any]:
    options = argparse.Namespace(concurrency=24, duration=args.checkout_duration, rounds=args.checkout_rounds,
                                 shoppers=600, profile_seconds=args.profile_seconds, profile_dir=None)
    out = {}
    for side in SIDES:
        err.print(f"checkout {side} (PostgreSQL + Redis, development defaults)")
        with services_from(roots[side]):
            config = checkout_saturation.configuration(options, "postgres", "development", workdir / side,
                                                       profile_it=args.profile_seconds > 0)
        on, off = config[checkout_saturation.ON], config[checkout_saturation.OFF]
        cpu = on["cpu_ms_per_checkout"].get("ecommerce")
        out[side] = {"checkouts_per_s": {"telemetry": on["tps"], "disabled": off["tps"]},
                     "ratio": config.get("ratio"),
                     "ecommerce_cpu_ms_per_checkout": {"telemetry": cpu,
                                                       "disabled": off["cpu_ms_per_checkout"].get("ecommerce")},
                     "fds_cpu_ms_per_checkout": {"telemetry": on["cpu_ms_per_checkout"].get("fds"),
                                                 "disabled": off["cpu_ms_per_checkout"].get("fds")},
                     "errors": {"telemetry": on["error_rate"], "disabled": off["error_rate"]},
                     "profile": config["profile"], **_telemetry_cpu(config["profile"], cpu)}
    return {"sides": out}


def _telemetry_cpu(profile: dict[str, Any] | None, cpu_ms: float | None) -> dict[str, Any]:
    """The CPU the profile's telemetry share stands for (ms per evaluation or checkout)."""
    if not profile or cpu_ms is None:
        return {"telemetry_cpu_ms": None}
    return {"telemetry_cpu_ms": round(profile["telemetry_pct"] / 100 * cpu_ms, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the earlier commit (default %(default)s)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per FDS closed-loop run")
    parser.add_argument("--rounds", type=int, default=2, help="FDS rounds over the four (side, mode) pairs")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--checkout-duration", type=float, default=6.0, help="seconds per checkout run")
    parser.add_argument("--checkout-rounds", type=int, default=1, help="checkout ABBA rounds per side")
    parser.add_argument("--profile-seconds", type=float, default=8.0, help="py-spy per side (0: no profile)")
    parser.add_argument("--parts", type=lambda t: [part.strip() for part in t.split(",") if part.strip()],
                        default=list(PARTS), help="comma-separated subset of fds,checkout")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.parts or set(args.parts) - set(PARTS):
        parser.error(f"--parts: a comma-separated subset of {','.join(PARTS)}")
    if args.duration <= 0 or args.rounds < 1 or args.checkout_duration <= 0 or args.checkout_rounds < 1:
        parser.error("durations and rounds must be positive")
    try:
        head = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        context = ExitStack()
        with context:
            before_root, before_commit = context.enter_context(worktree(args.before))
            roots = {"before": before_root, "after": ROOT}
            workdir = Path(context.enter_context(tempfile.TemporaryDirectory(prefix="shopfds-before-after-")))
            result: dict[str, Any] = {
                "before": {"commit": before_commit, "date": git("show", "-s", "--format=%cI", before_commit)},
                "after": {"commit": head, "uncommitted_changes": dirty},
            }
            if "fds" in args.parts:
                result["fds"] = fds(args, roots, workdir / "fds")
            if "checkout" in args.parts:
                result["checkout"] = checkout(args, roots, workdir / "checkout")
    except RuntimeError as exc:
        err.print(f"[red]before/after failed:[/] {exc}")
        return 1
    result.update({"written": datetime.now(UTC).isoformat(timespec="minutes"),
                   "machine": {"python": platform.python_version(), "platform": platform.platform(),
                               "cpus": os.cpu_count()},
                   "command": " ".join(["python -m bench.before_after",
                                        *(argv if argv is not None else sys.argv[1:])])})
    # The section BENCHMARKS.md gets, as it will read there.
    Console(width=max(Console().width, 140)).print(Markdown(before_after_section(result)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
