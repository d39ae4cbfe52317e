"""Small helpers over grafanalib: the datasource and filter variables, modern panel
types with units, threshold lines, and a grid that flows panels left to right."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import attr
from grafanalib.core import (GridPos, RowPanel, Stat, Table, Target, Template, Threshold,
                             TimeSeries)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DEFAULT_DATASOURCE_UID = "prometheus"  # what deploy/ provisions
RATE = "$__rate_interval"
COLUMNS = 24  # Grafana's grid
# Every raw series on a dashboard is filtered by these variables. (Recording-rule
# series are already aggregated over instances and carry neither label.)
FILTER = 'job=~"$job",instance=~"$instance"'


def sel(*matchers: str) -> str:
    """A selector with the job/instance filter and `matchers`: {job=~..,engine="x"}."""
    return "{" + ",".join((FILTER, *(m for m in matchers if m))) + "}"


def variables(job: str) -> list[Template]:
    """Data source (the provisioned uid by default), then job (`job` by default) and
    instance."""
    return [
        Template(name="datasource", label="Data source", type="datasource", query="prometheus",
                 default=DEFAULT_DATASOURCE_UID, refresh=1),
        Template(name="job", label="Job", dataSource=DATASOURCE, type="query",
                 query="label_values(nautilus_probe_build_info, job)", default=job,
                 includeAll=True, multi=True, allValue=".+", refresh=2),
        Template(name="instance", label="Instance", dataSource=DATASOURCE, type="query",
                 query='label_values(nautilus_probe_build_info{job=~"$job"}, instance)',
                 default="$__all", includeAll=True, multi=True, allValue=".+", refresh=2),
    ]


def mapped(value: float, mappings: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The value mapping Grafana applies to `value` ({"text": ..., "color": ...}), if
    any: a "value" mapping of exactly it, or a "range" one around it (both ends
    included, a null end open)."""
    for m in mappings or []:
        options = m.get("options", {})
        if m.get("type") == "range":
            low, high = options.get("from"), options.get("to")
            if (low is None or value >= low) and (high is None or value <= high):
                return dict(options.get("result", {}))
            continue
        hit = options.get(f"{value:g}")
        if hit:
            return dict(hit)
    return {}


def target(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series",
           instant: bool = False) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE, format=fmt,
                  instant=instant)


def targets(*pairs: tuple[str, str]) -> list[Target]:
    return [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(pairs)]


def steps(limit_min: float | None, limit_max: float | None) -> list[Threshold]:
    """Green where the target is met, red where it is not."""
    limit_min = None if limit_min is None else float(limit_min)
    limit_max = None if limit_max is None else float(limit_max)
    if limit_min is not None and limit_max is not None:
        return [Threshold("red", 0, 0.0), Threshold("green", 1, limit_min),
                Threshold("red", 2, limit_max)]
    if limit_min is not None:
        return [Threshold("red", 0, 0.0), Threshold("green", 1, limit_min)]
    if limit_max is not None:
        return [Threshold("green", 0, 0.0), Threshold("red", 1, limit_max)]
    return [Threshold("green", 0, 0.0)]


Limit = tuple[float | None, float | None]
NO_LIMIT: Limit = (None, None)


def timeseries(title: str, tgts: list[Target], unit: str, size: tuple[int, int] = (12, 8),
               limit: Limit = NO_LIMIT, description: str = "", links: list[Any] | None = None,
               stack: bool = False, log: bool = False) -> TimeSeries:
    """A time series with a unit; a target from thresholds.yml is drawn as a red line."""
    lo, hi = limit
    w, h = size
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE, targets=tgts,
        gridPos=GridPos(h=h, w=w, x=0, y=0), unit=unit, thresholds=steps(lo, hi),
        thresholdsStyleMode="line" if (lo is not None or hi is not None) else "off",
        stacking={"mode": "normal", "group": "A"} if stack else {"mode": "none"},
        fillOpacity=20 if stack else 0, legendDisplayMode="list", legendPlacement="bottom",
        tooltipMode="multi", axisSoftMin=None if log else 0,
        scaleDistributionType="log" if log else "linear", scaleDistributionLog=10 if log else 2,
        extraJson={"fieldConfig": {"defaults": {"links": links or []}}} if links else None)


