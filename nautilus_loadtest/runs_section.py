"""The report's Runs section: each run's provenance side by side (when, where, on how
busy a host, against which thresholds, what was offered and what of it ran), and
under the table what a reviewer must know to read the figures: a host already busy
when a run started, a run that ran less than it planned and why, other clients, a
failover, a run judged at run time by another thresholds file. Also the runs' names,
which every verdict's evidence starts with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import failovers
from .provenance import iso, ReportOrigin
from .report import others, others_cell, step_within
from .results import Baseline, Containerized, Sustained, SustainedStep, WebSocketRun
from .scenarios import phase_shares, SUSTAIN_STEPS

# A host whose 1-minute load average was above this many per CPU when a run started
# was busy with other work before the run added its own: at half, another program was
# keeping one CPU in two busy (or waiting) on average over the minute before.
BUSY_LOAD_PER_CPU = 0.5
# The 1-minute load average is an exponentially damped one (Linux: e^(-5 s / 60 s)
# every 5 s): a load that stopped within this many seconds is still largely in it.
LOAD_MEMORY_SECONDS = 60.0
HOST_ROW = "host (CPUs, 1-minute load average at start → end)"


def column_names(baseline: Baseline, containerized: Containerized) -> dict[str, str]:
    """The Runs table's column names, by TargetCheck.sources key."""
    if containerized.source == "prometheus":  # a review: two halves of one window's probes
        return {"baseline": "monolith probes (review)", "containerized": "engine probes (review)",
                "websocket": "websocket"}
    return {"baseline": "baseline (monolith)", "containerized": "containerized",
            "websocket": "websocket"}


def evidence_names(baseline: Baseline, containerized: Containerized) -> dict[str, str]:
    """What each verdict's evidence starts with: the column name of the run that
    measured it ("containerized run: 40,067 trading requests over 12.7 s")."""
    review = containerized.source == "prometheus"
    return {key: name if review and key != "websocket" else f"{name} run"
            for key, name in column_names(baseline, containerized).items()}


def short_sha(sha: str | None) -> str:
    return f"sha256 {sha[:12]}" if sha else "content not recorded"


def header(origin: ReportOrigin | None) -> list[str]:
    """When the report was generated, by which command, against which thresholds."""
    if origin is None:  # judged in-process (a test): no command line to give
        return []
    return [f"- **Generated:** {iso(origin.generated)} (UTC)",
            f"- **Command:** `{origin.command}`",
            f"- **Judged against:** `{origin.thresholds}` ({short_sha(origin.thresholds_sha256)})",
            ""]


def section(baseline: Baseline, containerized: Containerized, websocket: WebSocketRun | None,
            origin: ReportOrigin | None) -> list[str]:
    """The Runs table and the lines under it."""
    names = column_names(baseline, containerized)
    runs: list[tuple[str, dict[str, Any]]] = [(names["baseline"], baseline.metadata),
                                              (names["containerized"], containerized.metadata)]
    if websocket is not None:
        runs.append((names["websocket"], websocket.metadata))
    lines = ["## Runs", ""] + _table(runs, baseline, containerized, websocket) + [""]
    notes = _busy_hosts(runs)
    if (short := cut_short(containerized)) is not None:
        notes.append(f"**Why the {names['containerized']} run stopped early "
                     f"({_seconds(containerized.metadata.get('duration_seconds'))} run, "
                     f"{_seconds(_offered(containerized).get('duration_seconds'))} planned):** "
                     f"{short.why}.")
    for name, result in ((names["baseline"], baseline), (names["containerized"], containerized)):
        for what, line in failovers.lines(result.failovers):
            # A run through a failover: its figures include the gap (counted as errors).
            notes.append(f"**{what} during the {name} run:** {line}.")
    if said := others(containerized.contamination, "engines",
                      str(containerized.metadata.get("prefix", "?"))):
        notes.append(f"**Other clients during the {names['containerized']} run:** {said}.")
    notes += _other_thresholds(runs, origin)
    return lines + [x for note in notes for x in (note, "")]


