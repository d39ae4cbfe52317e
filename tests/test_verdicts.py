"""validate's verdicts, in-process and at the boundaries: every target is judged on
the value it should be, and a value exactly at a limit passes."""

from __future__ import annotations

import json
import re

import pytest

from alerts.thresholds import Limit, Thresholds
from nautilus_loadtest.results import Baseline, Containerized, decode, encode, UnusableResults
from nautilus_loadtest.validate import _check, MET, MISSED, NOT_ESTABLISHED, NOT_MEASURED
from nautilus_loadtest.validate import verdicts as judged

from nautilus_testkit import ROOT

T = Thresholds.load(str(ROOT / "thresholds.yml"))


def test_a_limit_is_inclusive_and_none_fails() -> None:
    at_least = Limit(min=10.0)
    assert _check("s", "t", 10.0, at_least).passed
    assert not _check("s", "t", 9.999, at_least).passed
    assert not _check("s", "t", None, at_least).passed
    at_most = Limit(max=2.0)
    assert _check("s", "t", 2.0, at_most).passed
    assert not _check("s", "t", 2.001, at_most).passed
    band = Limit(min=0.8, max=0.9)
    assert [_check("s", "t", v, band).passed for v in (0.79, 0.8, 0.85, 0.9, 0.91)] == \
        [False, True, True, True, False]
    assert _check("s", "t", 5.0, band, " ms").limit == ">= 0.8 ms and <= 0.9 ms"
    check = _check("sec", "target", 3.0, at_most)
    assert (check.section, check.target, check.measured) == ("sec", "target", 3.0)


def result(ops: float, latency_ms: float | None, *, samples: int = 3000,
           requests: int = 1_000_000, latency_errors: int = 0, throughput_errors: int = 0,
           engine: dict | None = None) -> dict:
    """A containerized result: `ops` engine operations/s, four per trading request."""
    return {"latency_benchmark": {"avg_latency": latency_ms, "sample_count": samples,
                                  "errors": latency_errors, "test_duration": 30.0},
            "throughput_benchmark": {"max_throughput": ops / 4, "max_ops_per_second": ops,
                                     "legs": 4, "total_requests": requests,
                                     "errors": throughput_errors, "test_duration": 12.0},
            "scalability_benchmark": {"risk": {"samples": 12_000, "errors": 120,
                                               "test_duration": 12.0,
                                               **(engine or {"throughput": 1000, "latency": 100,
                                                             "error_rate": 0.01})}}}


def verdicts(t: Thresholds, baseline: dict, containerized: dict) -> list:
    """The verdicts on results as a file holds them (read as validate reads them)."""
    return judged(t, decode(Baseline, baseline), decode(Containerized, containerized))


def by_target(vs) -> dict:
    return {v.target: v for v in vs}


SYS = "System throughput (engine operations/s)"
THR_X = "Throughput over the monolith's (×, trading requests/s)"
LAT_X = "Latency improvement over the monolith (×)"
LAT = "End-to-end average latency (s)"
# The monolith: 250 trading requests/s (1,000 engine operations/s), 200 ms.
MONOLITH = {"throughput": 250.0, "avg_latency": 200.0, "total_requests": 7500,
            "test_duration": 30.0}


def test_each_figure_is_computed_from_the_results() -> None:
    vs = by_target(verdicts(T, MONOLITH, result(50_000, 50.0, samples=990, requests=9_000,
                                                latency_errors=6, throughput_errors=4)))
    assert vs[SYS].measured == 50_000
    # 12,500 trading requests/s over the monolith's 250: like for like.
    assert vs[THR_X].measured == 50.0
    assert vs[LAT].measured == pytest.approx(0.050)
    assert vs[LAT_X].measured == pytest.approx(4.0)
    # 10 errors in 990 + 9,000 + 10 requests.
    assert vs["System error ratio"].measured == pytest.approx(10 / 10_000)
    # Exactly at every limit: every measured target is met (but risk's limit_check,
    # 1,000 of its 20,000/s); the rest not measured.
    assert {t: v.status for t, v in vs.items() if v.status not in (MET, NOT_MEASURED)} == {
        "risk limit_check (operations/s)": MISSED}
    assert sum(v.passed for v in vs.values()) == 8
    assert vs["risk throughput (operations/s)"].measured == 1000
    assert vs["risk average latency (s)"].measured == pytest.approx(0.100)
    assert vs["risk error ratio"].measured == 0.01


