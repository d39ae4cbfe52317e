"""A picture of each dashboard without Grafana: `python -m dashboards preview`.

Draws the 24-column grid with every panel's title, type and unit in its place and,
given a Prometheus URL, each panel's queries over the window: time series as lines
(threshold lines dashed), stats as their last value coloured against their
thresholds, tables as text, heatmaps as bucket rates, the alert list from
Prometheus' alerts. A preview, not a Grafana clone.
"""

from __future__ import annotations

from typing import Any, cast
import argparse
import json
import math
import re
import sys
import time
from datetime import datetime, UTC
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

DATES: Any = matplotlib.dates  # its locators and formatters are unannotated
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from alerts.query import PrometheusAPI, QueryError

from .panels import COLUMNS, mapped

COL_IN = 0.75  # inches per grid column (Grafana: ~75 px on a 1,800 px screen)
ROW_IN = 0.32  # inches per grid row (Grafana: 30 px plus margin)
COLOURS = {"red": "#d44a3a", "green": "#299c46", "orange": "#eb7b18", "blue": "#1f78c1"}
SI = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


# Grafana's seconds unit: the largest of these below the value, in it.
TIME_STEPS = ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "min"), (1, "s"),
              (1e-3, "ms"), (1e-6, "µs"))


def fmt(value: float, unit: str, decimals: int | None = None) -> str:
    """A value in a panel's unit, as a person reads it; with `decimals` (a table
    column's), as Grafana writes it with that many."""
    if value is None or not math.isfinite(value):
        return "no data"
    if decimals is not None:
        return _fixed(value, unit, decimals)
    if unit == "s":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.0f} µs"
        return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit == "percentunit":
        pct = value * 100
        return f"{pct:,.0f} %" if abs(pct) >= 1000 else f"{pct:.3g} %"
    if unit == "bytes":
        return f"{value / 2**20:.3g} MiB"
    if unit.startswith("suffix:"):
        return f"{value:.3g}{unit[7:]}"
    suffix = {"ops": " ops/s", "reqps": " req/s"}.get(unit, "")
    for size, prefix in SI:
        if abs(value) >= size:
            return f"{value / size:.3g}{prefix}{suffix}"
    return f"{value:.3g}{suffix}"


def _fixed(value: float, unit: str, decimals: int) -> str:
    if unit == "s":
        size, name = next(((size, name) for size, name in TIME_STEPS if abs(value) >= size),
                          TIME_STEPS[-1])
        return f"{value / size:.{decimals}f} {name}"
    if unit == "percentunit":
        return f"{value * 100:.{decimals}f}%"
    if unit == "locale":
        return f"{value:,.{decimals}f}"
    return f"{value:.{decimals}f}" + (unit[7:] if unit.startswith("suffix:") else "")


UNIT_NAMES = {"s": "seconds", "percentunit": "ratio (%)", "ops": "ops/s", "reqps": "req/s",
              "bytes": "bytes", "none": "count"}


def unit_name(unit: str) -> str:
    return "×" if unit.startswith("suffix:") else UNIT_NAMES.get(unit, unit)


class Prometheus:
    def __init__(self, url: str, start: float, end: float, substitutions: dict[str, str]):
        self.api, self.start, self.end = PrometheusAPI(url), start, end
        self.subs = substitutions
        self.step = max((end - start) / 240, 1.0)

    def expr(self, text: str) -> str:
        for name in sorted(self.subs, key=len, reverse=True):
            text = text.replace(name, self.subs[name])
        return text

    def range(self, expr: str) -> list[dict[str, Any]]:
        return self.api.range(self.expr(expr), self.start, self.end, self.step)

    def instant(self, expr: str) -> list[dict[str, Any]]:
        return self.api.instant(self.expr(expr), self.end)

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts active at the window's end (ALERTS keeps their history)."""
        return self.instant('ALERTS{alertstate=~"firing|pending"}')


def legend(fmt_text: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: {{label}} is the label's value, empty when absent."""
    out = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt_text).strip()
    return out or ",".join(labels.values())


