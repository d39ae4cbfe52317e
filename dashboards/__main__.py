"""python -m dashboards [--thresholds thresholds.yml] [--out dashboards/generated]
python -m dashboards preview --out DIR [--prometheus URL --start T --end T]"""

from __future__ import annotations

import json
import sys

try:
    import matplotlib  # noqa: F401 - the previews need it
    from grafanalib._gen import DashboardEncoder
except ImportError:
    if __name__ != "__main__":
        raise
    print("python -m dashboards: needs grafanalib and matplotlib; install the extra: "
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
    if sys.argv[1:2] == ["preview"]:
        from .preview import main
        sys.exit(main(sys.argv[2:]))
    sys.exit(generate("dashboards", render, "dashboards/generated"))