def test_just_past_each_limit_fails() -> None:
    vs = by_target(verdicts(T, MONOLITH,
                            result(49_999, 50.1, samples=899, requests=9_000, latency_errors=101,
                                   engine={"throughput": 999, "latency": 100.1,
                                           "error_rate": 0.0101})))
    assert {t for t, v in vs.items() if v.passed} == set()
    assert {t for t, v in vs.items() if v.status == MISSED} == {
        SYS, THR_X, LAT, LAT_X, "System error ratio", "risk throughput (operations/s)",
        "risk average latency (s)", "risk error ratio", "risk limit_check (operations/s)"}


def test_missing_figures_are_not_measured_and_no_documented_figure_stands_in() -> None:
    vs = by_target(verdicts(T, {"throughput": None, "avg_latency": None},
                            result(60_000, None, engine={"throughput": 2000, "latency": None,
                                                         "error_rate": 0.0})))
    # No measured monolith: no improvement factor, rather than one against a documented
    # figure the run never saw; the report says which command measures it.
    assert vs[THR_X].status == vs[LAT_X].status == NOT_MEASURED
    assert "`nautilus-probe loadtest baseline`" in vs[THR_X].note
    assert vs[LAT].measured is None and vs[LAT].status == NOT_MEASURED
    assert vs["risk average latency (s)"].status == NOT_MEASURED
    assert vs["risk throughput (operations/s)"].passed
    # A review: no closed-loop trading-request rate, so no throughput factor.
    review = result(60_000, 25.0)
    review["throughput_benchmark"]["max_throughput"] = None
    vs = by_target(verdicts(T, MONOLITH, review))
    assert vs[THR_X].status == NOT_MEASURED and vs[LAT_X].measured == pytest.approx(8.0)
    assert vs[SYS].measured == 60_000


def test_every_thresholds_target_is_listed_with_what_would_measure_it() -> None:
    vs = by_target(verdicts(T, MONOLITH, result(60_000, 25.0)))
    ops = [f"{e} {op} (operations/s)" for e, o in T.operations.items() for op in o]
    assert len(ops) == 8 and set(ops) <= set(vs)
    assert "factor full cycle (s)" in vs and "WebSocket heartbeat p99 (s)" in vs
    assert {"WebSocket connections held", "CPU busy ratio (resource efficiency)"} <= set(vs)
    assert len(vs) == 5 + 2 + 1 + 3 * 9 + 8 + 1
    # Each engine's first operation is measured by its own run; the others need
    # --operations all; what no command measures says so.
    assert vs["risk limit_check (operations/s)"].measured == 1000
    assert "--operations all" in vs["risk breach_detection (operations/s)"].note
    assert "loadtest websocket" in vs["WebSocket connections held"].note
    assert vs["factor full cycle (s)"].note.startswith("no command")
    assert all(v.note for v in vs.values() if v.status == NOT_MEASURED)


def test_too_little_evidence_is_not_established_rather_than_judged() -> None:
    """A rate from under 10 s, an average from under 100 samples, a 1 % ratio from
    under 1,000 requests: shown, with what they lacked, never met or missed."""
    short = result(60_000, 25.0, samples=99, requests=900)
    short["throughput_benchmark"]["test_duration"] = 9.9
    short["scalability_benchmark"]["risk"].update(test_duration=1.4, samples=990, errors=9)
    vs = by_target(verdicts(T, MONOLITH, short))
    assert vs[SYS].status == NOT_ESTABLISHED and vs[SYS].measured == 60_000
    assert vs[SYS].note == "measured over 9.9 s (needs 10 s)"
    assert vs[SYS].evidence == "containerized run: 900 trading requests over 9.9 s"
    assert vs[LAT].status == NOT_ESTABLISHED
    assert vs[LAT].note == "an average of 99 samples (needs 100)"
    assert vs["risk throughput (operations/s)"].status == NOT_ESTABLISHED
    assert vs["risk error ratio"].note == "999 requests (a limit of 0.01 needs 1,000)"
    assert vs[THR_X].status == NOT_ESTABLISHED
    # A figure from results that do not say how long or how many: not established.
    old = result(60_000, 25.0)
    del old["scalability_benchmark"]["risk"]["test_duration"]
    del old["scalability_benchmark"]["risk"]["samples"]
    vs = by_target(verdicts(T, MONOLITH, old))
    assert vs["risk throughput (operations/s)"].status == NOT_ESTABLISHED
    assert "does not say" in vs["risk average latency (s)"].note


