"""`nautilus-probe validate`: verdicts on crafted result files, and its exit code."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from nautilus_testkit import ROOT

ENGINES = ["analytics", "risk", "factor", "ml", "features", "websocket", "strategy",
           "marketdata", "portfolio"]
OPERATIONS = ["analytics.pnl_update", "analytics.report", "risk.breach_detection", "risk.alert",
              "factor.cross_correlation"]
# 1,000 connections held for 30 s; 3,000 heartbeats acked, p99 3 ms.
WEBSOCKET = {"connection_test": {"total_connections": 1000, "successful_connections": 1000},
             "message_throughput": {"connections": 1000, "duration": 30.0, "messages_sent": 3000,
                                    "messages_received": 3000,
                                    "latency": {"p99_latency": 3.0, "sample_count": 3000}},
             "metadata": {"kind": "websocket", "started": "2026-11-28T10:05:00+00:00",
                          "websocket_urls": ["ws://bench-ws:8080/ws/engine/status"]}}
# Every target thresholds.yml has, and how many no command measures (CPU, full cycle).
TARGETS, NEVER_MEASURED = 44, 2
# The monolith: 250 trading requests/s (1,000 engine operations/s), 200 ms.
BASELINE = {"throughput": 250.0, "avg_latency": 200.0, "p95_latency": 240.0,
            "total_requests": 7500, "errors": 0, "test_duration": 30.0,
            "metadata": {"kind": "baseline", "started": "2026-11-28T10:00:00+00:00",
                         "ended": "2026-11-28T10:00:30+00:00",
                         "duration_seconds": 30.0, "version": "0.1.0", "git_commit": "abc123",
                         "host": "bench-1", "host_cpus": 2, "host_load_1m_start": 0.41,
                         "host_load_1m_end": 1.12, "redis_url": "redis://bench-redis:6379/0",
                         "prefix": "nautilus:loadtest", "offered": {"in_flight": 1}},
            "contamination": {"checked": True, "foreign_requests": 0}}


def containerized(ops: float, latency_ms: float, errors: int, engine: dict) -> dict:
    return {"latency_benchmark": {"avg_latency": latency_ms, "p50_latency": latency_ms * 0.9,
                                  "p95_latency": latency_ms * 1.5,
                                  "p99_latency": latency_ms * 2, "sample_count": 3000,
                                  "errors": errors, "test_duration": 30.0},
            "throughput_benchmark": {"max_throughput": ops / 4, "max_ops_per_second": ops,
                                     "legs": 4, "total_requests": 1_000_000,
                                     "test_duration": 20.0, "concurrent_workers": 100, "errors": 0},
            "scalability_benchmark": {e: dict(engine) for e in ENGINES},
            "operation_benchmark": {op: dict(engine) for op in OPERATIONS},
            "sustained_benchmark": {"max_rate": 400.0, "p99_target": 50.0,
                                    "error_ratio_target": 0.01, "steps": [
                                        {"rate": 200.0, "count": 2000, "errors": 1,
                                         "p99_latency": 12.5, "duration": 12.0},
                                        {"rate": 400.0, "count": 4000, "errors": 2,
                                         "p99_latency": 31.0, "duration": 12.0},
                                        {"rate": 800.0, "count": 7000, "errors": 900,
                                         "p99_latency": 870.0, "duration": 12.0}]},
            "messagebus_benchmark": {"message_throughput": 52000.0, "total_messages": 156000,
                                     "test_duration": 3.0, "failed_flushes": 0},
            "metadata": {"kind": "containerized", "started": "2026-11-28T10:01:00+00:00",
                         "duration_seconds": 60.0, "version": "0.1.0", "git_commit": "abc123",
                         "host": "bench-1", "redis_url": "redis://bench-redis:6379/0",
                         "prefix": "nautilus:probe", "offered": {"latency_phase_rate": 100}}}


# 60,000 ops/s = 15,000 trading requests/s = 60x the monolith's 250; each engine and
# operation 25,000 ops/s (every per-operation rate met).
GOOD = containerized(60000, 40, 0, {"throughput": 25000, "latency": 20, "error_rate": 0.001,
                                    "samples": 300_000, "errors": 300, "test_duration": 12.0})
# Every measured target missed: throughput, both factors, latency, errors, each
# engine's three and each operation's rate.
BAD = containerized(40000, 60, 100, {"throughput": 400, "latency": 120, "error_rate": 0.02,
                                     "samples": 10_800, "errors": 220, "test_duration": 12.0})
BAD["throughput_benchmark"]["errors"] = 20_000  # 2 % of the closed-loop requests


def run(tmp: Path, result: dict, websocket: dict | None = WEBSOCKET, *extra: str,
        baseline: dict = BASELINE) -> subprocess.CompletedProcess[str]:
    (tmp / "b.json").write_text(json.dumps(baseline))
    (tmp / "c.json").write_text(json.dumps(result))
    given = []
    if websocket is not None:
        (tmp / "w.json").write_text(json.dumps(websocket))
        given = ["--websocket", str(tmp / "w.json")]
    # From the test's folder: no results/websocket_results.json of anyone else's.
    return subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                           str(tmp / "b.json"), "--containerized", str(tmp / "c.json"), *given,
                           "--out", str(tmp / "report"), *extra], cwd=tmp, capture_output=True,
                          text=True, timeout=120)


def report_of(tmp: Path) -> str:
    return (tmp / "report" / "report.md").read_text()


def below_header(report: str) -> str:
    """The report without its header, whose paths are the test's: a word looked for
    must not be found in the temp folder's name."""
    return report.split("**Overall", 1)[1]


