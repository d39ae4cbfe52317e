"""`review` (PromQL over a window) against a real Prometheus that scraped a run
gives the same verdicts as `validate` on the bench results of that run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import redis
import yaml

from nautilus_loadtest.review import QUERIES

from nautilus_testkit import ROOT, wait_for
from nautilus_testkit.live import query
from nautilus_wire.protocol import BASELINE_ENGINE, DEFAULT_PREFIX, PRIORITIES, request_stream


from .test_validate import TARGETS


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nautilus_probe", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def verdicts(stdout: str) -> dict[str, str]:
    """{target: met | MISSED | not established | not measured} from the console."""
    from .test_validate import verdict_lines

    return verdict_lines(stdout)


def test_review_agrees_with_validate(live_stack, redis_server, spawn, tmp_path: Path) -> None:
    api, redis_url, _ = live_stack
    # bench measures capacity (closed loop), review what the platform did (the engines'
    # own reports): one per-engine throughput target between the two keeps the
    # comparison about verdict logic, not about two different quantities.
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["engine_defaults"]["throughput_ops_per_second"]["min"] = 5
    # The engines fail 0.1 % of requests at random; an engine probed 10/s for 17 s sees
    # one error as 0.6-1.2 %, so a 1 % target would flip on chance, not on logic.
    data["engine_defaults"]["error_ratio"]["max"] = 0.05
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text(yaml.safe_dump(data))
    # The baseline load test needs the monolith to itself (the stack's exporter probes
    # its own): the same synthetic monolith, on a Redis of its own.
    spawn("monolith", "--redis.url", redis_server.url)
    with redis.Redis.from_url(redis_server.url) as r:  # its responders' group: it reads
        wait_for(lambda: any(r.exists(request_stream(DEFAULT_PREFIX, BASELINE_ENGINE, p))
                             for p in PRIORITIES), 15)
    start = time.time()
    b = cli("loadtest", "baseline", "--redis.url", redis_server.url, "--duration", "5",
            "--quiet", "--out", str(tmp_path / "b.json"))
    containerized_start = time.time()
    c = cli("loadtest", "containerized", "--redis.url", redis_url, "--duration", "19", "--rate", "20",
            "--concurrency", "10", "--quiet", "--out", str(tmp_path / "c.json"))
    assert b.returncode == 0 and c.returncode == 0, b.stderr + c.stderr
    end = time.time()
    # The last scrapes and rule evaluations of the window: Prometheus holds a sample
    # of each stamped after its end (a loaded machine scrapes and evaluates later).
    wait_for(lambda: all(query(api, f"max(timestamp({s})) > {end + 1}") for s in (
        "up", "nautilus_probe:system_latency_seconds:mean")), 30, interval=0.5)
    validate = cli("validate", "--baseline", str(tmp_path / "b.json"), "--containerized",
                   str(tmp_path / "c.json"), "--thresholds", str(thresholds),
                   "--out", str(tmp_path / "v"))
    review = cli("review", "--prometheus", api, "--start", str(start), "--end", str(end),
                 "--thresholds", str(thresholds), "--out", str(tmp_path / "r"))
    v, r = verdicts(validate.stdout), verdicts(review.stdout)
    # Both list every target. review has no closed-loop capacity run: it does not judge
    # the throughput factor (and says so); where both judged a target, the verdict is
    # the same. Neither judges a figure its run was too short to establish.
    factor = "Throughput over the monolith's (×, trading requests/s)"
    assert len(v) == len(r) == TARGETS, validate.stdout + review.stdout
    assert r[factor] == "not measured", review.stdout
    assert r["risk limit_check (operations/s)"] == "not measured"  # engines report totals
    both = {t for t in v if v[t] in ("met", "MISSED") and r[t] in ("met", "MISSED")}
    # Each engine's average latency at least (its error ratio needs 200 requests a side,
    # which a loaded machine's 1 s engine phase may not reach: then not established).
    assert len(both) >= 9, f"validate:\n{validate.stdout}\nreview:\n{review.stdout}"
    assert {t: v[t] for t in both} == {t: r[t] for t in both}, \
        f"validate:\n{validate.stdout}\nreview:\n{review.stdout}"
    report = (tmp_path / "r" / "report.md").read_text()
    assert "a review cannot judge it" in report and "| window start (UTC) |" in report
    # Which command wrote it, against which thresholds file (the test's, by content);
    # its figures are the probes', named so.
    assert (f"- **Command:** `nautilus-probe review --prometheus {api} --start {start} --end "
            f"{end} --thresholds {thresholds} --out {tmp_path / 'r'}`") in report
    sha = hashlib.sha256(thresholds.read_bytes()).hexdigest()[:12]
    assert f"- **Judged against:** `{thresholds}` (sha256 {sha})" in report
    assert "| engine probes (review): " in report
    assert validate.returncode == review.returncode == 1  # 50,000 ops/s is not reached here
    assert "MISSED" in r.values() and "met" in v.values()
    # Not only the verdicts: the figures agree where both measure the same thing in
    # the same seconds. The end-to-end latency is the same composite request, open loop
    # in both (review: the exporter's trading-request probe; validate: the load test's
    # latency phase) against the same engines, over the containerized run only (the
    # window above also holds the baseline run, whose load the exporter's probes feel
    # and the load test's do not). The load test's figure is its open-loop latency
    # phase alone (its first 2 s); the review's window also holds the closed-loop
    # phases that saturate both cores, where the exporter's probes queue: runs here
    # put the review 3-60 % above. So: the review's average lies within the load
    # test's own distribution of the same request, between 0.75 × its average and
    # its p99.
    same = cli("review", "--prometheus", api, "--start", str(containerized_start), "--end",
               str(end), "--thresholds", str(thresholds), "--out", str(tmp_path / "r2"))
    assert same.returncode in (0, 1), same.stderr
    got = json.loads((tmp_path / "r2" / "review.json").read_text())
    measured = json.loads((tmp_path / "c.json").read_text())
    review_ms = got["containerized"]["latency_benchmark"]["avg_latency"]
    validate_ms = measured["latency_benchmark"]["avg_latency"]
    validate_p99 = measured["latency_benchmark"]["p99_latency"]
    assert 0.75 * validate_ms <= review_ms <= validate_p99, (review_ms, validate_ms, validate_p99)
    # Each engine's error ratio: the engines' 0.1 % default, under 5 % in both even
    # with the few probes of a short window.
    for engine, figures in got["containerized"]["scalability_benchmark"].items():
        assert figures["error_rate"] < 0.05, engine
        assert measured["scalability_benchmark"][engine]["error_rate"] < 0.05, engine


def test_query_pack_is_documented() -> None:
    doc = (ROOT / "docs" / "review.md").read_text()
    for name, expr in QUERIES.items():
        assert f"`{name}`" in doc and expr in doc, name


def test_an_empty_window_is_no_data(tmp_path: Path) -> None:
    """A window with no probes recorded is not a FAIL of every target: it is unusable
    input, said as such (exit 2)."""
    import shutil

    from nautilus_testkit import free_port, http_get, wait_for

    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: run ./run setup"
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 1s}\n")
    port = free_port()
    prometheus = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 30)
        proc = cli("review", "--prometheus", f"http://127.0.0.1:{port}",
                   "--start", "2020-01-01T00:00:00", "--end", "2020-01-01T01:00:00",
                   "--out", str(tmp_path / "r"))
    finally:
        prometheus.terminate()
        prometheus.wait(20)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no data" in proc.stderr and "2020-01-01T00:00:00+00:00" in proc.stderr
    assert "MISSED" not in proc.stdout and not (tmp_path / "r" / "report.md").exists()