def test_no_requests_at_all_is_no_error_ratio() -> None:
    vs = by_target(verdicts(T, MONOLITH, result(0, 10.0, samples=0, requests=0)))
    assert vs["System error ratio"].measured is None
    assert vs["System error ratio"].status == NOT_MEASURED


def test_sections_and_absent_counts() -> None:
    sections = {v.target: v.section for v in verdicts(T, MONOLITH, result(1000, 10.0))}
    assert {sections[t] for t in (SYS, LAT, "System error ratio")} == {"absolute"}
    assert {sections[t] for t in (THR_X, LAT_X)} == {"improvement"}
    assert {sections[f"risk {x}"] for x in ("throughput (operations/s)", "average latency (s)",
                                            "error ratio")} == {"engine:risk"}
    # The measured monolith latency is the baseline (200 ms here: 20x).
    vs = by_target(verdicts(T, MONOLITH, result(1000, 10.0)))
    assert vs[LAT_X].measured == pytest.approx(20.0)
    # Results without error or sample counts: none assumed.
    bare = result(1000, 10.0, requests=99, throughput_errors=1)
    del bare["latency_benchmark"]["errors"], bare["latency_benchmark"]["sample_count"]
    vs = by_target(verdicts(T, MONOLITH, bare))
    assert vs["System error ratio"].measured == pytest.approx(1 / 100)
    del bare["throughput_benchmark"]["errors"]
    vs = by_target(verdicts(T, MONOLITH, bare))
    assert vs["System error ratio"].measured == 0.0
    # Units are shown only where given.
    assert _check("s", "t", 1.0, Limit(min=1.0)).limit == ">= 1"


def test_a_value_of_the_wrong_type_is_named_not_a_traceback() -> None:
    bad = result(1000, 10.0)
    bad["scalability_benchmark"]["risk"]["latency"] = "fast"
    with pytest.raises(UnusableResults) as err:
        decode(Containerized, bad)
    assert str(err.value) == "scalability_benchmark.risk.latency: must be a number, got str 'fast'"
    bad = result(1000, 10.0)
    bad["latency_benchmark"]["sample_count"] = True  # JSON true is not a count
    with pytest.raises(UnusableResults, match=r"^latency_benchmark\.sample_count: must be a whole "
                                              r"number, got bool True$"):
        decode(Containerized, bad)
    with pytest.raises(UnusableResults, match=r"^sustained_benchmark\.steps\[0\]\.count: missing$"):
        decode(Containerized, {**result(1000, 10.0), "sustained_benchmark": {
            "max_rate": 1, "steps": [{"rate": 1, "errors": 0, "p99_latency": None}]}})


@pytest.mark.parametrize("name, cls", [("baseline", Baseline), ("containerized", Containerized)])
def test_a_result_file_reads_and_writes_back_unchanged(name: str, cls: type) -> None:
    # The shipped example report's inputs, written by `loadtest`: the typed results
    # hold every key, in the file's order.
    text = (ROOT / "docs" / "example-report" / f"{name}_results.json").read_text()
    data = json.loads(text)
    assert json.dumps(encode(decode(cls, data))) == json.dumps(data)


