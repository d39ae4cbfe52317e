"""python -m dashboards [--thresholds thresholds.yml] [--out dashboards/generated]"""

from __future__ import annotations

import json
import sys

try:
    from grafanalib._gen import DashboardEncoder
except ImportError:
    if __name__ != "__main__":
        raise
    print("python -m dashboards: needs grafanalib; install the extra: "
          "pip install 'nautilus-probe[mixin]'", file=sys.stderr)
    sys.exit(2)

from alerts.thresholds import Thresholds, generate

from .build import DASHBOARDS
from .clean import clean


def render(t: Thresholds) -> dict[str, str]:
    out = {}
    for name, build in DASHBOARDS.items():
        data = clean(json.loads(json.dumps(build(t).to_json_data(), cls=DashboardEncoder)))
        out[f"{name}.json"] = json.dumps(data, sort_keys=True, indent=2) + "\n"
    return out


if __name__ == "__main__":
    sys.exit(generate("dashboards", render, "dashboards/generated"))
