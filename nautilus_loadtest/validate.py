"""`nautilus-probe validate`: baseline and containerized results against thresholds.yml.

Prints a verdict per target, writes a markdown report and PNG plots, and exits
non-zero when any target fails, so a CI pipeline can gate on it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alerts.capacity import NO_COMMAND
from alerts.thresholds import Limit, Thresholds
from nautilus_wire.protocol import ENGINE_OPERATIONS, ENGINES

from . import evidence, runs_section
from .provenance import ReportOrigin
from .report import no_sustained_rate, step_problem, step_within, sustained_rate
from .results import (Baseline, Containerized, decode, EngineFigures, Result, Sustained,
                      SustainedStep, UnusableResults, WebSocketRun)


MET, MISSED = "met", "missed"
NOT_ESTABLISHED, NOT_MEASURED = "not established", "not measured"
JUDGED = (MET, MISSED)


@dataclass(frozen=True)
class TargetCheck:
    section: str  # absolute | improvement | websocket | engine:<name> | operation | cycle
    target: str
    measured: float | None
    limit: str
    status: str  # met | missed | not established | not measured
    # Stable names for the Pushgateway (push.py): the engine or "system", and the
    # target's key in thresholds.yml (its unit in the name).
    scope: str = "system"
    key: str = ""
    required_min: float | None = None
    required_max: float | None = None
    evidence: str = ""  # what the figure rests on: "3,270 samples over 32.7 s"
    note: str = ""  # why not established, or the command that would measure it
    # The runs it was computed from (Judgement.runs' keys), whose provenance it is pushed
    # with: ("containerized",), ("websocket",), or an improvement factor's two.
    sources: tuple[str, ...] = ("containerized",)

    @property
    def passed(self) -> bool:
        return self.status == MET

    @property
    def judged(self) -> bool:
        """Met or missed: a verdict that may be shown (pushed, coloured) as one."""
        return self.status in JUDGED


def _evidence(samples: int | None, duration: float | None, what: str = "samples") -> str:
    parts = []
    if samples is not None:
        parts.append(f"{samples:,} {what}")
    if duration is not None:
        parts.append(f"over {duration:,.1f} s")
    return " ".join(parts)


def _both(names: dict[str, str], baseline: str, containerized: str) -> str:
    """An improvement factor's evidence: each side's, named, where it says any."""
    return "; ".join(f"{names[side]}: {text}" for side, text in
                     (("baseline", baseline), ("containerized", containerized)) if text)


def _named(names: dict[str, str], c: TargetCheck) -> TargetCheck:
    """A verdict of one run, its evidence starting with that run's name (an improvement
    factor's names both sides already)."""
    if not c.evidence or len(c.sources) != 1:
        return c
    return dataclasses.replace(c, evidence=f"{names[c.sources[0]]}: {c.evidence}")


def _check(section: str, target: str, value: float | None, limit: Limit, unit: str = "",
           key: str = "", scope: str = "system", *, problem: str | None = None,
           samples: int | None = None, duration: float | None = None, what: str = "samples",
           how: str = "", said: str = "", sources: tuple[str, ...] = ("containerized",)
           ) -> TargetCheck:
    """One target's verdict: not measured (no figure: `how` says what would measure
    it, or, for a key no command measures, NO_COMMAND_HOW), not established
    (`problem`: too little evidence), else met or missed."""
    if key in NO_COMMAND:
        how = NO_COMMAND_HOW[key].format(engine=scope)
    text = []
    ok = value is not None
    if limit.min is not None:
        ok = ok and value >= limit.min  # type: ignore[operator]  # `ok` is False when None
        text.append(f">= {_num(limit.min)}{unit}")
    if limit.max is not None:
        ok = ok and value <= limit.max  # type: ignore[operator]  # `ok` is False when None
        text.append(f"<= {_num(limit.max)}{unit}")
    if value is None:
        status, note = NOT_MEASURED, how or "the results hold no figure for it"
    elif problem:
        status, note = NOT_ESTABLISHED, problem
    else:
        status, note = (MET if ok else MISSED), ""
    return TargetCheck(section, target, value, " and ".join(text), status, scope, key,
                       limit.min, limit.max, said or _evidence(samples, duration, what), note,
                       sources)


