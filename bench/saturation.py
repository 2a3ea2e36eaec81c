"""FDS ``POST /v1/fds/evaluate`` at saturation: full telemetry against telemetry off, closed loop.

    python -m bench.saturation [--duration S] [--rounds R] [--connections C] [--threads T]
                               [--workers N] [--rate TPS] [--rate-duration S]
                               [--profile-seconds S] [--json FILE]

The ML service and three FDS processes run as ``shopfds up`` starts them (``python -m uvicorn
services.fds.main:app``, the embedded default: SQLite + in-process cache, each FDS with its own
data, trace store and logs), side by side on 127.0.0.1:

- ``development``: telemetry as shipped in development (100 % sampling, the local trace store,
  metrics with exemplars, span-derived engine metrics, logs);
- ``production``: ``ENVIRONMENT=production`` (10 % parent-based sampling, the rest the same);
- ``disabled``: ``OTEL_SDK_DISABLED=true``.

``wrk`` (closed loop: each of C connections sends its next request when the last one is
answered, enough to keep the service busy) posts generated transactions, each with an id never
sent before (``bench/evaluate.lua``), for S seconds per run. Each mode runs R times, the modes
in ABC order then CBA (ABBA rounds) so that drift on a shared machine favours none; a warm-up
run per mode comes first. Per run: evaluations/s, errors, wrk's latency percentiles, the CPU
milliseconds per evaluation of the FDS (all its processes with ``--workers``, from
``/proc/<pid>/stat``) and of wrk. The saturation ratio of a mode is the median of its
evaluations/s over the median of ``disabled``'s; the paired ratios (each run against the
``disabled`` run of the same round) give the spread.

Then each mode is offered ``--rate`` evaluations/s for ``--rate-duration`` seconds by
``bench.fixed_rate`` (open loop, latency counted from when a request was due, as wrk2 does), and
with ``--profile-seconds`` > 0 the ``development`` and ``disabled`` FDS are profiled with
``py-spy`` at saturation (CPU share by package and function, GIL held). Progress goes to
stderr, tables to stdout; nothing here asserts on timings. Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.checkout import summarize_profile
from services.ml.generator import generate
from shopfds import procs
from shopfds.procs import ROOT, free_port, stop, wait_http
from shopfds.stack import service_env

DEV, PROD, OFF = "development", "production", "disabled"
MODES = (DEV, PROD, OFF)
MODE_ENV = {DEV: {}, PROD: {"ENVIRONMENT": "production", "SHOPFDS_JWT_SECRET": "bench-" + "s" * 40},
            OFF: {"OTEL_SDK_DISABLED": "true"}}
RATIO_TARGET, TPS_TARGET, P95_TARGET_MS, CPU_TARGET_MS = 0.90, 1000.0, 10.0, 1.0
LUA = ROOT / "bench" / "evaluate.lua"
err = Console(stderr=True)


# -- processes ----------------------------------------------------------------------------------
@contextmanager
def service(name: str, workdir: Path, urls: dict[str, str], env: dict[str, str], workers: int = 1) -> Iterator[
        tuple[str, int]]:
    """``python -m uvicorn services.<name>.main:app`` as ``shopfds up`` runs it: (url, pid)."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", f"services.{name}.main:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]
    if workers > 1:
        args += ["--workers", str(workers)]
    full_env = {**os.environ, "PYTHONPATH": str(procs.SERVICE_ROOT), **service_env(workdir, urls, env)}
    log = workdir / "out" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=procs.SERVICE_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health", timeout=90, proc=proc)
            yield url, proc.pid
        finally:
            stop(proc)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn ``--workers`` forks its workers)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(child) for child in task.read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants so far."""
    total = 0.0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- load ---------------------------------------------------------------------------------------
def write_bodies(path: Path, count: int = 4000) -> list[dict[str, Any]]:
    """Generated transactions (5 % fraud) without their ids: one JSON a line for the Lua script."""
    bodies = [{k: v for k, v in t.transaction().items() if k != "transaction_id"}
              for t in generate(count, 0.05, seed=13)]
    path.write_text("".join(json.dumps(b, separators=(",", ":"))[1:] + "\n" for b in bodies))
    return bodies


def closed_loop(url: str, pid: int, bodies: Path, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """One wrk run: evaluations/s, errors, latency, CPU ms per evaluation (FDS and wrk)."""
    seconds = max(1, round(duration))  # wrk takes whole seconds
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s",
           "--timeout", "5s", "-s", str(LUA), f"{url}/v1/fds/evaluate", "--", str(bodies), uuid.uuid4().hex[:12]]
    fds_before, wrk_before = cpu_seconds(pid), children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 60)
    fds_cpu, wrk_cpu = cpu_seconds(pid) - fds_before, children_cpu() - wrk_before
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr[-2000:]}")
    raw = json.loads(lines[-1])
    seconds = raw["duration_us"] / 1e6
    failed = sum(raw["errors"].values())
    done = max(1, raw["requests"] - raw["errors"]["status"])
    return {"evaluations_per_s": round((raw["requests"] - raw["errors"]["status"]) / seconds, 1),
            "requests": raw["requests"], "errors": raw["errors"],
            "error_rate": round(failed / max(1, raw["requests"]), 5),
            "latency_ms": {q: round(v / 1000, 3) for q, v in raw["latency_us"].items()},
            "cpu_ms_per_evaluation": {"fds": round(1000 * fds_cpu / done, 3), "wrk": round(1000 * wrk_cpu / done, 3)},
            "fds_cores": round(fds_cpu / seconds, 2)}


def fixed_rate(url: str, pid: int, bodies: list[dict[str, Any]], rate: float, duration: float,
               workdir: Path) -> dict[str, Any]:
    config, result = workdir / f"rate-{uuid.uuid4().hex[:8]}.json", workdir / f"rate-{uuid.uuid4().hex[:8]}.out"
    config.write_text(json.dumps({"url": url, "rate": rate, "duration": duration, "bodies": bodies,
                                  "prefix": uuid.uuid4().hex[:12]}))
    before = cpu_seconds(pid)
    subprocess.run([sys.executable, "-m", "bench.fixed_rate", str(config), str(result)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=duration + 120)
    figures: dict[str, Any] = json.loads(result.read_text())
    done = max(1, figures["latency_ms"]["n"])
    figures["cpu_ms_per_evaluation"] = {"fds": round(1000 * (cpu_seconds(pid) - before) / done, 3)}
    return figures


def profile(url: str, pid: int, bodies: Path, args: argparse.Namespace, workdir: Path, mode: str) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = workdir / f"profile-{mode}.txt"
    cmd = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--gil", "--full-filenames",
           "--duration", str(int(args.profile_seconds)), "--output", str(out), "--nonblocking"]
    if args.workers > 1:
        cmd.append("--subprocesses")
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as spy_proc:
        time.sleep(0.5)
        closed_loop(url, pid, bodies, args, args.profile_seconds)
        spy_proc.wait(timeout=args.profile_seconds + 30)
    return summarize_profile(out.read_text(), top=15) if out.exists() else {}


# -- the run ------------------------------------------------------------------------------------
def order(rounds: int, modes: Sequence[str] = MODES) -> Iterator[tuple[int, str]]:
    for r in range(rounds):
        yield from ((r, m) for m in (modes if r % 2 == 0 else tuple(reversed(modes))))


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    bodies_file = workdir / "bodies.txt"
    bodies = write_bodies(bodies_file)
    with ExitStack() as stack:
        ml_url, _ = stack.enter_context(service("ml", workdir / "ml", {}, {}))
        fds: dict[str, tuple[str, int]] = {
            mode: stack.enter_context(service("fds", workdir / mode, {"ml": ml_url}, MODE_ENV[mode], args.workers))
            for mode in args.modes}
        for mode, (url, pid) in fds.items():
            err.print(f"warm-up {mode} ({args.warmup:g}s)")
            closed_loop(url, pid, bodies_file, args, args.warmup)
        runs: list[dict[str, Any]] = []
        for r, mode in order(args.rounds, args.modes):
            run = {"round": r, "mode": mode, **closed_loop(*fds[mode], bodies_file, args, args.duration)}
            err.print(f"round {r + 1}/{args.rounds} {mode}: {run['evaluations_per_s']}/s, "
                      f"FDS {run['cpu_ms_per_evaluation']['fds']} ms CPU per evaluation")
            runs.append(run)
        rates = {}
        for mode in args.modes if args.rate_duration > 0 else ():
            err.print(f"{mode}: {args.rate:g}/s offered for {args.rate_duration:g}s")
            rates[mode] = fixed_rate(*fds[mode], bodies, args.rate, args.rate_duration, workdir)
        profiles = {}
        for mode in [m for m in (DEV, OFF) if m in args.modes] if args.profile_seconds > 0 else ():
            err.print(f"profiling {mode} at saturation ({args.profile_seconds:g}s, py-spy)")
            profiles[mode] = profile(*fds[mode], bodies_file, args, workdir, mode)
    return {"runs": runs, "modes": summarize(runs, args.modes), "fixed_rate": rates, "profile": profiles}


def summarize(runs: list[dict[str, Any]], modes: Sequence[str] = MODES) -> dict[str, Any]:
    out: dict[str, Any] = {}
    off_by_round = {r["round"]: r["evaluations_per_s"] for r in runs if r["mode"] == OFF}
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        tps = [r["evaluations_per_s"] for r in mine]
        out[mode] = {"evaluations_per_s": statistics.median(tps), "min": min(tps), "max": max(tps),
                     "cpu_ms_per_evaluation": {k: statistics.median(r["cpu_ms_per_evaluation"][k] for r in mine)
                                               for k in ("fds", "wrk")},
                     "latency_p95_ms": statistics.median(r["latency_ms"]["p95"] for r in mine),
                     "errors": sum(sum(r["errors"].values()) for r in mine)}
        if mode != OFF:
            paired = [r["evaluations_per_s"] / off_by_round[r["round"]] for r in mine]
            out[mode]["ratio"] = round(out[mode]["evaluations_per_s"] / statistics.median(off_by_round.values()), 3)
            out[mode]["paired_ratios"] = [round(p, 3) for p in paired]
    return out


def tables(result: dict[str, Any]) -> list[Table]:
    sat = Table(title=f"FDS evaluate at saturation (wrk -t{result['threads']} -c{result['connections']}, "
                      f"{result['duration_s']:g}s x {result['rounds']} rounds, {result['workers']} worker(s))")
    for column in ("mode", "evaluations/s (median)", "min-max", "ratio on/off", "paired ratios",
                   "FDS CPU ms/eval", "wrk CPU ms/eval", "P95 ms", "errors"):
        sat.add_column(column, justify="left" if column == "mode" else "right")
    for mode, m in result["modes"].items():
        sat.add_row(mode, f"{m['evaluations_per_s']:.0f}", f"{m['min']:.0f}-{m['max']:.0f}",
                    f"{m['ratio']:.3f}" if "ratio" in m else "-",
                    ", ".join(f"{p:.2f}" for p in m.get("paired_ratios", [])) or "-",
                    f"{m['cpu_ms_per_evaluation']['fds']:.3f}", f"{m['cpu_ms_per_evaluation']['wrk']:.3f}",
                    f"{m['latency_p95_ms']:.1f}", str(m["errors"]))
    rate = Table(title="FDS evaluate at a fixed offered rate (open loop, latency from when each was due)")
    for column in ("mode", "offered/s", "achieved/s", "P50 ms", "P95 ms", "P99 ms", "FDS CPU ms/eval", "errors"):
        rate.add_column(column, justify="left" if column == "mode" else "right")
    for mode, f in result["fixed_rate"].items():
        rate.add_row(mode, f"{f['offered_tps']:g}", f"{f['achieved_tps']:g}",
                     *(f"{f['latency_ms'][q]:.2f}" for q in ("p50", "p95", "p99")),
                     f"{f['cpu_ms_per_evaluation']['fds']:.3f}", str(sum(f["errors"].values())))
    return [sat, rate]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.saturation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per closed-loop run")
    parser.add_argument("--rounds", type=int, default=4, help="runs per mode (ABC, CBA, ...)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per mode")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn --workers of each FDS")
    parser.add_argument("--rate", type=float, default=500.0, help="offered evaluations/s for the P95")
    parser.add_argument("--rate-duration", type=float, default=10.0, help="seconds at --rate per mode (0: skip)")
    parser.add_argument("--profile-seconds", type=float, default=8.0, help="py-spy at saturation (0: skip)")
    parser.add_argument("--modes", type=lambda text: [m for m in MODES if m in text.split(",")], default=list(MODES),
                        help=f"comma-separated subset of {','.join(MODES)} ({OFF} is always run)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if OFF not in args.modes:
        args.modes.append(OFF)
    if min(args.duration, args.rounds, args.connections, args.threads, args.workers, args.rate) <= 0:
        parser.error("durations, counts and the rate must be positive")
    if shutil.which("wrk") is None:
        parser.error("wrk not found: apt-get install -y wrk")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shopfds-saturation-") as tmp:
        result = bench(args, Path(tmp))
    result.update(duration_s=args.duration, rounds=args.rounds, connections=args.connections,
                  threads=args.threads, workers=args.workers, rate=args.rate,
                  targets={"ratio": RATIO_TARGET, "evaluations_per_s": TPS_TARGET, "p95_ms": P95_TARGET_MS,
                           "cpu_ms_per_evaluation": CPU_TARGET_MS},
                  command=" ".join(["python -m bench.saturation", *(argv if argv is not None else sys.argv[1:])]),
                  machine={"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count()})
    console = Console(highlight=False)
    console.width = max(console.width, 140)
    for table in tables(result):
        console.print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