STATUSES = ("met", "MISSED", "not established", "not measured")


def verdict_lines(stdout: str) -> dict[str, str]:
    """{target: status} from validate's console lines."""
    out = {}
    for line in stdout.splitlines():
        status = next((s for s in STATUSES if line.startswith(s + " ")), None)
        if status and "(required" in line:
            out[line[17:line.index("  ", 17)].strip()] = status
    return out


def test_every_measured_target_met(tmp_path: Path) -> None:
    proc = run(tmp_path, GOOD)
    # Met where measured, but CPU efficiency and the factor's full cycle were not: not
    # a PASS (exit 1), and the report says why rather than reading complete.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = verdict_lines(proc.stdout)
    assert len(verdicts) == TARGETS
    assert [t for t, v in verdicts.items() if v != "met"] == [
        "CPU busy ratio (resource efficiency)", "factor full cycle (s)"]
    report = (tmp_path / "report" / "report.md").read_text()
    for section in ("## Runs", "## Absolute targets", "## Improvement over the monolith",
                    "## End-to-end latency", "## Sustained rate", "## MessageBus publish",
                    "## WebSocket", "## Per engine", "## Per operation"):
        assert section in report
    met = TARGETS - NEVER_MEASURED
    assert (f"**Overall: NOT PROVEN** — {met} of {TARGETS} targets met, 0 missed, 0 not "
            f"established, {NEVER_MEASURED} not measured.") in report
    assert f"NOT PROVEN — {met} of {TARGETS} targets met" in proc.stdout
    # Metadata of every run, every measured section, one unit per quantity; each
    # figure with the evidence it rests on.
    assert "| git commit | abc123 | abc123 |" in report
    # The baseline's result records its host's CPUs and load; the containerized and
    # WebSocket fixtures are older results, which do not.
    assert ("| host (CPUs, 1-minute load average at start → end) | bench-1, 2 CPUs, load "
            "0.4 → 1.1 | bench-1, CPUs and load not recorded | not recorded |") in report
    assert "Busy host" not in report  # 0.41 at the start on 2 CPUs: not above 1
    assert "**400 trading requests/s**" in report
    assert "| 800 | 7,000 | 900 | 12 s | 870 | **beyond a target** |" in report
    # Its rate over 3 s: marked, as every figure too thin to establish is.
    assert ("52,000 messages/s acknowledged by Redis (not established: measured over 3.0 s "
            "(needs 10 s)): 156,000 messages in 3.0 s, 0 failed flushes.") in report
    # Each row names the run that measured it, by its column in Runs.
    assert ("| System throughput (engine operations/s) | 60,000 | >= 50,000 | containerized "
            "run: 1,000,000 trading requests over 20.0 s | met |") in report
    assert ("| Throughput over the monolith's (×, trading requests/s) | 60 | >= 50 | baseline "
            "(monolith) run: 7,500 samples over 30.0 s; containerized run: 1,000,000 samples "
            "over 20.0 s | met |") in report
    assert ("| WebSocket connections held | 1,000 | >= 1,000 | websocket run: 1,000 asked for, "
            "held 30.0 s | met |") in report
    assert ("| risk error ratio | 0.001 | <= 0.01 | containerized run: 300,000 samples over "
            "12.0 s | met |") in report
    assert "| baseline (monolith) | containerized | websocket |" in report
    assert ("| factor full cycle (s) | not measured | <= 720 | — | not measured: no command runs "
            "the factor engine's full cycle yet |") in report
    body = below_header(report)
    assert "req/s" not in body and "nan" not in body and "n/a" not in body
    for png in ("throughput", "latency", "engine_throughput", "engine_latency"):
        assert (tmp_path / "report" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_target_missed(tmp_path: Path) -> None:
    proc = run(tmp_path, BAD)
    assert proc.returncode == 1
    verdicts = verdict_lines(proc.stdout)
    assert {t for t, v in verdicts.items() if v != "MISSED"} == {
        "CPU busy ratio (resource efficiency)", "factor full cycle (s)",
        "WebSocket connections held", "WebSocket heartbeat p99 (s)"}, proc.stdout
    assert verdicts["Throughput over the monolith's (×, trading requests/s)"] == "MISSED"  # 40x
    assert verdicts["Latency improvement over the monolith (×)"] == "MISSED"  # 3.3x < 4x
    # Met: the WebSocket run's two.
    assert f"**Overall: FAIL** — 2 of {TARGETS} targets met, {TARGETS - 4} missed" in (
        tmp_path / "report" / "report.md").read_text()


def test_one_missed_target_fails_the_run(tmp_path: Path) -> None:
    result = json.loads(json.dumps(GOOD))
    result["scalability_benchmark"]["risk"]["latency"] = 101
    proc = run(tmp_path, result)
    assert proc.returncode == 1
    failed = [t for t, v in verdict_lines(proc.stdout).items() if v == "MISSED"]
    assert failed == ["risk average latency (s)"]
    assert "FAIL — " in proc.stdout


def test_a_short_run_reports_what_it_did_not_establish(tmp_path: Path) -> None:
    """The issue's run: 1.4 s steps and a latency phase of 409 samples. Its figures are
    shown with what they lacked, never judged; without a WebSocket run its targets
    are not measured, naming the command."""
    short = json.loads(json.dumps(GOOD))
    short["latency_benchmark"].update(sample_count=409, test_duration=4.1)
    for step in short["sustained_benchmark"]["steps"]:
        step["duration"] = 1.4
    for figures in short["scalability_benchmark"].values():
        figures["test_duration"] = 1.4
    proc = run(tmp_path, short, websocket=None)
    assert proc.returncode == 1
    verdicts = verdict_lines(proc.stdout)
    assert verdicts["risk throughput (operations/s)"] == "not established"
    assert verdicts["End-to-end average latency (s)"] == "met"  # 409 samples: enough for a mean
    assert verdicts["WebSocket connections held"] == "not measured"
    report = (tmp_path / "report" / "report.md").read_text()
    assert "p99 from 409 samples (needs 1,000)" in report
    assert "| 200 | 2,000 | 1 | 1.4 s | 12.5 | not established: measured over 1.4 s (needs 10 s) |" in report
    assert "Highest rate within both, from established steps only: **not established**" in report
    assert "not measured: `nautilus-probe loadtest websocket`" in report


def test_unreadable_results(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                           str(tmp_path / "none.json"), "--containerized", str(tmp_path / "x.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and f"cannot read {tmp_path / 'none.json'}: no such file: " \
        "`nautilus-probe loadtest baseline` writes it" in proc.stderr
    (tmp_path / "b.json").write_text(json.dumps(BASELINE))
    (tmp_path / "c.json").write_text(json.dumps(GOOD))
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                           str(tmp_path / "b.json"), "--containerized", str(tmp_path / "c.json"),
                           "--websocket", str(tmp_path / "ws.json"), "--out", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "`nautilus-probe loadtest websocket` writes it" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unusable_input_exits_2_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(GOOD))
    (tmp_path / "bad.json").write_text("{not json")
    for baseline, message in ((tmp_path / "nope.json", f"cannot read {tmp_path / 'nope.json'}"),
                              (tmp_path / "bad.json", f"{tmp_path / 'bad.json'} is not JSON")):
        proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                               str(baseline), "--containerized", str(tmp_path / "c.json"),
                               "--out", str(tmp_path / "r")], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_contaminated_or_empty_baseline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(GOOD))
    dirty = {**BASELINE, "contamination": {"checked": True, "foreign_requests": 37}}
    empty = {**BASELINE, "throughput": 0.0}
    for name, data, message in (
            ("dirty.json", dirty, "is contaminated: 37 requests from other clients reached the "
                                  "monolith during the baseline run"),
            ("empty.json", empty, "has no answered request: nothing to compare with")):
        (tmp_path / name).write_text(json.dumps(data))
        proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                               str(tmp_path / name), "--containerized", str(tmp_path / "c.json"),
                               "--out", str(tmp_path / "r")], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{tmp_path / name} {message}" in proc.stderr
        assert not (tmp_path / "r" / "report.md").exists()


