"""`nautilus-probe validate`: verdicts on crafted result files, and its exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nautilus_testkit import ROOT

ENGINES = ["analytics", "risk", "factor", "ml", "features", "websocket", "strategy",
           "marketdata", "portfolio"]
# The monolith: 250 trading requests/s (1,000 engine operations/s), 200 ms.
BASELINE = {"throughput": 250.0, "avg_latency": 200.0, "p95_latency": 240.0,
            "total_requests": 7500, "errors": 0, "test_duration": 30.0,
            "metadata": {"kind": "baseline", "started": "2026-11-28T10:00:00+00:00",
                         "duration_seconds": 30.0, "version": "0.1.0", "git_commit": "abc123",
                         "host": "bench-1", "offered": {"in_flight": 1}},
            "contamination": {"checked": True, "foreign_requests": 0}}


def containerized(ops: float, latency_ms: float, errors: int, engine: dict) -> dict:
    return {"latency_benchmark": {"avg_latency": latency_ms, "p50_latency": latency_ms * 0.9,
                                  "p95_latency": latency_ms * 1.5,
                                  "p99_latency": latency_ms * 2, "sample_count": 3000,
                                  "errors": errors},
            "throughput_benchmark": {"max_throughput": ops / 4, "max_ops_per_second": ops,
                                     "legs": 4, "total_requests": 1_000_000,
                                     "test_duration": 20.0, "concurrent_workers": 100, "errors": 0},
            "scalability_benchmark": {e: dict(engine) for e in ENGINES},
            "sustained_benchmark": {"max_rate": 400.0, "p99_target": 50.0,
                                    "error_ratio_target": 0.01, "steps": [
                                        {"rate": 200.0, "count": 2000, "errors": 1, "p99_latency": 12.5},
                                        {"rate": 400.0, "count": 4000, "errors": 2, "p99_latency": 31.0},
                                        {"rate": 800.0, "count": 7000, "errors": 900, "p99_latency": 870.0}]},
            "messagebus_benchmark": {"message_throughput": 52000.0, "total_messages": 156000,
                                     "test_duration": 3.0, "failed_flushes": 0},
            "metadata": {"kind": "containerized", "started": "2026-11-28T10:01:00+00:00",
                         "duration_seconds": 60.0, "version": "0.1.0", "git_commit": "abc123",
                         "host": "bench-1", "offered": {"latency_phase_rate": 100}}}


# 60,000 ops/s = 15,000 trading requests/s = 60x the monolith's 250.
GOOD = containerized(60000, 40, 0, {"throughput": 1500, "latency": 20, "error_rate": 0.001})
# Every target missed: throughput, both factors, latency, errors, and each engine's three.
BAD = containerized(40000, 60, 100, {"throughput": 900, "latency": 120, "error_rate": 0.02})
BAD["throughput_benchmark"]["errors"] = 20_000  # 2 % of the closed-loop requests


def run(tmp: Path, result: dict) -> subprocess.CompletedProcess[str]:
    (tmp / "b.json").write_text(json.dumps(BASELINE))
    (tmp / "c.json").write_text(json.dumps(result))
    return subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                           str(tmp / "b.json"), "--containerized", str(tmp / "c.json"),
                           "--out", str(tmp / "report")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def verdict_lines(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        if line[:4] in ("PASS", "FAIL") and "(required" in line:
            target = line[6:line.index("  ", 6)].strip()
            out[target] = line[:4]
    return out


def test_all_targets_met(tmp_path: Path) -> None:
    proc = run(tmp_path, GOOD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdicts = verdict_lines(proc.stdout)
    assert len(verdicts) == 5 + 3 * len(ENGINES)
    assert set(verdicts.values()) == {"PASS"}
    report = (tmp_path / "report" / "report.md").read_text()
    for section in ("## Runs", "## Absolute targets", "## Improvement over the monolith",
                    "## End-to-end latency", "## Sustained rate", "## MessageBus publish",
                    "## Per engine"):
        assert section in report
    assert "**Overall: PASS** — 32 of 32 targets met." in report
    # Metadata of both runs, every measured section, one unit per quantity.
    assert "| git commit | abc123 | abc123 |" in report and "| host | bench-1 | bench-1 |" in report
    assert "**400 trading requests/s**" in report and "| 800 | 7,000 | 900 | 870 |" in report
    assert "52,000 messages/s acknowledged" in report
    assert "| System throughput (engine operations/s) | 60,000 | >= 50,000 | PASS |" in report
    assert "| Throughput over the monolith's (×, trading requests/s) | 60 | >= 50 | PASS |" in report
    assert "req/s" not in report and "nan" not in report and "n/a" not in report
    for png in ("throughput", "latency", "engine_throughput", "engine_latency"):
        assert (tmp_path / "report" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_target_missed(tmp_path: Path) -> None:
    proc = run(tmp_path, BAD)
    assert proc.returncode == 1
    verdicts = verdict_lines(proc.stdout)
    assert set(verdicts.values()) == {"FAIL"}, proc.stdout
    assert verdicts["Throughput over the monolith's (×, trading requests/s)"] == "FAIL"  # 40x
    assert verdicts["Latency improvement over the monolith (×)"] == "FAIL"  # 3.3x < 4x
    assert "**Overall: FAIL** — 0 of 32 targets met." in (tmp_path / "report" / "report.md").read_text()


def test_one_missed_target_fails_the_run(tmp_path: Path) -> None:
    result = json.loads(json.dumps(GOOD))
    result["scalability_benchmark"]["risk"]["latency"] = 101
    proc = run(tmp_path, result)
    assert proc.returncode == 1
    failed = [t for t, v in verdict_lines(proc.stdout).items() if v == "FAIL"]
    assert failed == ["risk average latency (s)"]


def test_unreadable_results(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                           str(tmp_path / "none.json"), "--containerized", str(tmp_path / "x.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and f"cannot read {tmp_path / 'none.json'}" in proc.stderr
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
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "report" / "report.md").read_text()
    assert ("**MessageBus failover 1 during the containerized run:** at 20.5 s, during "
            "throughput (10.0.0.1:6379 -> 10.0.0.2:6379); that phase's errors include the "
            "requests it cost.") in report
    proc = run(tmp_path, GOOD)
    assert "failover" not in (tmp_path / "report" / "report.md").read_text()
