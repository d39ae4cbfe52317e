"""`nautilus-probe validate`: baseline and containerized results against thresholds.yml.

Prints a verdict per target, writes a markdown report and PNG plots, and exits
non-zero when any target fails, so a CI pipeline can gate on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alerts.thresholds import Limit, Thresholds

from . import failovers
from .results import Baseline, Containerized, decode, Result, UnusableResults, WebSocketRun


@dataclass(frozen=True)
class TargetCheck:
    section: str  # overall | throughput | latency | engine:<name>
    target: str
    measured: float | None
    limit: str
    passed: bool
    # Stable names for the Pushgateway (push.py): the engine or "system", and the
    # target's key in thresholds.yml (its unit in the name).
    scope: str = "system"
    key: str = ""
    required_min: float | None = None
    required_max: float | None = None


def _check(section: str, target: str, value: float | None, limit: Limit, unit: str = "",
           key: str = "", scope: str = "system") -> TargetCheck:
    ok = value is not None
    text = []
    if limit.min is not None:
        ok = ok and value >= limit.min  # type: ignore[operator]  # `ok` is False when None
        text.append(f">= {_num(limit.min)}{unit}")
    if limit.max is not None:
        ok = ok and value <= limit.max  # type: ignore[operator]  # `ok` is False when None
        text.append(f"<= {_num(limit.max)}{unit}")
    return TargetCheck(section, target, value, " and ".join(text), bool(ok), scope, key,
                       limit.min, limit.max)


SYSTEM_THROUGHPUT = "System throughput (engine operations/s)"
E2E_LATENCY = "End-to-end average latency (s)"
ERROR_RATIO = "System error ratio"
THROUGHPUT_X = "Throughput over the monolith's (×, trading requests/s)"
LATENCY_X = "Latency improvement over the monolith (×)"


def verdicts(t: Thresholds, baseline: Baseline, containerized: Containerized) -> list[TargetCheck]:
    """Two kinds of verdict, kept apart so they cannot be read against each other:
    `absolute` holds the migration's own numbers (engine operations/s, seconds,
    ratios); `improvement` holds the measured containerized run over the measured
    monolith, like for like (trading requests/s over trading requests/s). The
    baseline is always the measured one: no documented figure stands in."""
    s, e = t.system, t.engine
    tb = containerized.throughput_benchmark
    lb = containerized.latency_benchmark
    lat_ms = lb.avg_latency
    errors = lb.errors + tb.errors
    total = lb.sample_count + tb.total_requests + errors
    out = [
        _check("absolute", SYSTEM_THROUGHPUT, tb.max_ops_per_second,
               s["throughput_ops_per_second"], key="throughput_ops_per_second"),
        _check("absolute", E2E_LATENCY,
               lat_ms / 1e3 if lat_ms is not None else None, s["latency_average_seconds"],
               key="latency_average_seconds"),
        _check("absolute", ERROR_RATIO, errors / total if total else None,
               s["error_ratio"], key="error_ratio"),
    ]
    base_rate, rate = baseline.throughput, tb.max_throughput
    if base_rate and rate is not None:  # a review has no capacity run: nothing to compare
        out.append(_check("improvement", THROUGHPUT_X,
                          rate / base_rate, Limit(min=t.throughput_factor),
                          key="throughput_improvement_ratio"))
    base_lat = baseline.avg_latency
    if base_lat and lat_ms:
        out.append(_check("improvement", LATENCY_X,
                          base_lat / lat_ms, Limit(min=t.latency_factor),
                          key="latency_improvement_ratio"))
    for engine, r in sorted(containerized.scalability_benchmark.items()):
        sec = f"engine:{engine}"
        lat = r.latency / 1e3 if r.latency is not None else None
        out += [_check(sec, f"{engine} throughput (operations/s)", r.throughput,
                       e["throughput_ops_per_second"], key="throughput_ops_per_second",
                       scope=engine),
                _check(sec, f"{engine} average latency (s)", lat, e["latency_average_seconds"],
                       key="latency_average_seconds", scope=engine),
                _check(sec, f"{engine} error ratio", r.error_rate, e["error_ratio"],
                       key="error_ratio", scope=engine)]
    return out


def _num(v: float) -> str:
    """50,000 and 0.05 and 12.5: thousands separated, no exponent, four digits."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _fmt(v: float | None, unit: str = "") -> str:
    return "not measured" if v is None else f"{_num(v)}{unit}"