SYSTEM_THROUGHPUT = "System throughput (engine operations/s)"
E2E_LATENCY = "End-to-end average latency (s)"
ERROR_RATIO = "System error ratio"
WS_CONNECTIONS = "WebSocket connections held"
CPU_BUSY = "CPU busy ratio (resource efficiency)"
THROUGHPUT_X = "Throughput over the monolith's (×, trading requests/s)"
LATENCY_X = "Latency improvement over the monolith (×)"
HEARTBEAT_P99 = "WebSocket heartbeat p99 (s)"

RUN_BASELINE = "`nautilus-probe loadtest baseline` (then validate)"
RUN_CONTAINERIZED = "`nautilus-probe loadtest containerized` (then validate)"
RUN_WEBSOCKET = ("`nautilus-probe loadtest websocket` (validate reads "
                 "results/websocket_results.json, or `--websocket FILE`)")
RUN_OPERATIONS = "`nautilus-probe loadtest containerized --operations all` (then validate)"
# What to do instead, for each target no command measures (alerts/capacity.py).
NO_COMMAND_HOW = {
    "cpu_busy_ratio": ("no command measures it yet: read the engines' hosts' CPU over a "
                       "`loadtest containerized` window from your node metrics"),
    "full_cycle_seconds": "no command runs the {engine} engine's full cycle yet"}
BOTH_RUNS = ("baseline", "containerized")  # an improvement factor's runs
# The system error ratio's requests: the trading requests at the offered rate and at
# the closed-loop maximum. Not the sustained-rate steps, which raise the rate until a
# target is missed (their errors are the search's, reported per step), nor each
# engine alone (judged by its own error-ratio row).
ERROR_RATIO_PHASES = "the latency and throughput phases"