def test_a_run_through_a_failover_is_marked_in_the_report(tmp_path: Path) -> None:
    marked = {**GOOD, "failovers": [{"at": 1764324080.5, "at_s": 20.5, "phase": "throughput",
                                     "from": ["10.0.0.1:6379"], "to": ["10.0.0.2:6379"]}]}
    proc = run(tmp_path, marked)
    # 1: the fixture leaves targets unmeasured (CPU efficiency, the factor cycle), never 2.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = (tmp_path / "report" / "report.md").read_text()
    assert ("**MessageBus failover 1 during the containerized run:** at 20.5 s, during "
            "throughput (10.0.0.1:6379 -> 10.0.0.2:6379); that phase's errors include the "
            "requests it cost.") in report
    proc = run(tmp_path, GOOD)
    assert "failover" not in below_header(report_of(tmp_path))


def test_other_clients_during_the_containerized_run_are_said(tmp_path: Path) -> None:
    """A containerized run on the prefix an exporter probes: judged (its engines may
    answer nowhere else), and the report says how many requests were not its own."""
    mixed = {**GOOD, "contamination": {"checked": True, "foreign_requests": 31_012,
                                       "own_requests": 2_000_000}}
    proc = run(tmp_path, mixed)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # CPU, full cycle: not measured
    report = (tmp_path / "report" / "report.md").read_text()
    assert ("**Other clients during the containerized run:** 31,012 requests from other "
            "clients reached the engines on prefix nautilus:probe during the run, beside its "
            "own 2,000,000 (1.5 % of all): an exporter probing that prefix, or another load "
            "test. Its figures include the load they added.") in report
    assert ("| requests from other clients | none | 31,012 requests beside the run's 2,000,000 "
            "| not counted |") in report
    proc = run(tmp_path, {**GOOD, "contamination": {"checked": True, "foreign_requests": 0,
                                                    "own_requests": 2_000_000}})
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Other clients" not in report
    assert "| requests from other clients | none | none | not counted |" in report