def test_each_verdict_names_its_target_run_and_evidence() -> None:
    """What push.py labels and the report prints, for every target of one rich run:
    its scope and key (the Pushgateway's labels), the run whose platform it measured,
    and the evidence; a 9.9 s, 99-sample engine run is not established, a 10.0 s one is."""
    from nautilus_loadtest.results import WebSocketRun

    from .test_validate import BASELINE, GOOD, WEBSOCKET

    rich = json.loads(json.dumps(GOOD))
    rich["scalability_benchmark"]["risk"].update(test_duration=9.9, samples=99, errors=1)
    rich["operation_benchmark"]["risk.alert"].update(test_duration=10.0)
    vs = judged(T, decode(Baseline, BASELINE), decode(Containerized, rich),
                decode(WebSocketRun, WEBSOCKET))
    got = {v.target: (v.status, v.scope, v.key, v.evidence, v.sources) for v in vs}
    c, ws = ("containerized",), ("websocket",)
    assert got[SYS] == (MET, "system", "throughput_ops_per_second",
                        "containerized run: 1,000,000 trading requests over 20.0 s", c)
    assert got[LAT] == (MET, "system", "latency_average_seconds",
                        "containerized run: 3,000 samples over 30.0 s", c)
    # The trading requests of the latency (30 s) and throughput (20 s) phases, said so.
    assert got["System error ratio"] == (
        MET, "system", "error_ratio", "containerized run: 1,003,000 trading requests over "
        "50.0 s (the latency and throughput phases)", c)
    assert got["WebSocket connections held"] == (
        MET, "system", "websocket_connections", "websocket run: 1,000 asked for, held 30.0 s", ws)
    assert got["WebSocket heartbeat p99 (s)"] == (
        MET, "system", "websocket_heartbeat_p99_seconds",
        "websocket run: 3,000 heartbeats over 30.0 s", ws)
    # An improvement factor is computed from two runs, and pushed with both.
    assert got[THR_X] == (MET, "system", "throughput_improvement_ratio",
                          "baseline (monolith) run: 7,500 samples over 30.0 s; containerized "
                          "run: 1,000,000 samples over 20.0 s", ("baseline", "containerized"))
    assert got[LAT_X][4] == ("baseline", "containerized")
    assert got[LAT_X][2:4] == ("latency_improvement_ratio", "baseline (monolith) run: 7,500 "
                               "samples over 30.0 s; containerized run: 3,000 samples over 30.0 s")
    assert got["CPU busy ratio (resource efficiency)"][:3] == (NOT_MEASURED, "system",
                                                               "cpu_busy_ratio")
    assert got["factor full cycle (s)"][:3] == (NOT_MEASURED, "factor", "full_cycle_seconds")
    notes = {v.target: v.note for v in vs}
    assert notes["risk throughput (operations/s)"] == "measured over 9.9 s (needs 10 s)"
    assert notes["risk average latency (s)"] == "an average of 99 samples (needs 100)"
    assert notes["risk error ratio"] == "100 requests (a limit of 0.01 needs 1,000)"
    assert got["risk limit_check (operations/s)"][:3] == (NOT_ESTABLISHED, "risk",
                                                          "limit_check_ops_per_second")
    assert got["risk alert (operations/s)"] == (MET, "risk", "alert_ops_per_second",
                                                "containerized run: 300,000 samples over 10.0 s",
                                                c)
    for engine in ("analytics", "factor", "ml", "portfolio"):
        for name, key in (("throughput (operations/s)", "throughput_ops_per_second"),
                          ("average latency (s)", "latency_average_seconds"),
                          ("error ratio", "error_ratio")):
            assert got[f"{engine} {name}"] == (MET, engine, key,
                                               "containerized run: 300,000 samples over 12.0 s", c)
    for engine, ops in T.operations.items():
        for op in ops:
            assert got[f"{engine} {op} (operations/s)"][1:3] == (engine, f"{op}_ops_per_second")
    assert [v.section for v in vs][:8] == ["absolute"] * 5 + ["improvement"] * 2 + ["websocket"]


def test_the_evidence_rules_at_their_boundaries() -> None:
    from nautilus_loadtest import evidence

    assert evidence.rate(10.0) is None and evidence.rate(9.99) == \
        "measured over 10.0 s (needs 10 s)"
    assert evidence.rate(None) == "the result does not say how long it was measured"
    assert [evidence.quantile_samples(q) for q in (0.5, 0.95, 0.99, 0.999)] == \
        [20, 200, 1000, 10000]
    assert evidence.quantile(0.99, 1000) is None
    assert evidence.quantile(0.99, 999) == "p99 from 999 samples (needs 1,000)"
    assert evidence.quantile(0.95, 199) == "p95 from 199 samples (needs 200)"
    assert evidence.quantile(0.99, None) == "the result does not say how many samples it had"
    assert evidence.average(100) is None
    assert evidence.average(99) == "an average of 99 samples (needs 100)"
    assert evidence.average(None) == "the result does not say how many samples it had"
    assert evidence.ratio(0.01, 1000) is None
    assert evidence.ratio(0.01, 999) == "999 requests (a limit of 0.01 needs 1,000)"
    assert evidence.ratio(0.05, 199) == "199 requests (a limit of 0.05 needs 200)"
    assert evidence.ratio(0.05, None) == "the result does not say how many requests it had"
    assert evidence.ratio(None, 0) == "no requests" and evidence.ratio(None, 1) is None
    assert evidence.first(None, "a", "b") == "a" and evidence.first(None, None) is None