def verdicts(t: Thresholds, baseline: Baseline, containerized: Containerized,
             websocket: WebSocketRun | None = None) -> list[TargetCheck]:
    """Every target in thresholds.yml, each met, missed, not established (too little
    evidence: evidence.py) or not measured (and what would measure it). Two kinds of
    verdict are kept apart so they cannot be read against each other: `absolute`
    holds the migration's own numbers (engine operations/s, seconds, ratios);
    `improvement` holds the measured containerized run over the measured monolith,
    like for like (trading requests/s over trading requests/s). The baseline is
    always the measured one: no documented figure stands in."""
    s, e = t.system, t.engine
    names = runs_section.evidence_names(baseline, containerized)
    tb = containerized.throughput_benchmark
    lb = containerized.latency_benchmark
    lat_ms = lb.avg_latency
    errors = lb.errors + tb.errors
    total = lb.sample_count + tb.total_requests + errors
    phases = (lb.test_duration + tb.test_duration
              if lb.test_duration is not None and tb.test_duration is not None else None)
    ws_conn = websocket.connection_test if websocket else None
    ws_msgs = websocket.message_throughput if websocket else None
    out = [
        _check("absolute", SYSTEM_THROUGHPUT, tb.max_ops_per_second,
               s["throughput_ops_per_second"], key="throughput_ops_per_second",
               problem=evidence.rate(tb.test_duration), samples=tb.total_requests,
               duration=tb.test_duration, what="trading requests", how=RUN_CONTAINERIZED),
        _check("absolute", E2E_LATENCY,
               lat_ms / 1e3 if lat_ms is not None else None, s["latency_average_seconds"],
               key="latency_average_seconds", problem=evidence.average(lb.sample_count),
               samples=lb.sample_count, duration=lb.test_duration, how=RUN_CONTAINERIZED),
        _check("absolute", ERROR_RATIO, errors / total if total else None,
               s["error_ratio"], key="error_ratio",
               problem=evidence.ratio(s["error_ratio"].max, total),
               said=f"{_evidence(total, phases, 'trading requests')} ({ERROR_RATIO_PHASES})",
               how=RUN_CONTAINERIZED),
        _check("absolute", WS_CONNECTIONS,
               float(ws_conn.successful_connections) if ws_conn else None,
               s["websocket_connections"], key="websocket_connections",
               problem=evidence.rate(ws_msgs.duration if ws_msgs else None),
               said=(f"{ws_conn.total_connections:,} asked for, held "
                     f"{ws_msgs.duration:,.1f} s" if ws_conn and ws_msgs and
                     ws_msgs.duration is not None else ""),
               how=RUN_WEBSOCKET, sources=("websocket",)),
        _check("absolute", CPU_BUSY, None, s["cpu_busy_ratio"], key="cpu_busy_ratio"),
    ]
    base_rate, rate = baseline.throughput, tb.max_throughput
    both = (RUN_BASELINE + " and " + RUN_CONTAINERIZED) if not base_rate else RUN_CONTAINERIZED
    if baseline.source == "prometheus":
        both = ("a review cannot judge it (probes measure neither side's capacity): "
                + RUN_BASELINE + " and " + RUN_CONTAINERIZED)
    out.append(_check("improvement", THROUGHPUT_X,
                      rate / base_rate if base_rate and rate is not None else None,
                      Limit(min=t.throughput_factor), key="throughput_improvement_ratio",
                      problem=evidence.first(
                          evidence.rate(baseline.test_duration) and
                          f"the baseline's rate: {evidence.rate(baseline.test_duration)}",
                          evidence.rate(tb.test_duration)),
                      said=_both(names, _evidence(baseline.total_requests,
                                                  baseline.test_duration),
                                 _evidence(tb.total_requests, tb.test_duration)),
                      how=both, sources=BOTH_RUNS))
    base_lat = baseline.avg_latency
    out.append(_check("improvement", LATENCY_X,
                      base_lat / lat_ms if base_lat and lat_ms else None,
                      Limit(min=t.latency_factor), key="latency_improvement_ratio",
                      problem=evidence.first(
                          evidence.average(baseline.total_requests) and
                          f"the baseline's average: {evidence.average(baseline.total_requests)}"
                          if baseline.source != "prometheus" else None,
                          evidence.average(lb.sample_count)),
                      said=_both(names, _evidence(baseline.total_requests,
                                                  baseline.test_duration),
                                 _evidence(lb.sample_count, lb.test_duration)),
                      how=RUN_BASELINE if not base_lat else RUN_CONTAINERIZED, sources=BOTH_RUNS))
    hb = t.websocket["heartbeat_p99_seconds"]
    p99 = ws_msgs.latency.p99_latency if ws_msgs else None
    out.append(_check("websocket", HEARTBEAT_P99, p99 / 1e3 if p99 is not None else None, hb,
                      key="websocket_heartbeat_p99_seconds",
                      problem=evidence.quantile(0.99, ws_msgs.messages_received if ws_msgs
                                                else None),
                      samples=ws_msgs.messages_received if ws_msgs else None,
                      duration=ws_msgs.duration if ws_msgs else None, what="heartbeats",
                      how=RUN_WEBSOCKET, sources=("websocket",)))
    for engine in ENGINES:
        r = containerized.scalability_benchmark.get(engine, EngineFigures())
        sec = f"engine:{engine}"
        lat = r.latency / 1e3 if r.latency is not None else None
        requests = None if r.samples is None else r.samples + (r.errors or 0)
        rows = (("throughput (operations/s)", r.throughput, e["throughput_ops_per_second"],
                 "throughput_ops_per_second", evidence.rate(r.test_duration)),
                ("average latency (s)", lat, e["latency_average_seconds"],
                 "latency_average_seconds", evidence.average(r.samples)),
                ("error ratio", r.error_rate, e["error_ratio"], "error_ratio",
                 evidence.ratio(e["error_ratio"].max, requests)))
        out += [_check(sec, f"{engine} {name}", value, limit, key=key, scope=engine,
                       problem=problem, samples=r.samples, duration=r.test_duration,
                       how=RUN_CONTAINERIZED)
                for name, value, limit, key, problem in rows]
    for engine, ops in sorted(t.operations.items()):
        for op, minimum in ops.items():
            first = ENGINE_OPERATIONS.get(engine, ("",))[0] == op
            r = (containerized.scalability_benchmark if first else
                 containerized.operation_benchmark or {}).get(engine if first else f"{engine}.{op}",
                                                        EngineFigures())
            how = RUN_CONTAINERIZED if first else RUN_OPERATIONS
            if containerized.source == "prometheus":  # an engine reports its total, not by operation
                r, how = EngineFigures(), f"a review reads each engine's total rate: {how}"
            out.append(_check("operation", f"{engine} {op} (operations/s)", r.throughput,
                              Limit(min=minimum), key=f"{op}_ops_per_second", scope=engine,
                              problem=evidence.rate(r.test_duration), samples=r.samples,
                              duration=r.test_duration, how=how))
    for engine, limit in sorted(t.full_cycle.items()):
        out.append(_check("cycle", f"{engine} full cycle (s)", None, limit,
                          key="full_cycle_seconds", scope=engine))
    return [_named(names, c) for c in out]


