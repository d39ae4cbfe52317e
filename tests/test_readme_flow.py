"""The README's load-test flow against `./run stack`, as a newcomer follows it: the
banner's commands, run as printed (short durations appended), exit 0, 0, 0 and 0|1;
the report lists every thresholds.yml target with its verdict and evidence; the
overview's capacity row shows only verdicts measured against this stack, with their
run and platform. (A fresh stack after it shows none: test_stack.py's newcomer, which
runs after this file.)"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from nautilus_testkit import ROOT, free_port, stack_flags, wait_for
from nautilus_testkit.live import capacity_rows, query

from .test_validate import TARGETS

OVERVIEW = json.loads((ROOT / "dashboards" / "generated" / "overview.json").read_text())
# Short runs: the test asserts the report marks what they could not establish.
SHORT = {"baseline": ["--duration", "3"],
         "containerized": ["--duration", "6", "--rate", "20", "--concurrency", "8"],
         "websocket": ["--duration", "3", "--connections", "60", "--rate", "50"]}


def start(tmp: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """The stack, from a folder of the user's (its banner's commands are run there):
    (process, Redis URL, Prometheus URL)."""
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "stack", "--duration", "150",
                             "--web.listen-address", f"127.0.0.1:{free_port()}",
                             *stack_flags()],
                            cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    wait_for(lambda: "Press Ctrl-C" in log.read_text() or proc.poll() is not None, 90)
    text = log.read_text()
    assert proc.poll() is None, text
    redis_url = re.search(r"Redis at (redis://[^\s,]+)", text).group(1)
    api = re.search(r"Prometheus: (http://[^\s]+)", text).group(1)
    return proc, redis_url, api


def pushgateway_scraped(api: str) -> bool:
    return any(r["value"][1] == "1" for r in query(api, 'up{job="pushgateway"}'))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    assert proc.wait(30) == 0


def test_the_readme_flow_on_the_stack(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    log = tmp_path / "stack.log"
    proc, redis_url, api = start(user, log)
    try:
        banner = log.read_text()
        # Its Pushgateway keeps its store in the stack's own folder, never the machine's
        # (Debian's default is /var/lib/prometheus/pushgateway.data).
        [gateway] = [pid for pid in open(f"/proc/{proc.pid}/task/{proc.pid}/children")
                     .read().split() if "pushgateway" in open(f"/proc/{pid}/cmdline").read()]
        argv = open(f"/proc/{gateway}/cmdline").read().split("\0")
        [store] = [a.split("=", 1)[1] for a in argv if a.startswith("--persistence.file=")]
        assert re.fullmatch(r".*/nautilus-stack-[^/]+/pushgateway\.data", store), argv
        assert not store.startswith("/var/lib")

        # Fresh: every capacity target "no load test yet" (-1) or, where no command
        # measures it, "no command measures this yet" (-2), nothing else.
        wait_for(lambda: pushgateway_scraped(api), 30)
        fresh = capacity_rows(api, OVERVIEW)
        assert fresh and {r["value"] for r in fresh} == {-1.0, -2.0}, fresh

        # The banner's flow, each command exactly as printed (a short run appended).
        commands = re.findall(r"^  (\S+ (?:loadtest|validate)\b.*)$", banner, re.M)
        assert [c.split()[1:3] for c in commands] == [
            ["loadtest", "baseline"], ["loadtest", "containerized"], ["loadtest", "websocket"],
            ["validate"]], banner
        readme = (ROOT / "README.md").read_text()
        codes, out = [], {}
        for command in commands:
            # The README shows the same commands, the banner's Redis URL in its place.
            assert command.replace(redis_url, "<the banner's Redis URL>").replace(
                f"{ROOT}/", "") in readme, command
            argv = shlex.split(command)
            kind = argv[2] if argv[1] == "loadtest" else ""
            run = subprocess.run([*argv, *SHORT.get(kind, []),
                                  *(["--quiet"] if kind else [])], cwd=user,
                                 capture_output=True, text=True, timeout=120)
            codes.append(run.returncode)
            out[kind or "validate"] = run
            assert run.returncode in ((0, 1) if not kind else (0,)), (command, run.stderr)
            assert "Traceback" not in run.stderr
        assert codes[:3] == [0, 0, 0] and codes[3] in (0, 1)
        # `loadtest websocket` found this stack's engines wherever they listen.
        ws_ports = re.search(r"WebSocket engines on ports ([\d, ]+)\.", banner).group(1)
        ws = json.loads((user / "results" / "websocket_results.json").read_text())
        assert ws["metadata"]["websocket_urls"] == [
            f"ws://127.0.0.1:{p}/ws/engine/status" for p in ws_ports.split(", ")], ws_ports
        # The console marks what a 3 s baseline cannot establish, as the report does.
        baseline = out["baseline"].stdout
        assert re.search(r"^throughput \(trading requests/s\) +[\d.]+ \(not established: "
                         r"measured over \d\.\d s \(needs 10 s\)\)$", baseline, re.M), baseline
        assert re.search(r"^p99 latency \(ms\) +[\d.]+ \(not established: p99 from \d+ "
                         r"samples \(needs 1,000\)\)$", baseline, re.M), baseline
        assert re.search(r"^requests from other clients +none$", baseline, re.M), baseline
        # The containerized run shares its prefix with the stack's exporter: said, with
        # how many of the engines' requests were not its own.
        mixed = re.search(r"^nautilus-probe loadtest: warning: ([\d,]+) requests from other "
                          r"clients reached the engines on prefix nautilus:probe during the run, "
                          r"beside its own ([\d,]+) \(", out["containerized"].stderr, re.M)
        assert mixed and int(mixed[1].replace(",", "")) > 0, out["containerized"].stderr

        # The report: every target, each with its verdict and the evidence it rests on;
        # what these short runs cannot establish is marked so, never judged.
        report = (user / "results" / "report" / "report.md").read_text()
        rows = [line for line in report.splitlines()
                if re.match(r"^\| .+ \| .+ \| (>=|<=) .+ \| .+ \| .+ \|$", line)]
        assert len(rows) == TARGETS, rows
        for row in rows:
            verdict = row.rstrip(" |").rsplit("| ", 1)[1]
            assert verdict.split(":")[0] in ("met", "**MISSED**", "not established",
                                              "not measured"), row
            if not verdict.startswith("not measured"):
                assert re.search(r"\d[\d,]* (samples|requests|trading requests|asked for|"
                                 r"heartbeats)", row), row  # its sample count
        assert "not established: measured over" in report  # steps of well under 10 s
        assert "(not established: p99 from" in report
        assert f"| Redis | {redis_url} | {redis_url} |" in report
        assert "| prefix | nautilus:loadtest | nautilus:probe |" in report
        assert re.search(r"^\| requests from other clients \| none \| [\d,]+ requests beside "
                         r"the run's [\d,]+ \|", report, re.M), report
        assert "**Other clients during the containerized run:** " in report
        assert "not measured: no command runs the factor engine's full cycle yet" in report

        # The overview shows the verdicts measured here, each with its run and platform.
        def pushed() -> list[dict]:
            return [r for r in capacity_rows(api, OVERVIEW) if r["value"] >= 0]
        shown = wait_for(pushed, 30)
        assert all(r["platform"] == f"{redis_url} nautilus:probe" and r["run_id"]
                   for r in shown), shown
    finally:
        stop(proc)