def test_the_headline_passes_only_when_every_target_is_met() -> None:
    from nautilus_loadtest.results import Sustained, SustainedStep
    from nautilus_loadtest.report import step_problem as _step_problem
    from nautilus_loadtest.report import step_within as _step_within
    from nautilus_loadtest.validate import headline

    def check(status: str):
        return _check("s", "t", 1.0, Limit(min=1.0)).__class__(
            "s", "t", 1.0, ">= 1", status)
    assert headline([check(MET)] * 3) == \
        "PASS — 3 of 3 targets met, 0 missed, 0 not established, 0 not measured"
    assert headline([check(MET), check(MISSED), check(NOT_MEASURED)]) == \
        "FAIL — 1 of 3 targets met, 1 missed, 0 not established, 1 not measured"
    assert headline([check(MET), check(NOT_ESTABLISHED), check(NOT_MEASURED)]) == \
        "NOT PROVEN — 1 of 3 targets met, 0 missed, 1 not established, 1 not measured"
    sb = Sustained(p99_target=50.0, error_ratio_target=0.01)
    step = SustainedStep(rate=100, errors=10, count=990, p99_latency=50.0, duration=10.0)
    assert _step_problem(step) == "p99 from 990 samples (needs 1,000)"
    step = SustainedStep(rate=100, errors=10, count=1000, p99_latency=50.0, duration=10.0)
    assert _step_problem(step) is None and _step_within(step, sb)
    assert not _step_within(SustainedStep(100, 11, 1000, 50.0, 10.0), sb)  # 1.09 % errors
    assert not _step_within(SustainedStep(100, 0, 1000, 50.1, 10.0), sb)
    assert _step_problem(SustainedStep(100, 0, 5000, 1.0, 9.9)) == \
        "measured over 9.9 s (needs 10 s)"
    # No sustained rate: because the steps within both were too thin, or because not
    # one was within both (a first step beyond a target is no rate to report).
    from nautilus_loadtest.report import no_sustained_rate, sustained_rate
    thin = Sustained(50.0, 50.0, 0.01, [SustainedStep(100, 0, 5000, 1.0, 9.9)])
    assert sustained_rate(thin) is None and no_sustained_rate(thin) == \
        "no step within both targets was long enough and sampled enough"
    slow = Sustained(0.0, 50.0, 0.01, [SustainedStep(100, 2, 1262, 1389.4, 12.65)])
    assert sustained_rate(slow) is None and no_sustained_rate(slow) == \
        "no step was within both targets, not even the first, at 100 trading requests/s"


def table_rows(text: str) -> dict[str, str]:
    """{row: value} of `loadtest`'s console table."""
    return dict(re.match(r"^(.+?) {2,}(.+)$", line).groups() for line in text.splitlines())


