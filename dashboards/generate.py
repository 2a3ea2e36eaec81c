"""Write (or check) the dashboards' JSON.

    python -m dashboards.generate           # writes dashboards/<uid>.json
    python -m dashboards.generate --check   # exit 1 if a committed file differs from the code
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import ecommerce_overview, fds_performance, telemetry_pipeline

DIR = Path(__file__).resolve().parent
BUILDERS: dict[str, Callable[[], Dashboard]] = {
    fds_performance.UID: fds_performance.build,
    ecommerce_overview.UID: ecommerce_overview.build,
    telemetry_pipeline.UID: telemetry_pipeline.build,
}


def render(uid: str) -> str:
    """The dashboard as provisioned JSON: stable key order, so diffs are reviewable."""
    return json.dumps(BUILDERS[uid]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def path_of(uid: str) -> Path:
    return DIR / f"{uid}.json"


def stale() -> list[str]:
    return [uid for uid in BUILDERS if not path_of(uid).exists() or path_of(uid).read_text() != render(uid)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is out of date")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for uid in outdated:
            print(f"{path_of(uid)} is out of date: run python -m dashboards.generate", file=sys.stderr)
        return 1 if outdated else 0
    for uid in BUILDERS:
        path_of(uid).write_text(render(uid))
        print(f"wrote {path_of(uid)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