def stat(title: str, tgts: list[Target], unit: str, size: tuple[int, int] = (6, 4),
         limit: Limit = NO_LIMIT, description: str = "", mappings: list[Any] | None = None,
         no_value: str = "no data") -> Stat:
    """A coloured stat; `no_value` says why there is no value ("no successful
    requests"), never NaN. reduceCalc "last": an old value must not stand in."""
    w, h = size
    return Stat(title=title, description=description, dataSource=DATASOURCE, targets=tgts,
                gridPos=GridPos(h=h, w=w, x=0, y=0), format=unit, thresholds=steps(*limit),
                colorMode="background" if limit != NO_LIMIT or mappings else "none",
                reduceCalc="last", mappings=mappings or [],
                graphMode="area", noValue=no_value)


def heatmap(title: str, expr: str, unit: str, size: tuple[int, int] = (12, 8),
            description: str = "") -> Raw:
    """Grafana's current heatmap panel over pre-bucketed (le) series."""
    w, h = size
    return Raw(w, h, {
        "type": "heatmap", "title": title, "description": description,
        "datasource": DATASOURCE,
        "targets": [{"expr": expr, "legendFormat": "{{le}}", "refId": "A", "format": "heatmap",
                     "datasource": DATASOURCE}],
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"hideFrom": {
            "legend": False, "tooltip": False, "viz": False}}}, "overrides": []},
        "options": {"calculate": False, "yAxis": {"axisPlacement": "left", "unit": unit},
                    "cellValues": {"unit": "reqps"}, "color": {"mode": "scheme",
                                                               "scheme": "Oranges",
                                                               "fill": "dark-orange",
                                                               "scale": "exponential",
                                                               "exponent": 0.5, "steps": 64},
                    "rowsFrame": {"layout": "auto"}, "filterValues": {"le": 1e-9},
                    "tooltip": {"mode": "single", "yHistogram": False},
                    "legend": {"show": True}, "cellGap": 1}})


def alert_list(title: str, size: tuple[int, int] = (24, 6), description: str = "") -> Raw:
    """Firing and pending alerts, Prometheus-managed ones included."""
    w, h = size
    return Raw(w, h, {
        "type": "alertlist", "title": title, "description": description,
        "datasource": DATASOURCE, "targets": [],
        "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
        "options": {"viewMode": "list", "groupMode": "default", "groupBy": [], "maxItems": 20,
                    "sortOrder": 1, "dashboardAlerts": False, "alertName": "",
                    "alertInstanceLabelFilter": "", "datasource": "${datasource}",
                    "showInstances": True, "folder": None,
                    "stateFilter": {"firing": True, "pending": True, "noData": False,
                                    "normal": False, "error": True}}})