def _table(runs: list[tuple[str, dict[str, Any]]], baseline: Baseline,
           containerized: Containerized, websocket: WebSocketRun | None) -> list[str]:
    keys = [("kind", "run"), ("run_id", "run id"), ("started", "started (UTC)"),
            ("ended", "ended (UTC)"), ("window_start", "window start (UTC)"),
            ("window_end", "window end (UTC)"), ("duration_seconds", "duration (s)"),
            ("prometheus", "Prometheus"), ("version", "tool version"),
            ("git_commit", "git commit")]
    rows = ["| | " + " | ".join(name for name, _ in runs) + " |",
            "|---|" + "---|" * len(runs)]

    def row(name: str, cells: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    for key, name in keys:
        # The run's kind only where it says more than its column (a review's halves).
        if key == "kind" and all(meta.get("kind", "") in column for column, meta in runs):
            continue
        if any(key in meta for _, meta in runs):
            row(name, [_cell(meta.get(key, "")) for _, meta in runs])
    if any("host" in meta for _, meta in runs):
        # A review's host is the one that queried, which put no load anywhere.
        review = all("window_start" in meta for _, meta in runs)
        row("host" if review else HOST_ROW, [host_cell(meta) for _, meta in runs])
    for key, name in (("redis_url", "Redis"), ("prefix", "prefix"), ("transport", "transport"),
                      ("websocket_urls", "WebSocket endpoints")):
        if any(key in meta for _, meta in runs):
            row(name, [_cell(meta.get(key, "")) for _, meta in runs])
    if any("thresholds" in meta for _, meta in runs):
        row("thresholds file (at run time)",
            [f"{meta['thresholds']} ({short_sha(meta.get('thresholds_sha256'))})"
             if meta.get("thresholds") else "" for _, meta in runs])
    if any(meta.get("offered") for _, meta in runs):
        row("offered load", [offered_cell(meta.get("offered", {}),
                                          planned_cell(containerized) if i == 1 else None)
                             for i, (_, meta) in enumerate(runs)])
    tb, lb = containerized.throughput_benchmark, containerized.latency_benchmark
    answered = ("probes in window" if baseline.total_requests is None
                else f"{baseline.total_requests:,}")
    cells = [f"{answered} answered, {baseline.errors:,} failed",
             f"latency phase {lb.sample_count:,} answered, {lb.errors:,} failed; "
             f"throughput phase {tb.total_requests:,} answered, {tb.errors:,} failed"]
    if websocket is not None:
        m = websocket.message_throughput
        cells.append(f"{websocket.connection_test.successful_connections:,} connections; "
                     f"{m.messages_received:,} of {m.messages_sent:,} heartbeats acked")
    row("samples", cells)
    if baseline.contamination is not None or containerized.contamination is not None:
        # The requests that reached the measured service but were not the run's own.
        row("requests from other clients",
            [others_cell(baseline.contamination), others_cell(containerized.contamination)]
            + ["not counted"] * (websocket is not None))
    return rows


def _cell(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _load(value: Any) -> str:
    return f"{value:.1f}"


def _one_host(meta: dict[str, Any]) -> str:
    """'vm, 2 CPUs, load 0.4 → 1.9', saying what the result did not record."""
    cpus, start, end = (meta.get("host_cpus"), meta.get("host_load_1m_start"),
                        meta.get("host_load_1m_end"))
    host = meta.get("host")
    if cpus is None and start is None and end is None:
        return f"{host}, CPUs and load not recorded" if host else "not recorded"
    parts = [str(host or "host not recorded")]
    parts.append(f"{cpus} CPU{'s' if cpus != 1 else ''}" if cpus else "CPUs not recorded")
    parts.append(f"load {_load(start)} → {_load(end)}" if start is not None and end is not None
                 else "load not recorded")
    return ", ".join(parts)


def host_cell(meta: dict[str, Any]) -> str:
    """Where a run ran and how busy its host was: each share's host for a run of
    several; for a review, only the host that queried (it put no load anywhere)."""
    if "window_start" in meta:
        return str(meta.get("host", ""))
    shares = meta.get("shares")
    if shares:
        return "; ".join([f"share {s.get('index', '?')}: {_one_host(s)}" for s in shares]
                         + [f"merged on {meta.get('host', 'a host not recorded')}"])
    return _one_host(meta)


def _hosts(name: str, meta: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(what to call it, metadata with its host's load) of a run, or of each share."""
    if "window_start" in meta:
        return []
    shares = meta.get("shares")
    if shares:
        return [(f"share {s.get('index', '?')} of the {name} run", s) for s in shares]
    return [(f"the {name} run", meta)]


def _when(meta: dict[str, Any], key: str) -> float | None:
    text = meta.get(key)
    return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else None


def _busy_hosts(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """A line for each run (or share) whose host's load average was already above
    BUSY_LOAD_PER_CPU per CPU when it started; naming a run that had just ended on
    the same host, whose load the average still held."""
    everyone = [(label, m) for name, meta in runs for label, m in _hosts(name, meta)]
    out = []
    for label, meta in everyone:
        cpus, load = meta.get("host_cpus"), meta.get("host_load_1m_start")
        if not cpus or load is None or load <= BUSY_LOAD_PER_CPU * cpus:
            continue
        host = meta.get("host") or "its host"
        line = (f"**Busy host before {label}:** {host}'s 1-minute load average was "
                f"{_load(load)} when it started, above {BUSY_LOAD_PER_CPU * cpus:g} (half its "
                f"{cpus} CPUs): other work was running on the host, and the run competed "
                "with it for CPU: its figures include that.")
        started = _when(meta, "started")
        before = [(started - end, other) for other, m in everyone
                  if other != label and m.get("host") == meta.get("host")
                  and started is not None and (end := _when(m, "ended")) is not None
                  and 0 <= started - end <= LOAD_MEMORY_SECONDS]
        if before:
            gap, other = min(before)
            when = "just before" if gap < 1 else f"{gap:.0f} s before"
            line += (f" Part or all of it may be {other}'s, which ended {when} on the same "
                     "host: the average forgets a load over about a minute (leave a minute "
                     "between runs to tell them apart).")
        out.append(line)
    return out


def _other_thresholds(runs: list[tuple[str, dict[str, Any]]],
                      origin: ReportOrigin | None) -> list[str]:
    """A run whose thresholds file (by content) is not the one this report judges by:
    what it decided by that file."""
    if origin is None or origin.thresholds_sha256 is None:
        return []
    out = []
    for name, meta in runs:
        sha = meta.get("thresholds_sha256")
        if sha and sha != origin.thresholds_sha256:
            steps = (" its sustained-rate steps stopped at that file's targets, and"
                     if meta.get("kind") == "containerized" else "")
            out.append(f"**Another thresholds file at run time:** the {name} run ran with "
                       f"{meta.get('thresholds', 'a thresholds file')} ({short_sha(sha)}), "
                       f"not the one this report judges by ({short_sha(origin.thresholds_sha256)}):"
                       f"{steps} the verdicts it pushed when it ran were judged by it.")
    return out


def _offered(c: Containerized) -> dict[str, Any]:
    offered = c.metadata.get("offered")
    return offered if isinstance(offered, dict) else {}


def _seconds(value: Any) -> str:
    """177 s, 5.58 s: a duration to three digits (a short run's to its hundredths)."""
    if not isinstance(value, int | float):
        return "not recorded"
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"


def offered_cell(o: dict[str, Any], planned: str | None = None) -> str:
    """The offered load, as a sentence fragment; `planned`, what ran of its duration."""
    parts = []
    if "duration_seconds" in o and planned is None:
        parts.append(f"{o['duration_seconds']:g} s")
    if "latency_phase_rate" in o:
        parts.append(f"latency phase at {o['latency_phase_rate']:g} trading requests/s")
    if "in_flight" in o:
        parts.append(f"{o['in_flight']} in flight")
    if "connections" in o:
        parts.append(f"{o['connections']:,} connections")
    if "workers" in o:
        parts.append(f"{o['workers']} worker{'s' if o['workers'] != 1 else ''}")
    if "timeout_seconds" in o:
        parts.append(f"{o['timeout_seconds']:g} s timeout")
    return ", ".join(parts) if planned is None else "; ".join([planned, ", ".join(parts)])


def _plan(c: Containerized) -> tuple[int, int, float] | None:
    """(sustained-rate steps planned at most, shares, seconds a share) of a
    containerized run: as its metadata records them, else (a result written before
    they were kept) as the run computes them, from the phases it ran."""
    o = _offered(c)
    planned = o.get("duration_seconds")
    if c.source == "prometheus" or not isinstance(planned, int | float) or planned <= 0:
        return None
    share = o.get("phase_seconds")
    if not isinstance(share, int | float) or share <= 0:
        phases = 2 + len(c.scalability_benchmark) + len(c.operation_benchmark or {})
        share = planned / phase_shares(phases)
    return int(o.get("sustained_steps", SUSTAIN_STEPS)), round(planned / share), share


def _beyond(step: SustainedStep, sb: Sustained) -> str:
    """Which target a sustained-rate step was beyond, with its figure."""
    out = []
    if sb.p99_target is not None and (step.p99_latency is None or step.p99_latency > sb.p99_target):
        p99 = "no answer" if step.p99_latency is None else f"{step.p99_latency:,.0f} ms"
        out.append(f"p99 {p99}, target {sb.p99_target:g} ms")
    total = step.count + step.errors
    if total and step.errors / total > sb.error_ratio_target:
        out.append(f"error ratio {step.errors / total:.3g}, target {sb.error_ratio_target:g}")
    return "; ".join(out) or "beyond a target"


@dataclass(frozen=True)
class CutShort:
    """A containerized run that ran less than its plan."""

    why: str  # a sentence
    by_design: bool  # the sustained-rate steps stopped at a target, as they do; else stopped
    skipped_steps: int
    planned_steps: int  # at most


def cut_short(c: Containerized) -> CutShort | None:
    """Why a containerized run ran less than its plan; None when it ran all of it (or
    is no load test)."""
    plan = _plan(c)
    if plan is None:
        return None
    most, shares, share = plan
    sb = c.sustained_benchmark
    steps = sb.steps if sb else []
    bus = c.messagebus_benchmark is not None
    if len(steps) >= most and bus:
        return None
    engines = len(c.scalability_benchmark)
    ops = len(c.operation_benchmark or {})
    cut = (f"its {_seconds(_offered(c)['duration_seconds'])} are cut into {shares} shares of "
           f"{share:.1f} s (the latency phase two; the throughput phase, each of the {engines} "
           f"engines{f', each of {ops} further operations' if ops else ''}, each of up to "
           f"{most} sustained-rate steps and the MessageBus test one each)")
    last = steps[-1] if steps else None
    skipped = most - len(steps)
    if last is not None and sb is not None and bus and not step_within(last, sb):
        which = "the first" if len(steps) == 1 else f"step {len(steps)}"
        return CutShort(
            f"{cut}. The sustained-rate steps double the rate until a step is beyond a "
            f"target, and {which}, at {last.rate:,.4g} trading requests/s, "
            f"{'already ' if len(steps) == 1 else ''}was ({_beyond(last, sb)}), so the "
            f"other {skipped} ({skipped} × {share:.1f} s = {skipped * share:.1f} s) were not "
            "run, by design", True, skipped, most)
    ran = f"{len(steps)} of {most} sustained-rate steps ran"
    if last is not None and sb is not None and step_within(last, sb):
        ran += ", the last within both targets"
    return CutShort(
        f"{cut}. It was stopped before its plan was done (Ctrl-C stops a run and keeps "
        f"what it measured): {ran}{'' if bus else ', and the MessageBus test did not run'}",
        False, skipped, most)


def planned_cell(c: Containerized) -> str | None:
    """The offered load's duration when the run ran less than planned: both, and why."""
    if (short := cut_short(c)) is None:
        return None
    why = (f"{short.skipped_steps} of its {short.planned_steps} sustained-rate steps did not "
           "run: they stop "
           "at the first step beyond a target" if short.by_design
           else "stopped before its plan was done")
    return (f"{_seconds(_offered(c)['duration_seconds'])} planned, "
            f"{_seconds(c.metadata.get('duration_seconds'))} run ({why}; see below)")