def test_the_console_marks_each_figure_as_the_report_does(tmp_path) -> None:
    """The example baseline's 147 samples establish its average but not its p95 and
    p99: the console says so in the report's words, from the same rules."""
    from nautilus_loadtest import evidence
    from nautilus_loadtest.report import summary_table
    from nautilus_loadtest.validate import judge
    from nautilus_loadtest.results import WebSocketRun

    from .test_validate import GOOD

    data = json.loads((ROOT / "docs" / "example-report" / "baseline_results.json").read_text())
    base = decode(Baseline, data)
    n = base.total_requests
    assert 100 <= n < 200  # an established average; a p95 and p99 that are not
    rows = table_rows(summary_table(base, T))
    p95 = f"(not established: {evidence.quantile(0.95, n)})"
    p99 = f"(not established: {evidence.quantile(0.99, n)})"
    assert rows["p95 latency (ms)"] == f"{base.p95_latency:.2f} {p95}"
    assert rows["p99 latency (ms)"] == f"{base.latency.p99_latency:.2f} {p99}"
    assert rows["avg latency (ms)"] == f"{base.avg_latency:.2f}"
    assert rows["throughput (trading requests/s)"] == f"{base.throughput:.2f}"  # over 30 s
    judge(T, base, decode(Containerized, GOOD), str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert f"| {base.p95_latency:.4g} ms {p95} | {base.latency.p99_latency:.4g} ms {p99} |" in report
    # A short containerized run: each engine's figures marked one by one.
    short = json.loads(json.dumps(GOOD))
    short["scalability_benchmark"]["risk"].update(test_duration=1.4, samples=990, errors=9)
    short["messagebus_benchmark"]["test_duration"] = 3.0
    rows = table_rows(summary_table(decode(Containerized, short), T))
    assert rows["risk (ops/s, ms, err)"] == (
        "25000 (not established: measured over 1.4 s (needs 10 s)), 20.00, 0.0010 (not "
        "established: 999 requests (a limit of 0.01 needs 1,000))")
    assert rows["analytics (ops/s, ms, err)"] == "25000, 20.00, 0.0010"
    assert rows["MessageBus publish (msgs/s)"] == \
        "52000.00 (not established: measured over 3.0 s (needs 10 s))"
    assert rows["e2e p99 latency (ms)"] == "80.00"  # 3,000 samples
    assert rows["sustained rate, p99 <= target (trading requests/s)"] == "400.00"
    ws = decode(WebSocketRun, {"connection_test": {"total_connections": 60,
                                                   "successful_connections": 60},
                               "message_throughput": {"duration": 3.0, "messages_sent": 150,
                                                      "messages_received": 150,
                                                      "messages_per_second": 50.0,
                                                      "latency": {"p50_latency": 1.0,
                                                                  "p99_latency": 4.0}}})
    rows = table_rows(summary_table(ws, T))
    assert rows["connections opened"] == \
        "60 / 60 (not established: measured over 3.0 s (needs 10 s))"
    assert rows["p50 heartbeat (ms)"] == "1.00"
    assert rows["p99 heartbeat (ms)"] == "4.00 (not established: p99 from 150 samples (needs 1,000))"


def test_an_improvement_factor_is_pushed_with_both_runs() -> None:
    from nautilus_loadtest.push import run_from_metadata

    base = {"kind": "baseline", "started": "2026-11-28T10:00:00+00:00",
            "ended": "2026-11-28T10:00:30+00:00", "duration_seconds": 30.0,
            "redis_url": "redis://r:6379/0", "prefix": "nautilus:loadtest"}
    cont = {"kind": "containerized", "started": "2026-11-28T10:01:00+00:00",
            "ended": "2026-11-28T10:05:00+00:00", "duration_seconds": 240.0,
            "redis_url": "redis://r:6379/0", "prefix": "nautilus:probe"}
    run = run_from_metadata("validate", [base, cont])
    assert run.run_id == ("baseline 2026-11-28T10:00:00+00:00 + "
                          "containerized 2026-11-28T10:01:00+00:00")
    assert run.platform == "redis://r:6379/0 nautilus:loadtest + redis://r:6379/0 nautilus:probe"
    # As old as its older run; both runs' measuring time.
    from datetime import datetime
    assert run.timestamp == datetime.fromisoformat(base["ended"]).timestamp()
    assert run.duration == 270.0
    one = run_from_metadata("validate", [cont])
    assert (one.run_id, one.platform) == ("containerized 2026-11-28T10:01:00+00:00",
                                          "redis://r:6379/0 nautilus:probe")
    # A review's two halves read one Prometheus: named once.
    review = {"kind": "review", "prometheus": "http://p:9090",
              "window_start": "2026-11-28T09:00:00+00:00",
              "window_end": "2026-11-28T10:00:00+00:00"}
    assert run_from_metadata("review", [{**review, "kind": "review (monolith probes)"},
                                        review]).platform == "Prometheus http://p:9090"


def test_a_reviews_evidence_names_its_probes_not_a_run() -> None:
    """A review's figures come from the probes in a window: its evidence says so, by
    the Runs table's column names."""
    base = decode(Baseline, {**MONOLITH, "source": "prometheus"})
    vs = by_target(judged(T, base, decode(Containerized, {**result(60_000, 25.0),
                                                          "source": "prometheus"})))
    assert vs[LAT].evidence == "engine probes (review): 3,000 samples over 30.0 s"
    assert vs[LAT_X].evidence == ("monolith probes (review): 7,500 samples over 30.0 s; engine "
                                  "probes (review): 3,000 samples over 30.0 s")


def test_the_host_load_a_result_records_is_the_hosts() -> None:
    """The 1-minute load average, as os.getloadavg gives it (it changes every 5 s:
    read on both sides), and the host's CPUs."""
    import os

    from nautilus_loadtest.provenance import host_load, load_1m

    before = os.getloadavg()[0]
    got = load_1m()
    after = os.getloadavg()[0]
    assert got is not None and min(before, after) - 0.005 <= got <= max(before, after) + 0.005
    assert host_load(0.5, 1.25) == {"host_cpus": os.cpu_count(), "host_load_1m_start": 0.5,
                                    "host_load_1m_end": 1.25}