def test_verdicts_meant_for_a_stack_that_is_not_found_are_said_not_pushed(tmp_path: Path) -> None:
    """No --pushgateway.url and no local stack seen from this TMPDIR: the verdicts
    went nowhere, and the console says where it looked; '' pushes nowhere silently."""
    (tmp_path / "b.json").write_text(json.dumps(BASELINE))
    (tmp_path / "c.json").write_text(json.dumps(GOOD))
    alone = tmp_path / "tmp"
    alone.mkdir()
    for push, said in (([], True), (["--pushgateway.url", ""], False)):
        proc = subprocess.run(
            [sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
             str(tmp_path / "b.json"), "--containerized", str(tmp_path / "c.json"),
             "--websocket", json_file(tmp_path, WEBSOCKET), "--out", str(tmp_path / "r"),
             *push], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "TMPDIR": str(alone)})
        assert proc.returncode == 1, proc.stderr
        line = (f"nautilus-probe validate: the verdicts were not pushed: no local stack found "
                f"(a running stack leaves {alone / 'nautilus-probe-stack.json'}; one started "
                "with another TMPDIR is not seen from here); give --pushgateway.url")
        assert (line in proc.stderr) is said, proc.stderr
    knobs = subprocess.run([sys.executable, "-m", "nautilus_probe", "knobs", "risk", "--clear"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "TMPDIR": str(alone)})
    assert knobs.returncode == 2 and "no local stack found" in knobs.stderr
    assert "give --redis.url (the stack's banner prints it)" in knobs.stderr