def _defaults(panel: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = panel.get("fieldConfig", {}).get("defaults", {})
    return defaults


def _steps(panel: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = _defaults(panel).get("thresholds", {}).get("steps", [])
    return steps


def _threshold_values(panel: dict[str, Any]) -> list[tuple[float, str]]:
    return [(s["value"], s["color"]) for s in _steps(panel) if s.get("value") is not None]


def _step_colour(value: float, steps: list[dict[str, Any]]) -> str:
    """The colour of the last threshold step `value` reaches (the base step has none)."""
    colour = "green"
    for s in steps:
        if s.get("value") is None or value >= s["value"]:
            colour = s["color"]
    return COLOURS.get(colour, colour)


NEUTRAL = "#6e7079"  # Grafana's "text" colour: a value that is not judged


def _no_data(ax: Axes, text: str = "no data", y: float = 0.5, size: float | None = None) -> None:
    ax.set_axis_off()
    ax.text(0.5, y, text, ha="center", va="center", transform=ax.transAxes, color="grey",
            fontsize=size)


def draw_timeseries(ax: Axes, panel: dict[str, Any], prom: Prometheus, unit: str) -> None:
    custom = _defaults(panel).get("custom", {})
    log = custom.get("scaleDistribution", {}).get("type") == "log"
    top = 0.0
    for target in panel["targets"]:
        for series in prom.range(target["expr"])[:8]:
            points = [(float(t), float(v)) for t, v in series["values"]
                      if math.isfinite(float(v))]
            if not points:
                continue  # NaN throughout (e.g. a quantile of no events)
            # A gap in the data stays a gap (Grafana does not join across it).
            step = min((b[0] - a[0] for a, b in zip(points, points[1:], strict=False)),
                       default=0.0)
            xs: list[datetime] = []
            ys: list[float] = []
            for i, (t, v) in enumerate(points):
                if i and step and t - points[i - 1][0] > 2.5 * step:
                    xs.append(datetime.fromtimestamp(t - step, UTC))
                    ys.append(math.nan)
                xs.append(datetime.fromtimestamp(t, UTC))
                ys.append(v)
            ax.plot(cast(Any, xs), ys, lw=1.2, label=legend(target.get("legendFormat", ""), series["metric"]))
            top = max(top, *(y for y in ys if math.isfinite(y)))
    if not ax.lines:
        _no_data(ax, "no data in the window")
        return
    if custom.get("thresholdsStyle", {}).get("mode") == "line":
        for value, colour in _threshold_values(panel):
            if value > 0:
                ax.axhline(value, color=COLOURS.get(colour, colour), ls="--", lw=1)
                top = max(top, value)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(top=top * 3)
    else:
        ax.set_ylim(0, top * 1.15 or 1)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v, unit)))
    minutes = max((prom.end - prom.start) / 60, 1)
    step = next((m for m in (1, 2, 5, 10, 15, 30, 60, 120, 360) if minutes / m <= 8), 720)
    if step < 60:
        ax.xaxis.set_major_locator(DATES.MinuteLocator(byminute=range(0, 60, step)))
    else:
        ax.xaxis.set_major_locator(DATES.HourLocator(interval=step // 60))
    ax.xaxis.set_major_formatter(DATES.DateFormatter("%H:%M", tz=UTC))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.6)


def draw_stat(ax: Axes, panel: dict[str, Any], prom: Prometheus, unit: str) -> None:
    ax.set_axis_off()
    values = []
    for target in panel["targets"]:
        for series in prom.instant(target["expr"]):
            values.append((legend(target.get("legendFormat", ""), series["metric"]),
                           float(series["value"][1])))
    if not values:
        _no_data(ax, _defaults(panel).get("noValue") or "no data", y=0.45, size=11)
        return
    width = 1 / len(values)
    judged = panel.get("options", {}).get("colorMode") != "none"
    for i, (label, value) in enumerate(values):
        hit = mapped(value, _defaults(panel).get("mappings", []))
        text = hit.get("text") or fmt(value, unit)
        colour = COLOURS.get(hit["color"], hit["color"]) if hit.get("color") else \
            _step_colour(value, _steps(panel)) if judged else NEUTRAL
        colour = NEUTRAL if colour == "text" else colour
        ax.add_patch(Rectangle((i * width + 0.01, 0.02), width - 0.02, 0.8,
                                   color=colour, transform=ax.transAxes))
        ax.text(i * width + width / 2, 0.42, text, ha="center", va="center", color="white",
                fontsize=13 if len(values) == 1 else 10, weight="bold", transform=ax.transAxes)
        if label and len(values) > 1:
            ax.text(i * width + width / 2, 0.12, label, ha="center", va="center", color="white",
                    fontsize=7, transform=ax.transAxes)


def _organize(panel: dict[str, Any]) -> dict[str, Any]:
    """The panel's "organize" transformation options (exclude, order, rename)."""
    return next((t["options"] for t in panel.get("transformations", [])
                 if t["id"] == "organize"), {})


def draw_table(ax: Axes, panel: dict[str, Any], prom: Prometheus) -> None:
    ax.set_axis_off()
    columns = {o["matcher"]["options"].split("#")[-1]: {p["id"]: p["value"] for p in o["properties"]}
               for o in panel["fieldConfig"]["overrides"] if "#" in o["matcher"]["options"]}
    answers = [(target["refId"], series) for target in panel["targets"]
               for series in prom.instant(target["expr"])]
    # Grafana's merge: one row per label set, a column per label and per query.
    keys = sorted({k for _, series in answers for k in series["metric"] if k != "__name__"})
    rows: dict[tuple[str, ...], dict[str, float]] = {}
    for ref, series in answers:
        rows.setdefault(tuple(series["metric"].get(k, "") for k in keys), {})[ref] = \
            float(series["value"][1])
    if not rows:
        _no_data(ax)
        return
    refs = [t["refId"] for t in panel["targets"]]
    # Then organize: columns left out, reordered, renamed.
    organize = _organize(panel)
    fields = [k for k in keys if not organize.get("excludeByName", {}).get(k)]
    fields += [f"Value #{r}" for r in refs]
    index = organize.get("indexByName", {})
    fields.sort(key=lambda f: index.get(f, len(index)))
    rename = organize.get("renameByName", {})
    header = [columns.get(f[7:], {}).get("displayName", f[7:]) if f.startswith("Value #")
              else rename.get(f, f) for f in fields]
    cells, colours = [], []
    # What fits the panel; Grafana scrolls the rest.
    fits = max(2 * panel["gridPos"]["h"] - 5, 1)
    shown = sorted(rows.items())
    # Grafana's sortBy transformation (after the merge: on any label, shown or not),
    # then the table's own sort on a shown column, which wins: stable sorts, the key
    # that decides first applied last.
    sorts = [s for step in panel.get("transformations", []) if step["id"] == "sortBy"
             for s in reversed(step["options"].get("sort", []))]
    sorts += [{"field": s.get("displayName"), "desc": s.get("desc")}
              for s in reversed(panel.get("options", {}).get("sortBy") or [])]
    for sort in sorts:
        if sort.get("field") in keys:
            at = keys.index(sort["field"])
            shown.sort(key=lambda kv: str(kv[0][at]), reverse=bool(sort.get("desc")))
    hidden = len(shown) - fits if len(shown) > fits else 0
    if hidden:
        shown = shown[:fits - 1]
    # Each column's share of the panel: a fixed width (custom.width, in Grafana's
    # pixels, ~75 a grid column) as given, the rest shared; a cell's text cut to its
    # column, as Grafana cuts it (with an ellipsis).
    panel_px = panel["gridPos"]["w"] * 75
    fixed = {f: columns.get(f[7:], {}).get("custom.width", 0) / panel_px for f in fields}
    free = max(1 - sum(fixed.values()), 0.1) / max(sum(1 for v in fixed.values() if not v), 1)
    shares = [fixed[f] or free for f in fields]
    chars = panel["gridPos"]["w"] * COL_IN * 72 / 4.2  # 7-point text across the panel

    def cut(text: str, share: float) -> str:
        width = max(int(chars * share), 4)
        return text if len(text) <= width else text[:width - 1] + "…"
    for key, values in shown:
        row, row_colours = [], []
        for f in fields:
            share = shares[fields.index(f)]
            if not f.startswith("Value #"):
                row.append(cut(key[keys.index(f)], share))
                row_colours.append("white")
                continue
            props = columns.get(f[7:], {})
            value = values.get(f[7:], float("nan"))
            hit = mapped(value, props.get("mappings", [])) if math.isfinite(value) else {}
            if not math.isfinite(value):
                row.append(props.get("noValue", ""))
            else:
                row.append(cut(hit.get("text") or fmt(value, props.get("unit", "none"),
                                                      props.get("decimals")), share))
            steps = props.get("thresholds", {}).get("steps", [])
            if hit.get("color") and hit["color"] != "text":
                row_colours.append(COLOURS.get(hit["color"], hit["color"]))
            elif math.isfinite(value) and len(steps) > 1 and "custom.cellOptions" in props:
                row_colours.append(_step_colour(value, steps))
            else:
                row_colours.append("white")
        cells.append(row)
        colours.append(row_colours)
    if hidden:
        cells.append([f"… {hidden + 1} more rows (scroll)"] + [""] * (len(header) - 1))
        colours.append(["white"] * len(header))
    table = ax.table(cellText=cells, colLabels=[cut(h, w) for h, w in zip(header, shares, strict=True)],
                     cellColours=colours, colWidths=shares, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.1)


def draw_heatmap(ax: Axes, panel: dict[str, Any], prom: Prometheus, unit: str) -> None:
    series = prom.range(panel["targets"][0]["expr"])
    by_le = sorted((float(s["metric"]["le"]), [float(v) for _, v in s["values"]])
                    for s in series if s["metric"].get("le") not in (None, "+Inf"))
    if not by_le:
        _no_data(ax)
        return
    rows = [[max(b - a, 0.0) for a, b in zip(prev[1], cur[1], strict=True)]
            for prev, cur in zip([(0.0, [0.0] * len(by_le[0][1]))] + by_le[:-1], by_le, strict=True)]
    used = [i for i, r in enumerate(rows) if any(v > 0 for v in r)]
    if not used:
        _no_data(ax)
        return
    lo, hi = max(used[0] - 1, 0), min(used[-1] + 2, len(rows))
    ax.imshow(rows[lo:hi], aspect="auto", origin="lower", cmap="Oranges", interpolation="nearest")
    ticks = list(range(0, hi - lo, max((hi - lo) // 6, 1)))
    ax.set_yticks(ticks, [fmt(by_le[lo + i][0], unit) for i in ticks], fontsize=7)
    ax.set_xticks([])


def draw_alerts(ax: Axes, prom: Prometheus) -> None:
    ax.set_axis_off()
    active = prom.alerts()
    if not active:
        ax.text(0.02, 0.85, "No firing or pending alerts.", transform=ax.transAxes, fontsize=9)
        return
    for i, a in enumerate(sorted(active, key=lambda a: (a["metric"]["alertstate"],
                                                        a["metric"]["alertname"]))[:12]):
        m = a["metric"]
        colour = COLOURS["red"] if m["alertstate"] == "firing" else COLOURS["orange"]
        where = " ".join(v for k, v in m.items() if k in ("engine", "op", "instance"))
        ax.text(0.02, 0.9 - i * 0.075, f"{m['alertstate'].upper():8} {m['alertname']} "
                f"[{m.get('severity', '')}] {where}", color=colour, transform=ax.transAxes,
                fontsize=7, family="monospace")


def render(dashboard: dict[str, Any], prom: Prometheus | None) -> Figure:
    items = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in items)
    width, height = COLUMNS * COL_IN, rows * ROW_IN + 0.8
    fig = plt.figure(figsize=(width, height), dpi=80)
    window = ""
    if prom is not None:
        fmt_t = "%Y-%m-%d %H:%M UTC"
        window = (f"  ·  {datetime.fromtimestamp(prom.start, UTC).strftime(fmt_t)} – "
                  f"{datetime.fromtimestamp(prom.end, UTC).strftime('%H:%M UTC')}")
    fig.text(0.005, 1 - 0.3 / height, dashboard["title"] + window, fontsize=14, weight="bold",
             va="center")
    for p in items:
        g = p["gridPos"]
        left, w = g["x"] / COLUMNS, g["w"] / COLUMNS
        top = 1 - (0.6 + g["y"] * ROW_IN) / height
        h = g["h"] * ROW_IN / height
        if p["type"] == "row":
            fig.text(left + 0.003, top - h / 2, p["title"], fontsize=11, weight="bold",
                     va="center", color="#333")
            fig.add_artist(Line2D([0.003, 0.997], [top - h, top - h], color="#bbb", lw=0.8))
            continue
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        frame = fig.add_axes((left + 0.002, top - h + 0.002, w - 0.004, h - 0.004))
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color("#ccc")
        frame.text(0.01, 0.97, p["title"], transform=frame.transAxes, fontsize=9, weight="bold",
                   va="top")
        kind = p["type"] if p["type"] in ("alertlist", "table") else f"{p['type']} · {unit_name(unit)}"
        frame.text(0.99, 0.97, kind, transform=frame.transAxes,
                   fontsize=7, color="grey", va="top", ha="right")
        if prom is None:
            continue
        # Margins in inches: room for the title, and for axis labels on plots.
        plot = p["type"] in ("timeseries", "heatmap")
        ml, mb, mt, mr = (0.8, 0.3, 0.35, 0.1) if plot else (0.1, 0.08, 0.35, 0.1)
        inner = fig.add_axes((left + ml / width, top - h + mb / height,
                              w - (ml + mr) / width, h - (mb + mt) / height))
        try:
            if p["type"] == "timeseries":
                draw_timeseries(inner, p, prom, unit)
            elif p["type"] == "stat":
                draw_stat(inner, p, prom, unit)
            elif p["type"] == "table":
                draw_table(inner, p, prom)
            elif p["type"] == "heatmap":
                draw_heatmap(inner, p, prom, unit)
            elif p["type"] == "alertlist":
                draw_alerts(inner, prom)
        except QueryError as exc:
            inner.set_axis_off()
            inner.text(0.5, 0.5, f"query failed: {exc}"[:120], ha="center", va="center",
                       transform=inner.transAxes, color=COLOURS["red"], fontsize=7, wrap=True)
    return fig


def parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"python -m dashboards preview: cannot read the time {text!r} "
                         "(unix seconds or ISO 8601)") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dashboards preview",
                                 description="Render each generated dashboard to a PNG.")
    ap.add_argument("--dashboards", default="dashboards/generated",
                    help="directory of dashboard JSON (default: %(default)s)")
    ap.add_argument("--out", required=True, help="directory for <name>.png")
    ap.add_argument("--prometheus", help="draw the queries' data from this Prometheus URL")
    ap.add_argument("--start", help="window start (unix s or ISO 8601; default: end - 30m)")
    ap.add_argument("--end", help="window end (default: now)")
    ap.add_argument("--rate-interval", default="1m", help="value of $__rate_interval")
    ap.add_argument("--engine", default="risk", help="value of $engine")
    args = ap.parse_args(argv)
    end = parse_time(args.end) if args.end else time.time()
    start = parse_time(args.start) if args.start else end - 1800
    if start >= end:
        print("python -m dashboards preview: --start must be before --end", file=sys.stderr)
        return 2
    prom = None
    if args.prometheus:
        prom = Prometheus(args.prometheus, start, end, {
            "$__rate_interval": args.rate_interval, "$engine": args.engine,
            '"$job"': '".+"', '"$instance"': '".+"'})
        try:
            prom.instant("vector(1)")
        except QueryError as exc:
            print(f"python -m dashboards preview: Prometheus does not answer: {exc}",
                  file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(Path(args.dashboards).glob("*.json"))
    if not paths:
        print(f"python -m dashboards preview: no dashboards in {args.dashboards}", file=sys.stderr)
        return 2
    for path in paths:
        dashboard = json.loads(path.read_text())
        dashboard["title"] = dashboard["title"].replace("$engine", args.engine)
        for p in dashboard["panels"]:
            p["title"] = p["title"].replace("$engine", args.engine)
        fig = render(dashboard, prom)
        fig.savefig(out / f"{path.stem}.png")
        plt.close(fig)
        print(out / f"{path.stem}.png")
    return 0