def _offered(o: dict[str, Any]) -> str:
    """The offered load, as a sentence fragment."""
    parts = []
    if "duration_seconds" in o:
        parts.append(f"{o['duration_seconds']:g} s")
    if "latency_phase_rate" in o:
        parts.append(f"latency phase at {o['latency_phase_rate']:g} trading requests/s")
    if "in_flight" in o:
        parts.append(f"{o['in_flight']} in flight")
    if "connections" in o:
        parts.append(f"{o['connections']} connections")
    if "workers" in o:
        parts.append(f"{o['workers']} worker{'s' if o['workers'] != 1 else ''}")
    if "timeout_seconds" in o:
        parts.append(f"{o['timeout_seconds']:g} s timeout")
    return ", ".join(parts)


def _disagreement(t: Thresholds, vs: list[TargetCheck], baseline: Baseline, legs: int
                  ) -> list[str]:
    """When an improvement factor and its absolute target disagree, say why: the
    factor is against the monolith that was measured, the target against the one
    thresholds.yml documents."""
    by = {v.target: v.passed for v in vs}
    out = []
    thr_x, thr = by.get(THROUGHPUT_X), by.get(SYSTEM_THROUGHPUT)
    if thr_x is not None and thr is not None and thr_x != thr and baseline.throughput:
        measured = baseline.throughput * legs
        out.append(f"**Why the two sections disagree on throughput:** the measured monolith "
                   f"handles {_num(measured)} operations/s ({_num(baseline.throughput)} "
                   f"trading requests/s × {legs}); thresholds.yml's absolute target assumes a "
                   f"{_num(t.baseline_throughput)} operations/s monolith. The factor compares "
                   "with the monolith that was run; the absolute target is the migration's "
                   "commitment and stands on its own.")
    lat_x, lat = by.get(LATENCY_X), by.get(E2E_LATENCY)
    if lat_x is not None and lat is not None and lat_x != lat and baseline.avg_latency:
        out.append(f"**Why the two sections disagree on latency:** the measured monolith "
                   f"averages {_num(baseline.avg_latency)} ms; thresholds.yml's absolute "
                   f"target assumes {_num(t.baseline_latency * 1e3)} ms.")
    return [x for line in out for x in (line, "")]


def _meta_rows(baseline: Baseline, containerized: Containerized) -> list[str]:
    """The runs' metadata side by side."""
    b, c = baseline.metadata, containerized.metadata
    keys = [("kind", "run"), ("started", "started (UTC)"), ("ended", "ended (UTC)"),
            ("window_start", "window start (UTC)"), ("window_end", "window end (UTC)"),
            ("duration_seconds", "duration (s)"), ("prometheus", "Prometheus"),
            ("version", "tool version"), ("git_commit", "git commit"), ("host", "host"),
            ("redis_url", "Redis"), ("transport", "transport"), ("thresholds", "thresholds file")]
    rows = ["| | baseline (monolith) | containerized |", "|---|---|---|"]
    for key, name in keys:
        if key in b or key in c:
            rows.append(f"| {name} | {b.get(key, '')} | {c.get(key, '')} |")
    if b.get("offered") or c.get("offered"):
        rows.append(f"| offered load | {_offered(b.get('offered', {}))} | "
                    f"{_offered(c.get('offered', {}))} |")
    tb, lb = containerized.throughput_benchmark, containerized.latency_benchmark
    answered = "probes in window" if baseline.total_requests is None else baseline.total_requests
    rows.append(f"| samples | {answered} answered, {baseline.errors} failed | latency phase "
                f"{lb.sample_count:,} answered, {lb.errors} failed; "
                f"throughput phase {tb.total_requests:,} answered, {tb.errors} failed |")
    return rows + [""]