def json_file(folder: Path, data: dict) -> str:
    path = folder / "w.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_the_report_says_when_by_which_command_and_against_which_thresholds(tmp_path: Path
                                                                         ) -> None:
    """Its header: generated when (UTC), the command line as typed (paths as given, a
    URL's password masked), and the thresholds file by path and content."""
    from nautilus_testkit import free_port

    shutil.copy(ROOT / "thresholds.yml", tmp_path / "t.yml")
    before = time.time()
    # A Pushgateway that refuses: the report is written first, its command line masked.
    gateway = f"http://probe:hunter2@127.0.0.1:{free_port()}"
    proc = run(tmp_path, GOOD, WEBSOCKET, "--thresholds", "t.yml", "--pushgateway.url", gateway)
    after = time.time()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = report_of(tmp_path).splitlines()
    assert lines[:2] == ["# Performance validation report", ""]
    assert lines[2].startswith("- **Generated:** ") and lines[2].endswith(" (UTC)")
    generated = datetime.fromisoformat(lines[2][len("- **Generated:** "):-len(" (UTC)")])
    assert generated.utcoffset().total_seconds() == 0
    assert int(before) <= generated.timestamp() <= after  # to the second
    assert lines[3] == (
        f"- **Command:** `nautilus-probe validate --baseline {tmp_path / 'b.json'} "
        f"--containerized {tmp_path / 'c.json'} --websocket {tmp_path / 'w.json'} --out "
        f"{tmp_path / 'report'} --thresholds t.yml --pushgateway.url "
        f"http://probe:xxxxx@127.0.0.1:{gateway.rsplit(':', 1)[1]}`")
    sha = hashlib.sha256((tmp_path / "t.yml").read_bytes()).hexdigest()
    assert lines[4] == f"- **Judged against:** `t.yml` (sha256 {sha[:12]})"
    assert lines[5] == "" and lines[6].startswith("**Overall: NOT PROVEN**")
    assert "hunter2" not in report_of(tmp_path)
    # The default thresholds file, from a folder without one: the checkout's, by its path.
    run(tmp_path, GOOD, WEBSOCKET, "--pushgateway.url", "")
    own = hashlib.sha256((ROOT / "thresholds.yml").read_bytes()).hexdigest()[:12]
    assert (f"- **Judged against:** `{ROOT / 'thresholds.yml'}` (sha256 {own})"
            in report_of(tmp_path))
    assert "--pushgateway.url ''`" in report_of(tmp_path)


def with_meta(result: dict, **meta: object) -> dict:
    """`result` with its metadata updated."""
    out = json.loads(json.dumps(result))
    out["metadata"].update(meta)
    return out


HOST_LOAD = "| host (CPUs, 1-minute load average at start → end) |"