def _num(v: float) -> str:
    """50,000 and 0.05 and 12.5: thousands separated, no exponent, four digits."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _fmt(v: float | None, unit: str = "") -> str:
    return "not measured" if v is None else f"{_num(v)}{unit}"


def _disagreement(t: Thresholds, vs: list[TargetCheck], baseline: Baseline, legs: int
                  ) -> list[str]:
    """When an improvement factor and its absolute target disagree, say why: the
    factor is against the monolith that was measured, the target against the one
    thresholds.yml documents."""
    by = {v.target: v.passed for v in vs if v.judged}
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


def _verdict(v: TargetCheck) -> str:
    if v.status == MET:
        return "met"
    if v.status == MISSED:
        return "**MISSED**"
    return f"{v.status}: {v.note}"


def headline(vs: list[TargetCheck]) -> str:
    """The overall verdict in one line: PASS only when every target was met; a run
    that missed none but left some unproven says so instead of passing."""
    count = {status: sum(v.status == status for v in vs)
             for status in (MET, MISSED, NOT_ESTABLISHED, NOT_MEASURED)}
    overall = ("PASS" if count[MET] == len(vs) else "FAIL" if count[MISSED]
               else "NOT PROVEN")
    return (f"{overall} — {count[MET]} of {len(vs)} targets met, {count[MISSED]} missed, "
            f"{count[NOT_ESTABLISHED]} not established, {count[NOT_MEASURED]} not measured")


def _quantile(value: float | None, q: float, samples: int | None) -> str:
    """A latency quantile (ms), marked when too few samples establish it."""
    if value is None:
        return "not measured"
    return evidence.marked(f"{_num(value)} ms", evidence.quantile(q, samples))


def _average(value: float | None, samples: int | None) -> str:
    """An average latency (ms), marked when too few samples establish it."""
    if value is None:
        return "not measured"
    return evidence.marked(f"{_num(value)} ms", evidence.average(samples))


def markdown(t: Thresholds, vs: list[TargetCheck], baseline: Baseline,
             containerized: Containerized, plots: list[str],
             websocket: WebSocketRun | None = None, origin: ReportOrigin | None = None) -> str:
    overall, rest = headline(vs).split(" — ", 1)
    lines = ["# Performance validation report", "", *runs_section.header(origin),
             f"**Overall: {overall}** — {rest}.", "",
             "Every target in thresholds.yml is listed: *met* or *MISSED* when the runs "
             "measured it with enough evidence; *not established* when the figure rests on "
             f"too little (a rate over less than {evidence.MIN_RATE_SECONDS:g} s, a p99 from "
             f"fewer than {evidence.quantile_samples(0.99):,} samples, an average from fewer "
             f"than {evidence.MIN_AVERAGE_SAMPLES} samples, a ratio limit r from fewer than "
             f"{evidence.RATIO_EVENTS}/r requests); *not measured* with the command that "
             "would measure it. PASS needs every target met; each figure's evidence "
             "names the run (in Runs) that measured it.", ""]
    lines += runs_section.section(baseline, containerized, websocket, origin)

    def table(rows: list[TargetCheck]) -> None:
        lines.extend(["| target | measured | required | evidence | verdict |",
                      "|---|---|---|---|---|"])
        lines.extend(f"| {v.target} | {_fmt(v.measured)} | {v.limit} | {v.evidence or '—'} | "
                     f"{_verdict(v)} |" for v in rows)
        lines.append("")

    tb, lb = containerized.throughput_benchmark, containerized.latency_benchmark
    lines += ["## Absolute targets", "",
              "The migration's own numbers, from thresholds.yml. The system's throughput is "
              f"engine operations/s: each trading request is {tb.legs} operations "
              "(one per leg), so this is the closed-loop trading-request maximum times "
              f"{tb.legs}. The system error ratio is the failed share of the trading requests "
              f"of {ERROR_RATIO_PHASES} (its evidence says how many, over how long); the "
              "sustained-rate steps, which raise the rate until a target is missed, report "
              "their errors step by step below, and each engine alone is judged by its own "
              "error-ratio row.", ""]
    table([v for v in vs if v.section == "absolute"])
    lines += ["## Improvement over the monolith", "",
              "The containerized run over the measured baseline run, like for like: trading "
              "requests/s over trading requests/s, average latency over average latency. The "
              f"required factors ({t.throughput_factor:g}× and {t.latency_factor:g}×) are the "
              "absolute targets over the documented monolith "
              f"({t.baseline_throughput:,.0f} ops/s, {t.baseline_latency * 1e3:g} ms); the "
              "measured monolith is the only baseline these factors use.", ""]
    table([v for v in vs if v.section == "improvement"])
    lines += _disagreement(t, vs, baseline, tb.legs)
    base_n = baseline.total_requests
    # A review's monolith average is its probes' over the window, which the latency
    # factor takes as it is (verdicts()); a load test's rests on its samples.
    base_avg = (_fmt(baseline.avg_latency, " ms") if baseline.source == "prometheus"
                else _average(baseline.avg_latency, base_n))
    lines += ["## End-to-end latency", "",
              "| run | average | p50 | p95 | p99 | samples | over |", "|---|---|---|---|---|---|---|",
              f"| baseline (monolith) | {base_avg} | "
              f"{_quantile(baseline.latency.p50_latency, 0.5, base_n)} | "
              f"{_quantile(baseline.p95_latency, 0.95, base_n)} | "
              f"{_quantile(baseline.latency.p99_latency, 0.99, base_n)} | "
              f"{'probes in the window' if base_n is None else f'{base_n:,}'} | "
              f"{_fmt(baseline.test_duration, ' s')} |",
              f"| containerized (open loop at the offered rate) | "
              f"{_average(lb.avg_latency, lb.sample_count)} | "
              f"{_quantile(lb.p50_latency, 0.5, lb.sample_count)} | "
              f"{_quantile(lb.p95_latency, 0.95, lb.sample_count)} | "
              f"{_quantile(lb.p99_latency, 0.99, lb.sample_count)} | "
              f"{lb.sample_count:,} | {_fmt(lb.test_duration, ' s')} |", "",
              "Latencies are timed from each request's scheduled send time (no coordinated "
              "omission).", ""]
    sb = containerized.sustained_benchmark
    if sb and sb.steps:
        rate = sustained_rate(sb)
        best = (f"**{rate:,.4g} trading requests/s**" if rate is not None else
                f"**not established** ({no_sustained_rate(sb)})")
        lines += ["## Sustained rate", "",
                  "The containerized run's open-loop steps, from its latency phase's rate, "
                  f"doubling until p99 exceeds {_fmt(sb.p99_target)} ms or the error ratio "
                  f"exceeds {sb.error_ratio_target:g} (the steps after that one are not run). "
                  f"Highest rate within both, from established steps only: {best}.", "",
                  "| offered (trading requests/s) | answered | failed | over | p99 (ms) | step |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {st.rate:,.4g} | {st.count:,} | {st.errors:,} | "
                  f"{_fmt(st.duration, ' s')} | {_fmt(st.p99_latency)} | "
                  f"{_step_verdict(st, sb)} |" for st in sb.steps]
        lines += ["", *_same_rate(containerized, sb)]
    bus = containerized.messagebus_benchmark
    if bus:
        rate_text = evidence.marked(f"{bus.message_throughput:,.0f} messages/s acknowledged "
                                    "by Redis", evidence.rate(bus.test_duration))
        lines += ["## MessageBus publish", "",
                  f"In the containerized run, {rate_text}: {bus.total_messages:,} messages in "
                  f"{bus.test_duration:.1f} s, "
                  f"{bus.failed_flushes} failed flushes. Not a thresholds.yml target.", ""]
    lines += ["## WebSocket", "",
              "Held connections and heartbeats (`loadtest websocket`).", ""]
    table([v for v in vs if v.section == "websocket"])
    lines += ["## Per engine", "",
              "Each engine alone, closed loop on its first operation (operations/s, average "
              "latency, error ratio).", ""]
    table([v for v in vs if v.section.startswith("engine:")])
    lines += ["## Per operation", "",
              "thresholds.yml's per-operation rates. `loadtest containerized` drives each "
              "engine's first operation (the per-engine run above); `--operations all` "
              "drives the others too.", ""]
    table([v for v in vs if v.section in ("operation", "cycle")])
    lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def _same_rate(containerized: Containerized, sb: Sustained) -> list[str]:
    """When the first sustained-rate step, at the latency phase's rate, missed the p99
    target that phase met: said, as the rate cannot be why."""
    first, lb = sb.steps[0], containerized.latency_benchmark
    rate = containerized.metadata.get("offered", {}).get("latency_phase_rate")
    if (rate != first.rate or sb.p99_target is None or first.p99_latency is None
            or lb.p99_latency is None or first.p99_latency <= sb.p99_target
            or lb.p99_latency > sb.p99_target
            or evidence.quantile(0.99, lb.sample_count) is not None):
        return []
    return [f"The first step offers the latency phase's rate, {first.rate:,.4g} trading "
            f"requests/s, at which that phase's p99 was {_num(lb.p99_latency)} ms "
            f"({lb.sample_count:,} samples, within the target): the rate alone does not explain "
            f"this step's {_num(first.p99_latency)} ms. Between the two the run's closed-loop "
            "phases ran (the trading request, then each engine, at their maximum), and other "
            "work on the host may have changed (see Runs).", ""]


def _step_verdict(st: SustainedStep, sb: Sustained) -> str:
    if (problem := step_problem(st)) is not None:
        return f"not established: {problem}"
    return "within both" if step_within(st, sb) else "**beyond a target**"


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


def _load(path: str, makes: str = "") -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        hint = f": `nautilus-probe {makes}` writes it (docs/benchmarking.md)" if makes else ""
        raise UnusableResults(f"cannot read {path}: no such file{hint}") from None
    except OSError as exc:
        raise UnusableResults(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UnusableResults(f"{path} is not JSON: {exc}") from None


def _read(path: str, cls: type[R], makes: str) -> R:
    data = _load(path, makes)
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
    # Each run's metadata by source (TargetCheck.sources): "baseline", "containerized"
    # (or the review window's), "websocket" when there was one.
    runs: dict[str, dict[str, Any]]

    @property
    def passed(self) -> bool:
        """Every target met: not one missed, unproven or unmeasured."""
        return all(v.passed for v in self.checks)

    @property
    def headline(self) -> str:
        return headline(self.checks)


WEBSOCKET_RESULTS = "results/websocket_results.json"


def _read_websocket(path: str | None) -> WebSocketRun | None:
    """The WebSocket run: the file given (which must exist), else the default one when
    a run wrote it; None when there is none."""
    if path is None:
        if not Path(WEBSOCKET_RESULTS).exists():
            return None
        path = WEBSOCKET_RESULTS
    data = _load(path, "loadtest websocket")
    if not isinstance(data, dict) or "connection_test" not in data:
        raise UnusableResults(f"{path} is not a WebSocket load-test result (needs connection_test)")
    try:
        return decode(WebSocketRun, data)
    except UnusableResults as exc:
        raise UnusableResults(f"{path}: {exc}") from None


def validate(t: Thresholds, baseline_path: str, containerized_path: str, out_dir: str,
             websocket_path: str | None = None, origin: ReportOrigin | None = None
             ) -> Judgement:
    baseline = _read(baseline_path, Baseline, "loadtest baseline")
    foreign = baseline.contamination.foreign_requests if baseline.contamination else 0
    if foreign:
        raise UnusableResults(f"{baseline_path} is contaminated: {foreign} requests from other "
                              "clients reached the monolith during the baseline run; run it "
                              "again with nothing else probing the monolith")
    if not baseline.throughput:
        raise UnusableResults(f"{baseline_path} has no answered request: nothing to compare with")
    containerized = _read(containerized_path, Containerized, "loadtest containerized")
    return judge(t, baseline, containerized, out_dir, _read_websocket(websocket_path), origin)


def judge(t: Thresholds, baseline: Baseline, containerized: Containerized, out_dir: str,
          websocket: WebSocketRun | None = None, origin: ReportOrigin | None = None
          ) -> Judgement:
    """Verdicts, report and plots for results from `loadtest` runs or from `review`;
    `origin`: the command and thresholds file the report says it came from."""
    vs = verdicts(t, baseline, containerized, websocket)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(t, baseline, containerized, out)
    (out / "report.md").write_text(markdown(t, vs, baseline, containerized, plots, websocket,
                                            origin))
    runs = {"baseline": baseline.metadata, "containerized": containerized.metadata}
    if websocket is not None:
        runs["websocket"] = websocket.metadata
    return Judgement(vs, console(vs), runs)


def console(vs: list[TargetCheck]) -> str:
    """One line per target: verdict, figure, requirement, evidence, and for the
    unproven why (or what would measure it)."""
    width = max(len(v.target) for v in vs)
    lines = []
    for v in vs:
        label = {MET: "met", MISSED: "MISSED"}.get(v.status, v.status)
        line = (f"{label:<15}  {v.target:<{width}}  {_fmt(v.measured):>12}  "
                f"(required {v.limit}" + (f"; {v.evidence}" if v.evidence else "") + ")")
        if v.note:
            line += f"\n{'':<17}{v.note}"
        lines.append(line)
    return "\n".join(lines)


def capacity_checks(t: Thresholds, result: Result) -> list[TargetCheck]:
    """The verdicts one load-test run proves on its own, judged ones only (the
    improvement factors need the baseline too: `validate` pushes those)."""
    if isinstance(result, Containerized):
        checks = verdicts(t, Baseline(), result)
        return [c for c in checks if c.judged and c.section != "websocket"
                and c.key != "websocket_connections"]
    if isinstance(result, WebSocketRun):
        return [c for c in verdicts(t, Baseline(), Containerized(), result)
                if c.judged and c.key.startswith("websocket")]
    return []  # the baseline is a reference, not a target


def offered_ops(result: Result) -> float | None:
    """The offered load of a containerized run's open-loop phase, in engine operations/s."""
    if not isinstance(result, Containerized):
        return None
    rate = result.metadata.get("offered", {}).get("latency_phase_rate")
    return float(rate) * result.throughput_benchmark.legs if rate else None