def markdown(t: Thresholds, vs: list[TargetCheck], baseline: Baseline,
             containerized: Containerized, plots: list[str]) -> str:
    passed = sum(v.passed for v in vs)
    lines = ["# Performance validation report", "",
             f"**Overall: {'PASS' if passed == len(vs) else 'FAIL'}** — {passed} of {len(vs)} "
             "targets met.", "", "## Runs", ""] + _meta_rows(baseline, containerized)
    for run, result in (("baseline", baseline), ("containerized", containerized)):
        for name, line in failovers.lines(result.failovers):
            # A run through a failover: its figures include the gap (counted as errors).
            lines += [f"**{name} during the {run} run:** {line}.", ""]

    def table(rows: list[TargetCheck]) -> None:
        lines.extend(["| target | measured | required | verdict |", "|---|---|---|---|"])
        lines.extend(f"| {v.target} | {_fmt(v.measured)} | {v.limit} | "
                     f"{'PASS' if v.passed else 'FAIL'} |" for v in rows)
        lines.append("")

    tb, lb = containerized.throughput_benchmark, containerized.latency_benchmark
    lines += ["## Absolute targets", "",
              "The migration's own numbers, from thresholds.yml. The system's throughput is "
              f"engine operations/s: each trading request is {tb.legs} operations "
              "(one per leg), so this is the closed-loop trading-request maximum times "
              f"{tb.legs}.", ""]
    table([v for v in vs if v.section == "absolute"])
    lines += ["## Improvement over the monolith", "",
              "The containerized run over the measured baseline run, like for like: trading "
              "requests/s over trading requests/s, average latency over average latency. The "
              f"required factors ({t.throughput_factor:g}× and {t.latency_factor:g}×) are the "
              "absolute targets over the documented monolith "
              f"({t.baseline_throughput:,.0f} ops/s, {t.baseline_latency * 1e3:g} ms); the "
              "measured monolith is the only baseline these factors use.", ""]
    improvement = [v for v in vs if v.section == "improvement"]
    if improvement:
        table(improvement)
    lines += _disagreement(t, vs, baseline, tb.legs)
    if not any(v.target == THROUGHPUT_X for v in improvement):
        lines += ["Throughput improvement: not judged — a review has no closed-loop capacity "
                  "run of either side (run `nautilus-probe loadtest` for that).", ""]
    lines += ["## End-to-end latency", "",
              "| run | average | p50 | p95 | p99 | samples |", "|---|---|---|---|---|---|",
              f"| baseline (monolith) | {_fmt(baseline.avg_latency, ' ms')} | "
              f"{_fmt(baseline.latency.p50_latency, ' ms')} | "
              f"{_fmt(baseline.p95_latency, ' ms')} | "
              f"{_fmt(baseline.latency.p99_latency, ' ms')} | "
              f"{'probes in the window' if baseline.total_requests is None else baseline.total_requests} |",
              f"| containerized (open loop at the offered rate) | "
              f"{_fmt(lb.avg_latency, ' ms')} | {_fmt(lb.p50_latency, ' ms')} | "
              f"{_fmt(lb.p95_latency, ' ms')} | {_fmt(lb.p99_latency, ' ms')} | "
              f"{lb.sample_count:,} |", "",
              "Latencies are timed from each request's scheduled send time (no coordinated "
              "omission).", ""]
    sb = containerized.sustained_benchmark
    if sb and sb.steps:
        lines += ["## Sustained rate", "",
                  f"Open-loop steps, doubling, until p99 exceeds {_fmt(sb.p99_target)} ms "
                  f"or the error ratio exceeds {sb.error_ratio_target:g}. Highest rate "
                  f"within both: **{sb.max_rate:,.4g} trading requests/s**.", "",
                  "| offered (trading requests/s) | answered | failed | p99 (ms) |",
                  "|---|---|---|---|"]
        lines += [f"| {st.rate:,.4g} | {st.count:,} | {st.errors:,} | "
                  f"{_fmt(st.p99_latency)} |" for st in sb.steps]
        lines.append("")
    bus = containerized.messagebus_benchmark
    if bus:
        lines += ["## MessageBus publish", "",
                  f"{bus.message_throughput:,.0f} messages/s acknowledged by Redis "
                  f"({bus.total_messages:,} messages in {bus.test_duration:.1f} s, "
                  f"{bus.failed_flushes} failed flushes).", ""]
    lines += ["## Per engine", "",
              "Each engine alone, closed loop (operations/s, average latency, error ratio).", ""]
    table([v for v in vs if v.section.startswith("engine:")])
    lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def plot(t: Thresholds, baseline: Baseline, containerized: Containerized, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    lb = containerized.latency_benchmark

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

    # Log scale: a few trading requests/s of baseline and a 50,000 ops/s target on one
    # axis; both in engine operations/s (a trading request is one operation per leg).
    tb = containerized.throughput_benchmark
    legs = tb.legs
    names, values = [], []
    if baseline.throughput:
        names.append("baseline\n(monolith)")
        values.append(baseline.throughput * legs)
    if tb.max_ops_per_second is not None:
        names.append("containerized")
        values.append(tb.max_ops_per_second)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    bars = ax.bar(names, [max(v, 0.1) for v in values], color=["grey", "tab:blue"][-len(names):])
    target = t.system["throughput_ops_per_second"].floor
    ax.axhline(target, color="red", ls="--", label=f"target {target:,.0f} ops/s")
    ax.set_yscale("log")
    ax.set_ylim(top=target * 10)
    label(ax, bars, "ops/s")
    ax.set_ylabel("engine operations/s (log scale)")
    ax.set_title(f"System throughput (operations/s; {legs} per trading request)", fontsize=10)
    ax.legend(loc="upper left")
    save(fig, "throughput.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    x = range(2)
    label(ax, ax.bar([i - 0.2 for i in x], [baseline.avg_latency or 0, lb.avg_latency or 0],
                     0.4, label="average"), "ms")
    label(ax, ax.bar([i + 0.2 for i in x], [baseline.p95_latency or 0, lb.p95_latency or 0],
                     0.4, label="p95"), "ms")
    ax.set_xticks(list(x), ["baseline (monolith)", "containerized"])
    limit = t.system["latency_average_seconds"].ceiling * 1e3
    ax.axhline(limit, color="red", ls="--", label=f"target: average under {limit:g} ms")
    ax.set_ylabel("ms")
    ax.set_title("End-to-end latency (ms)")
    ax.legend()
    save(fig, "latency.png")

    engines = sorted(containerized.scalability_benchmark)
    rows = [containerized.scalability_benchmark[e] for e in engines]
    for name, key, limit, unit in (
            ("engine_throughput.png", "throughput", t.engine["throughput_ops_per_second"].floor, "ops/s"),
            ("engine_latency.png", "latency", t.engine["latency_average_seconds"].ceiling * 1e3, "ms")):
        fig, ax = plt.subplots(figsize=(9, 4))
        label(ax, ax.bar(engines, [getattr(r, key) or 0 for r in rows], color="tab:blue"), "")
        ax.axhline(limit, color="red", ls="--", label=f"target\n{limit:,.4g} {unit}")
        ax.set_ylabel(unit)
        ax.set_title(f"Per-engine {key} ({unit})")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside, never over a bar
        save(fig, name)
    return files


R = TypeVar("R", Baseline, Containerized)
# The keys that tell one kind of result from another.
_REQUIRED: dict[type, tuple[str, ...]] = {
    Baseline: ("avg_latency",),
    Containerized: ("latency_benchmark", "throughput_benchmark", "scalability_benchmark")}


def _read(path: str, cls: type[R]) -> R:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UnusableResults(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UnusableResults(f"{path} is not JSON: {exc}") from None
    need = _REQUIRED[cls]
    if not isinstance(data, dict) or any(key not in data for key in need):
        raise UnusableResults(f"{path} is not a load-test result (needs {', '.join(need)})")
    try:
        return decode(cls, data)
    except UnusableResults as exc:
        raise UnusableResults(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Judgement:
    checks: list[TargetCheck]
    text: str  # one line per check, for the console
    metadata: dict[str, Any]  # the containerized run's (or the review window's)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.checks)


def validate(t: Thresholds, baseline_path: str, containerized_path: str, out_dir: str) -> Judgement:
    baseline = _read(baseline_path, Baseline)
    foreign = baseline.contamination.foreign_requests if baseline.contamination else 0
    if foreign:
        raise UnusableResults(f"{baseline_path} is contaminated: {foreign} requests from other "
                              "clients reached the monolith during the baseline run; run it "
                              "again with nothing else probing the monolith")
    if not baseline.throughput:
        raise UnusableResults(f"{baseline_path} has no answered request: nothing to compare with")
    containerized = _read(containerized_path, Containerized)
    return judge(t, baseline, containerized, out_dir)


def judge(t: Thresholds, baseline: Baseline, containerized: Containerized, out_dir: str
          ) -> Judgement:
    """Verdicts, report and plots for results from `bench` runs or from `review`."""
    vs = verdicts(t, baseline, containerized)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(t, baseline, containerized, out)
    (out / "report.md").write_text(markdown(t, vs, baseline, containerized, plots))
    width = max(len(v.target) for v in vs)
    text = "\n".join(f"{'PASS' if v.passed else 'FAIL'}  {v.target:<{width}}  {_fmt(v.measured):>10}  "
                     f"(required {v.limit})" for v in vs)
    return Judgement(vs, text, containerized.metadata)


def capacity_checks(t: Thresholds, result: Result) -> list[TargetCheck]:
    """The absolute verdicts one load-test run proves on its own (the improvement
    factors need the baseline too: `validate` pushes those)."""
    if isinstance(result, Containerized):
        return verdicts(t, Baseline(), result)
    if isinstance(result, WebSocketRun):
        held = result.connection_test.successful_connections
        return [_check("absolute", "WebSocket connections held", float(held),
                       t.system["websocket_connections"], key="websocket_connections")]
    return []  # the baseline is a reference, not a target


def offered_ops(result: Result) -> float | None:
    """The offered load of a containerized run's open-loop phase, in engine operations/s."""
    if not isinstance(result, Containerized):
        return None
    rate = result.metadata.get("offered", {}).get("latency_phase_rate")
    return float(rate) * result.throughput_benchmark.legs if rate else None
