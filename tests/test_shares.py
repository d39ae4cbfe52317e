"""loadtest --shares / merge: how a run is split, and the errors a user reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nautilus_loadtest.shares import ShareError, fetch, share_index, share_options, store
from nautilus_testkit import ROOT

OPTS = {"redis_url": "", "prefix": "nautilus:probe", "prober": "bench", "concurrency": 100,
        "rate": 100.0, "connections": 1000, "connect_rate": 1000.0, "duration": 30.0}


def test_shares_split_the_load_to_exactly_the_whole() -> None:
    parts = [share_options("containerized", OPTS, i, 3) for i in range(3)]
    assert [p["concurrency"] for p in parts] == [34, 33, 33]
    assert [p["share"] for p in parts] == [(0, 3), (1, 3), (2, 3)]
    assert len({p["prober"] for p in parts}) == 3  # each its own reply stream
    assert all(p["rate"] == 100.0 for p in parts)  # the whole schedule, sliced (drivers.py)
    ws = [share_options("websocket", OPTS, i, 3) for i in range(3)]
    assert sum(p["connections"] for p in ws) == 1000


def test_what_cannot_be_shared_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ShareError, match="serial"):
        share_options("baseline", OPTS, 0, 3)
    with pytest.raises(ShareError, match="--concurrency 2 cannot be shared by 3"):
        share_options("containerized", {**OPTS, "concurrency": 2}, 0, 3)
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    with pytest.raises(ShareError, match="JOB_COMPLETION_INDEX"):
        share_index(None, 3)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    with pytest.raises(ShareError, match="outside 0..2"):
        share_index(None, 3)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    assert share_index(None, 3) == 2


def test_merge_names_the_missing_shares_and_refuses_mixed_runs(redis_url: str, tmp_path: Path
                                                               ) -> None:
    raw = {"kind": "containerized"}
    opts = {**OPTS, "redis_url": redis_url}
    store(opts, "r1", "containerized", 0, 3, opts, raw, 0.0, 1.0)
    with pytest.raises(ShareError, match="shares 1, 2 of 3 not in Redis after 0.2 s"):
        fetch(redis_url, "nautilus:probe", "r1", "containerized", 3, 0.2)
    store(opts, "r1", "containerized", 1, 3, {**opts, "duration": 60.0}, raw, 0.0, 1.0)
    store(opts, "r1", "containerized", 2, 3, opts, raw, 0.0, 1.0)
    with pytest.raises(ShareError, match="share 1 ran with other options than share 0 \\(duration\\)"):
        fetch(redis_url, "nautilus:probe", "r1", "containerized", 3, 0.2)
    # Nothing answered in any share: no result; the command says so in one line, exit 2.
    for i in range(3):
        store(opts, "r3", "containerized", i, 3, opts,
              {"kind": "containerized", "latency": {"histogram": {"count": 0}}}, 0.0, 1.0)
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "merge", "containerized",
                           "--redis.url", redis_url, "--run-id", "r3", "--shares", "3",
                           "--out", str(tmp_path / "r3.json")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "no request of run 'r3' was answered" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r3.json").exists()


def test_a_merged_run_keeps_each_shares_host_and_its_load(redis_url: str) -> None:
    """Each share ran on its own host: the merged result lists each with its CPUs and
    load average (a share stored by an older tool, with none, is read all the same),
    and claims none for the host that merged them, which ran no load."""
    import os
    import socket

    from nautilus_loadtest.histogram import LatencyHistogram
    from nautilus_loadtest.provenance import host_load, iso
    from nautilus_loadtest.runs_section import host_cell
    from nautilus_loadtest.shares import merge_shares

    hist = LatencyHistogram()
    hist.record(0.01)
    phase = {"duration": 12.0, "errors": 0, "histogram": hist.to_json()}
    raw = {"kind": "containerized", "latency": phase, "throughput": phase, "requests_sent": 8}
    opts = {**OPTS, "redis_url": redis_url, "timeout": 5.0, "transport": "streams",
            "operations": "first", "thresholds": "thresholds.yml"}
    store(opts, "r4", "containerized", 0, 2, opts, raw, 100.0, 130.0, host_load(0.4, 1.5))
    store(opts, "r4", "containerized", 1, 2, opts, raw, 101.0, 131.0)
    meta = merge_shares("containerized", fetch(redis_url, "nautilus:probe", "r4",
                                               "containerized", 2, 1.0), opts, "r4").metadata
    me = socket.gethostname()
    assert meta["shares"] == [
        {"index": 0, "started": iso(100.0), "ended": iso(130.0), "host": me,
         "host_cpus": os.cpu_count(), "host_load_1m_start": 0.4, "host_load_1m_end": 1.5},
        {"index": 1, "started": iso(101.0), "ended": iso(131.0), "host": me}]
    assert "host_load_1m_start" not in meta and "host_cpus" not in meta
    # 30 s in 19 shares: the latency phase two, throughput and 9 engines, 6 steps, the bus.
    assert (meta["offered"]["phase_seconds"], meta["offered"]["sustained_steps"]) == (
        round(30 / 19, 3), 6)
    cpus = os.cpu_count()
    assert host_cell(meta) == (f"share 0: {me}, {cpus} CPU{'s' if cpus != 1 else ''}, load "
                               f"0.4 → 1.5; share 1: {me}, CPUs and load not recorded; merged "
                               f"on {me}")