def test_a_host_busy_before_a_run_is_said_with_what_else_ran_there(tmp_path: Path) -> None:
    """Each run's CPUs and load average at its start and end; a start above half the
    CPUs is other work on the host, said under the table, and a run that had just
    ended on the same host is named as part of it."""
    busy = with_meta(GOOD, started="2026-11-28T10:00:50+00:00", host_cpus=2,
                     host_load_1m_start=1.34, host_load_1m_end=1.93)
    run(tmp_path, busy, WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert (f"{HOST_LOAD} bench-1, 2 CPUs, load 0.4 → 1.1 | bench-1, 2 CPUs, load 1.3 → 1.9 "
            "| not recorded |") in report
    assert ("**Busy host before the containerized run:** bench-1's 1-minute load average was "
            "1.3 when it started, above 1 (half its 2 CPUs): other work was running on the "
            "host, and the run competed with it for CPU: its figures include that. Part or all "
            "of it may be the baseline (monolith) run's, which ended 20 s before on the same "
            "host: the average forgets a load over about a minute (leave a minute between runs "
            "to tell them apart).") in report
    assert report.count("Busy host") == 1  # the baseline started at 0.41: not busy
    # Exactly half the CPUs is not above it; a run that ended over a minute before, or on
    # another host, is not named.
    run(tmp_path, with_meta(busy, host_load_1m_start=1.0), WEBSOCKET, "--pushgateway.url", "")
    assert "Busy host" not in report_of(tmp_path)
    for later in (with_meta(busy, started="2026-11-28T10:01:31+00:00"),
                  with_meta(busy, host="bench-2")):
        run(tmp_path, later, WEBSOCKET, "--pushgateway.url", "")
        report = report_of(tmp_path)
        assert "(half its 2 CPUs)" in report and "Part or all" not in report
    # A merged run of several hosts: each share's.
    shares = with_meta(busy, host="merger", shares=[
        {"index": 0, "started": "2026-11-28T10:03:00+00:00", "host": "pod-0", "host_cpus": 4,
         "host_load_1m_start": 2.5, "host_load_1m_end": 3.9},
        {"index": 1, "started": "2026-11-28T10:03:00+00:00", "host": "pod-1"}])
    run(tmp_path, shares, WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert ("| share 0: pod-0, 4 CPUs, load 2.5 → 3.9; share 1: pod-1, CPUs and load not "
            "recorded; merged on merger |") in report
    assert "**Busy host before share 0 of the containerized run:** pod-0's 1-minute load " \
           "average was 2.5 when it started, above 2 (half its 4 CPUs)" in report


PLANNED = {"duration_seconds": 240.0, "timeout_seconds": 5.0, "workers": 1,
           "latency_phase_rate": 100, "in_flight": 100, "phase_seconds": 10.0,
           "sustained_steps": 6}


def test_a_run_that_ran_less_than_planned_says_what_and_why(tmp_path: Path) -> None:
    """240 s planned in 24 shares of 10 s (2 + 1 + 9 engines + 5 operations + 6 steps
    + 1): the third sustained-rate step was beyond the p99 and error-ratio targets, so
    the last three (30 s) did not run."""
    short = with_meta(GOOD, duration_seconds=210.4, offered=PLANNED)
    run(tmp_path, short, WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert ("| offered load | 1 in flight | 240 s planned, 210 s run (3 of its 6 "
            "sustained-rate steps did not run: they stop at the first step beyond a target; "
            "see below); latency phase at 100 trading requests/s, 100 in flight, 1 worker, "
            "5 s timeout |  |") in report
    why = ("**Why the containerized run stopped early (210 s run, 240 s planned):** its 240 "
           "s are cut into 24 shares of 10.0 s (the latency phase two; the throughput phase, each "
           "of the 9 engines, each of 5 further operations, each of up to 6 sustained-rate "
           "steps and the MessageBus test one each). The sustained-rate steps double the "
           "rate until a step is beyond a target, and step 3, at 800 trading requests/s, "
           "was (p99 870 ms, target 50 ms; error ratio 0.114, target 0.01), so the other 3 "
           "(3 × 10.0 s = 30.0 s) were not run, by design.")
    assert why in report
    # An older result, which does not record the plan: the same, as the run computes it.
    old = {k: v for k, v in PLANNED.items() if k not in ("phase_seconds", "sustained_steps")}
    run(tmp_path, with_meta(short, offered=old), WEBSOCKET, "--pushgateway.url", "")
    assert why in report_of(tmp_path)
    # Stopped (Ctrl-C) after two steps within both targets, before the MessageBus test.
    stopped = with_meta(short, duration_seconds=95.123)
    stopped["sustained_benchmark"]["steps"] = stopped["sustained_benchmark"]["steps"][:2]
    del stopped["messagebus_benchmark"]
    run(tmp_path, stopped, WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert ("240 s planned, 95.1 s run (stopped before its plan was done; see below); latency"
            in report)
    assert "**Why the containerized run stopped early (95.1 s run, 240 s planned):**" in report
    assert ("steps and the MessageBus test one each). It was stopped before its plan was done "
            "(Ctrl-C stops a run and keeps what it measured): 2 of 6 sustained-rate steps "
            "ran, the last within both targets, and the MessageBus test did not run.") in report
    # Every step run: nothing to explain.
    full = json.loads(json.dumps(short))
    full["sustained_benchmark"]["steps"] *= 2
    run(tmp_path, full, WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert "stopped early" not in report and "planned" not in below_header(report)
    assert "| 240 s, latency phase at 100 trading requests/s, 100 in flight" in report


def test_a_run_judged_by_another_thresholds_file_at_run_time_is_said(tmp_path: Path) -> None:
    own = hashlib.sha256((ROOT / "thresholds.yml").read_bytes()).hexdigest()
    shutil.copy(ROOT / "thresholds.yml", tmp_path / "thresholds.yml")
    other = with_meta(GOOD, thresholds="thresholds.yml", thresholds_sha256="ab" * 32)
    run(tmp_path, other, WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert f"- **Judged against:** `thresholds.yml` (sha256 {own[:12]})" in report
    assert ("| thresholds file (at run time) |  | thresholds.yml (sha256 abababababab) |  |"
            in report)
    assert ("**Another thresholds file at run time:** the containerized run ran with "
            f"thresholds.yml (sha256 abababababab), not the one this report judges by (sha256 "
            f"{own[:12]}): its sustained-rate steps stopped at that file's targets, and the "
            "verdicts it pushed when it ran were judged by it.") in report
    run(tmp_path, with_meta(GOOD, thresholds="thresholds.yml", thresholds_sha256=own),
        WEBSOCKET, "--pushgateway.url", "")
    report = report_of(tmp_path)
    assert f"| thresholds.yml (sha256 {own[:12]}) |" in report
    assert "Another thresholds file" not in report


EXAMPLE = ROOT / "docs" / "example-report"


def test_the_example_report_is_what_validate_writes_from_its_results(tmp_path: Path) -> None:
    """docs/example-report/report.md, from the committed results (older than the host's
    load and the run's plan: read all the same) by the command docs/benchmarking.md
    gives; only when it was generated, and where to, differ here."""
    committed = (EXAMPLE / "report.md").read_text()
    doc = (ROOT / "docs" / "benchmarking.md").read_text()
    [command] = [line.strip() for line in doc.splitlines()
                 if line.strip().startswith(".venv/bin/nautilus-probe validate --baseline docs/")]
    argv = shlex.split(command)[1:]
    assert f"- **Command:** `nautilus-probe {shlex.join(argv)}`" in committed.splitlines()
    out = argv.index("--out") + 1
    assert argv[out] == "docs/example-report"
    argv[out] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines()
                if not line.startswith(("- **Generated:**", "- **Command:**"))]
    fresh = (tmp_path / "report.md").read_text()
    assert body(fresh) == body(committed), "regenerate it: " + command
    # What those older results say, and do not.
    assert f"{HOST_LOAD} vm, CPUs and load not recorded | vm, CPUs and load not recorded | " \
           "vm, CPUs and load not recorded |" in committed
    assert "Busy host" not in committed
    assert ("| thresholds file (at run time) | thresholds.yml (content not recorded) | "
            "thresholds.yml (content not recorded) | thresholds.yml (content not recorded) |"
            ) in committed
    assert ("240 s planned, 177 s run (5 of its 6 sustained-rate steps did not run: they "
            "stop at the first step beyond a target; see below)") in committed
    assert ("cut into 19 shares of 12.6 s (the latency phase two; the throughput phase, each "
            "of the 9 engines, each of up to 6 sustained-rate steps and the MessageBus test "
            "one each). The sustained-rate steps double the rate until a step is beyond a "
            "target, and the first, at 100 trading requests/s, already was (p99 1,389 ms, "
            "target 50 ms), so the other 5 (5 × 12.6 s = 63.2 s) were not run, by design."
            ) in committed
    assert ("| System throughput (engine operations/s) | 12,662 | >= 50,000 | containerized "
            "run: 40,067 trading requests over 12.7 s | **MISSED** |") in committed
