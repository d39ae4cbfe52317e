"""python -m dashboards [--thresholds thresholds.yml] [--out dashboards/generated]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder

from exporter.thresholds import Thresholds
from exporter.yamlcheck import ConfigError

from .build import DASHBOARDS


def render(t: Thresholds) -> dict[str, str]:
    out = {}
    for name, build in DASHBOARDS.items():
        data = json.loads(json.dumps(build(t).to_json_data(), cls=DashboardEncoder))
        out[f"{name}.json"] = json.dumps(data, sort_keys=True, indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    ap.add_argument("--thresholds", default="thresholds.yml")
    ap.add_argument("--out", default="dashboards/generated")
    args = ap.parse_args(argv)
    try:
        t = Thresholds.load(args.thresholds)
    except ConfigError as exc:
        print(f"dashboards: config error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render(t).items():
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
