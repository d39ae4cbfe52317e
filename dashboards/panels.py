"""Small helpers over grafanalib: one datasource, modern panel types, threshold lines."""

from __future__ import annotations

from grafanalib.core import (GridPos, Heatmap, Stat, Target, Threshold, TimeSeries)

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioned with this uid
RATE = "$__rate_interval"


def target(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE, format=fmt)


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


def timeseries(title: str, tgts: list[Target], pos: tuple[int, int, int, int], unit: str = "",
               limit: tuple[float | None, float | None] = (None, None),
               description: str = "") -> TimeSeries:
    lo, hi = limit
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE, targets=tgts,
        gridPos=GridPos(*pos), unit=unit, thresholds=steps(lo, hi),
        thresholdsStyleMode="line" if (lo is not None or hi is not None) else "off")


def stat(title: str, tgts: list[Target], pos: tuple[int, int, int, int], unit: str = "",
         limit: tuple[float | None, float | None] = (None, None), description: str = "",
         mappings: list | None = None) -> Stat:
    return Stat(title=title, description=description, dataSource=DATASOURCE, targets=tgts,
                gridPos=GridPos(*pos), format=unit, thresholds=steps(*limit),
                colorMode="background", reduceCalc="lastNotNull", mappings=mappings or [])


def heatmap(title: str, expr: str, pos: tuple[int, int, int, int]) -> Heatmap:
    return Heatmap(title=title, dataSource=DATASOURCE,
                   targets=[target(expr, "{{le}}", fmt="heatmap")], gridPos=GridPos(*pos),
                   dataFormat="tsbuckets", hideZeroBuckets=True)
