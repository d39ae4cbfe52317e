"""`nautilus-probe validate`: baseline and containerized results against thresholds.yml.

Prints a verdict per target, writes a markdown report and PNG plots, and exits
non-zero when any target fails, so a CI pipeline can gate on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.thresholds import Limit, Thresholds


@dataclass(frozen=True)
class TargetCheck:
    section: str  # overall | throughput | latency | engine:<name>
    target: str
    measured: float | None
    limit: str
    passed: bool


def _check(section: str, target: str, value: float | None, limit: Limit, unit: str = "") -> TargetCheck:
    ok = value is not None
    text = []
    if limit.min is not None:
        ok = ok and value >= limit.min  # type: ignore[operator]
        text.append(f">= {limit.min:g}{unit}")
    if limit.max is not None:
        ok = ok and value <= limit.max  # type: ignore[operator]
        text.append(f"<= {limit.max:g}{unit}")
    return TargetCheck(section, target, value, " and ".join(text), bool(ok))


def verdicts(t: Thresholds, baseline: dict[str, Any], containerized: dict[str, Any]) -> list[TargetCheck]:
    s, e = t.system, t.engine
    thr = containerized["throughput_benchmark"]["max_throughput"]
    # A review (PromQL) has no measured monolith capacity: the documented one stands in.
    base_thr = baseline.get("throughput") or t.baseline_throughput
    lat_ms = containerized["latency_benchmark"].get("avg_latency")
    lat_s = lat_ms / 1e3 if lat_ms is not None else None
    base_lat_s = (baseline.get("avg_latency") or t.baseline_latency * 1e3) / 1e3
    need_x, need_lat_x = t.throughput_factor, t.latency_factor
    errors = containerized["latency_benchmark"].get("errors", 0) + \
        containerized["throughput_benchmark"].get("errors", 0)
    total = containerized["latency_benchmark"].get("sample_count", 0) + \
        containerized["throughput_benchmark"]["total_requests"] + errors
    out = [
        _check("throughput", "System throughput (ops/s)", thr, s["throughput_ops_per_second"]),
        _check("throughput", "Throughput improvement over baseline (x)",
               thr / base_thr if base_thr else None, Limit(min=need_x)),
        _check("latency", "End-to-end average latency (s)", lat_s, s["latency_average_seconds"]),
        _check("latency", "Latency improvement over baseline (x)",
               base_lat_s / lat_s if lat_s else None, Limit(min=need_lat_x)),
        _check("overall", "System error ratio", errors / total if total else None, s["error_ratio"]),
    ]
    for engine, r in sorted(containerized["scalability_benchmark"].items()):
        sec = f"engine:{engine}"
        lat = r["latency"] / 1e3 if r["latency"] is not None else None
        out += [_check(sec, f"{engine} throughput (ops/s)", r["throughput"], e["throughput_ops_per_second"]),
                _check(sec, f"{engine} average latency (s)", lat, e["latency_average_seconds"]),
                _check(sec, f"{engine} error ratio", r["error_rate"], e["error_ratio"])]
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def markdown(vs: list[TargetCheck], baseline: dict[str, Any], containerized: dict[str, Any],
             plots: list[str]) -> str:
    passed = sum(v.passed for v in vs)
    lines = ["# Performance validation report", "",
             f"**Overall: {'PASS' if passed == len(vs) else 'FAIL'}** — {passed} of {len(vs)} targets met.", ""]

    def table(rows: list[TargetCheck]) -> None:
        lines.extend(["| target | measured | required | verdict |", "|---|---|---|---|"])
        lines.extend(f"| {v.target} | {_fmt(v.measured)} | {v.limit} | {'PASS' if v.passed else 'FAIL'} |"
                     for v in rows)
        lines.append("")

    lb = containerized["latency_benchmark"]
    lines += ["## Overall", ""]
    table([v for v in vs if v.section == "overall"])
    lines += ["## Throughput", "",
              f"Baseline {_fmt(baseline.get('throughput'))} req/s; containerized "
              f"{_fmt(containerized['throughput_benchmark']['max_throughput'])} req/s "
              f"({containerized['throughput_benchmark']['concurrent_workers']} in flight).", ""]
    table([v for v in vs if v.section == "throughput"])
    lines += ["## Latency", "",
              f"Baseline avg {_fmt(baseline.get('avg_latency'))} ms, p95 "
              f"{_fmt(baseline.get('p95_latency'))} ms; containerized avg "
              f"{_fmt(lb.get('avg_latency'))} ms, p95 {_fmt(lb.get('p95_latency'))} ms, p99 "
              f"{_fmt(lb.get('p99_latency'))} ms (from the scheduled send time).", ""]
    table([v for v in vs if v.section == "latency"])
    lines += ["## Per engine", ""]
    table([v for v in vs if v.section.startswith("engine:")])
    lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def plot(t: Thresholds, baseline: dict[str, Any], containerized: dict[str, Any], out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    lb = containerized["latency_benchmark"]

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(str(path))

    def label(ax: Any, bars: Any, unit: str) -> None:
        """Each bar's value written on it: a reader should not have to estimate."""
        def text(v: float) -> str:
            return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
        ax.bar_label(bars, labels=[f"{text(b.get_height())} {unit}".strip() for b in bars],
                     padding=2, fontsize=8)
        ax.margins(y=0.12)  # room for the labels

    # Log scale: a few requests/s of baseline and a 50,000/s target on one axis.
    fig, ax = plt.subplots(figsize=(5.5, 4))
    bars = ax.bar(["baseline\n(monolith)", "containerized"],
                  [max(baseline.get("throughput") or t.baseline_throughput, 0.1),
                   max(containerized["throughput_benchmark"]["max_throughput"], 0.1)],
                  color=["grey", "tab:blue"])
    target = t.system["throughput_ops_per_second"].min
    ax.axhline(target, color="red", ls="--", label=f"target {target:,.0f}/s")
    ax.set_yscale("log")
    ax.set_ylim(top=target * 10)
    label(ax, bars, "/s")
    ax.set_ylabel("trading requests/s (log scale)")
    ax.set_title("Throughput (requests/s)")
    ax.legend(loc="upper left")
    save(fig, "throughput.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    x = range(2)
    label(ax, ax.bar([i - 0.2 for i in x], [baseline.get("avg_latency") or 0,
                                            lb.get("avg_latency") or 0], 0.4, label="average"), "ms")
    label(ax, ax.bar([i + 0.2 for i in x], [baseline.get("p95_latency") or 0,
                                            lb.get("p95_latency") or 0], 0.4, label="p95"), "ms")
    ax.set_xticks(list(x), ["baseline (monolith)", "containerized"])
    limit = t.system["latency_average_seconds"].max * 1e3
    ax.axhline(limit, color="red", ls="--", label=f"target: average under {limit:g} ms")
    ax.set_ylabel("ms")
    ax.set_title("End-to-end latency (ms)")
    ax.legend()
    save(fig, "latency.png")

    engines = sorted(containerized["scalability_benchmark"])
    rows = [containerized["scalability_benchmark"][e] for e in engines]
    for name, key, limit, unit in (
            ("engine_throughput.png", "throughput", t.engine["throughput_ops_per_second"].min, "ops/s"),
            ("engine_latency.png", "latency", (t.engine["latency_average_seconds"].max or 0) * 1e3, "ms")):
        fig, ax = plt.subplots(figsize=(8, 4))
        label(ax, ax.bar(engines, [r[key] or 0 for r in rows], color="tab:blue"), "")
        ax.axhline(limit, color="red", ls="--", label=f"target {limit:,.4g} {unit}")
        ax.set_ylabel(unit)
        ax.set_title(f"Per-engine {key} ({unit})")
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
        save(fig, name)
    return files


class UnusableResults(Exception):
    """A results file that cannot be judged; the message names it."""


def _read(path: str, required: tuple[str, ...]) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UnusableResults(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UnusableResults(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise UnusableResults(f"{path} is not a load-test result (needs {', '.join(required)})")
    return data


def validate(t: Thresholds, baseline_path: str, containerized_path: str, out_dir: str) -> tuple[bool, str]:
    baseline = _read(baseline_path, ("avg_latency",))
    containerized = _read(containerized_path, ("latency_benchmark", "throughput_benchmark",
                                               "scalability_benchmark"))
    return judge(t, baseline, containerized, out_dir)


def judge(t: Thresholds, baseline: dict[str, Any], containerized: dict[str, Any],
          out_dir: str) -> tuple[bool, str]:
    """Verdicts, report and plots for results from `bench` runs or from `review`."""
    vs = verdicts(t, baseline, containerized)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(t, baseline, containerized, out)
    (out / "report.md").write_text(markdown(vs, baseline, containerized, plots))
    width = max(len(v.target) for v in vs)
    text = "\n".join(f"{'PASS' if v.passed else 'FAIL'}  {v.target:<{width}}  {_fmt(v.measured):>10}  "
                     f"(required {v.limit})" for v in vs)
    return all(v.passed for v in vs), text