def table(title: str, tgts: list[Target], columns: dict[str, tuple[str, str, Limit | None]],
          size: tuple[int, int] = (24, 8), description: str = "",
          link: tuple[str, str] | None = None, no_value: str = "",
          mappings: dict[str, list[Any]] | None = None, row_order: str = "",
          rename: dict[str, str] | None = None,
          decimals: dict[str, int] | None = None, order: list[str] | None = None,
          widths: dict[str, int] | None = None) -> Table:
    """Instant queries joined on their labels into one row per label set; each value
    column {refId: (header, unit, limit)} coloured against its limit (None: not
    coloured). `link`: (column, URL) turns that column's cells into links; `no_value`
    fills empty cells; `mappings` {refId: value mappings} colour by value instead;
    `row_order` a label whose values order the rows (Grafana's sortBy transformation,
    after the merge), itself not shown; `rename` {label: header} names label
    columns; `decimals` {refId: decimals} where the unit's default does not fit;
    `order` the columns (labels, and refIds for value columns) from the left, the rest
    after them; `widths` {refId: pixels} for a value column whose text must not be cut."""
    w, h = size
    overrides = []
    for ref, (header, unit, limit) in columns.items():
        places = (decimals or {}).get(ref, 3 if unit in ("s", "percentunit") else 1)
        props: list[dict[str, Any]] = [
            {"id": "displayName", "value": header}, {"id": "unit", "value": unit},
            {"id": "decimals", "value": places}]
        if no_value:
            props.append({"id": "noValue", "value": no_value})
        if widths and ref in widths:
            props.append({"id": "custom.width", "value": widths[ref]})
        if mappings and ref in mappings:
            props += [{"id": "mappings", "value": mappings[ref]},
                      {"id": "custom.cellOptions", "value": {"type": "color-background",
                                                             "mode": "basic"}}]
        elif limit is not None:
            props += [{"id": "thresholds", "value": {"mode": "absolute", "steps": [
                          s.to_json_data() for s in steps(*limit)]}},
                      {"id": "custom.cellOptions", "value": {"type": "color-background",
                                                             "mode": "basic"}}]
        overrides.append({"matcher": {"id": "byName", "options": f"Value #{ref}"},
                          "properties": props})
    if link is not None:
        overrides.append({"matcher": {"id": "byName", "options": link[0]}, "properties": [
            {"id": "links", "value": [{"title": "Drill down", "url": link[1]}]}]})
    return Table(
        title=title, description=description, dataSource=DATASOURCE, targets=tgts,
        gridPos=GridPos(h=h, w=w, x=0, y=0), unit="none", overrides=overrides,
        transformations=[{"id": "merge", "options": {}},
                         *([{"id": "sortBy", "options": {"sort": [{"field": row_order}]}}]
                           if row_order else []),
                         {"id": "organize", "options": {
                             "excludeByName": {"Time": True, **({row_order: True} if row_order else {})},
                             **({"renameByName": rename} if rename else {}),
                             **({"indexByName": {name if name not in columns else f"Value #{name}": i
                                                 for i, name in enumerate(order)}}
                                if order else {})}}],
        extraJson={"options": {"cellHeight": "sm", "footer": {"show": False}}})


def row(title: str) -> RowPanel:
    return RowPanel(title=title, gridPos=GridPos(h=1, w=COLUMNS, x=0, y=0))


@dataclass
class Raw:
    """A panel grafanalib 0.7 cannot express (its heatmap and alert list are the
    pre-Grafana-8 panels): the JSON as Grafana 11 writes it."""

    w: int
    h: int
    data: dict[str, Any]
    id: int | None = None
    gridPos: GridPos = field(default_factory=lambda: GridPos(h=1, w=1, x=0, y=0))

    def to_json_data(self) -> dict[str, Any]:
        return {**self.data, "id": self.id, "gridPos": self.gridPos}


def _size(panel: Any) -> tuple[int, int]:
    if isinstance(panel, Raw):
        return panel.w, panel.h
    return panel.gridPos.w, panel.gridPos.h


def flow(panels: list[Any]) -> list[Any]:
    """Place panels left to right, wrapping at 24 columns; a row starts a new line.
    Each panel gets its gridPos (by keyword: grafanalib's order is h, w, x, y) and
    a stable id from its position."""
    out: list[Any] = []
    x = y = line = 0
    for index, panel in enumerate(panels, start=1):
        w, h = _size(panel)
        if not 0 < w <= COLUMNS or h <= 0:
            raise ValueError(f"panel {index} has an impossible size {w}x{h}")
        if isinstance(panel, RowPanel) or x + w > COLUMNS:
            x, y, line = 0, y + line, 0
        pos = GridPos(h=h, w=w, x=x, y=y)
        if isinstance(panel, Raw):
            panel.gridPos, panel.id = pos, index
        else:
            panel = attr.evolve(panel, gridPos=pos, id=index)
        out.append(panel)
        x, line = x + w, max(line, h)
        if isinstance(panel, RowPanel):
            x, y, line = 0, y + h, 0
    return out
