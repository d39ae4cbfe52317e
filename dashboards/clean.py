"""grafanalib 0.7's JSON -> what Grafana 11 itself writes.

grafanalib still emits fields of Grafana 4-7 (rows, spans, graph-panel threshold
keys, query `step`/`intervalFactor`, `"null"` as a string). Grafana migrates them on
load, but a provisioned dashboard should need no migration, and Grafana's published
dashboard types (checked in tests/test_dashboards.py) must accept every key.
"""

from __future__ import annotations

from typing import Any

DASHBOARD_DROP = ("__inputs", "rows", "hideControls", "sharedCrosshair", "style", "gnetId")
PANEL_DROP = ("height", "span", "minSpan", "error", "editable", "maxDataPoints", "cacheTimeout",
              "hideTimeOverride", "color", "columns", "fontSize", "mappings")
TARGET_KEEP = ("datasource", "expr", "legendFormat", "refId", "format", "instant", "hide")
VARIABLE_DROP = ("auto", "auto_count", "auto_min", "tags", "tagsQuery", "tagValuesQuery",
                 "useTags")


def _no_nulls(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _steps(thresholds: dict[str, Any]) -> dict[str, Any]:
    return {"mode": thresholds.get("mode", "absolute"),
            "steps": [{"color": s["color"], "value": None if s["value"] == "null" else s["value"]}
                      for s in thresholds.get("steps", [])]}


def _field_config(fc: dict[str, Any]) -> dict[str, Any]:
    defaults = _no_nulls(fc.get("defaults", {}))
    if "thresholds" in defaults:
        defaults["thresholds"] = _steps(defaults["thresholds"])
    if "custom" in defaults:
        defaults["custom"] = _no_nulls(defaults["custom"])
    overrides = []
    for o in fc.get("overrides", []):
        props = [{"id": p["id"], "value": _steps(p["value"])} if p["id"] == "thresholds" else p
                 for p in o["properties"]]
        overrides.append({**o, "properties": props})
    return {"defaults": defaults, "overrides": overrides}


def _panel(p: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in _no_nulls(p).items() if k not in PANEL_DROP}
    if out.get("type") == "row":
        return {k: out[k] for k in ("collapsed", "gridPos", "id", "panels", "title", "type")
                if k in out}
    if "fieldConfig" in out:
        out["fieldConfig"] = _field_config(out["fieldConfig"])
    out["targets"] = [{**{k: t[k] for k in TARGET_KEEP if k in t},
                       "range": not t.get("instant", False)} for t in out.get("targets", [])]
    return out


def _variable(v: dict[str, Any]) -> dict[str, Any]:
    out = {k: val for k, val in _no_nulls(v).items() if k not in VARIABLE_DROP}
    out["current"] = {k: out["current"][k] for k in ("selected", "text", "value")}
    return out


def clean(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in _no_nulls(d).items() if k not in DASHBOARD_DROP}
    out["panels"] = [_panel(p) for p in out["panels"]]
    out["templating"] = {"list": [_variable(v) for v in out["templating"]["list"]]}
    out["timepicker"] = _no_nulls(out.get("timepicker", {}))
    out["links"] = [{k: v for k, v in link.items() if not (k == "url" and v == "")}
                    for link in out["links"]]
    return out
