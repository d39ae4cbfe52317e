"""The README's first command: the local stack comes up and every engine answers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import redis

from nautilus_wire.protocol import DEFAULT_PREFIX, ENGINES
from exporter.signals import EXIT_WITHIN_S
from synthetic.engine import knobs_key

from nautilus_testkit import ROOT, free_port, free_ports, http_get, stack_flags, wait_for
from nautilus_testkit.exposition import value


def start_stack(out, port: int, duration: int, *extra: str,
                ws: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """The stack, its WebSocket engines on free ports (or `ws`: the flags that place them)."""
    return subprocess.Popen([sys.executable, "-m", "nautilus_probe", "stack", "--duration",
                             str(duration), "--web.listen-address", f"127.0.0.1:{port}",
                             *(ws or stack_flags()), *(extra or ("--no-prometheus",))],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def wait_banner(proc: subprocess.Popen[bytes], log, text: str) -> str:
    """The stack's log once it shows `text`; fails with the log if the stack exits first.
    The bound is the stack's own (30 s for the engines, 30 s for the exporter, 30 s for
    Prometheus) plus Redis's start: the stack gives up before this does, and says why."""
    def shown() -> str | None:
        out = log.read_text()
        if text in out:
            return out
        if proc.poll() is not None:
            raise AssertionError(f"the stack exited with {proc.returncode}:\n{out}")
        return None
    try:
        return wait_for(shown, 100, interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe stack's log:\n{log.read_text()}") from None


def shutdown(log: str, why: str) -> tuple[str, float]:
    """The stack's two shutdown lines, once each and in this order: what it stopped on
    `why` (in the order it stopped them), and how many seconds stopping took (the line
    would name any child it had to kill: none)."""
    stopping = re.findall(rf"^\d\d:\d\d:\d\d stopping \({why}\): (.+)$", log, re.M)
    stopped = re.findall(r"^\d\d:\d\d:\d\d stopped in (\d+\.\d) s$", log, re.M)
    assert len(stopping) == 1 and len(stopped) == 1, log
    assert log.index(" stopping (") < log.index(" stopped in "), log
    return stopping[0], float(stopped[0])


# The stack stops its children in four waves (Prometheus and Alertmanager, the
# exporter, the engines, Redis), each child within EXIT_WITHIN_S of its SIGTERM; a
# child still running STOP_WAIT_S after it is killed, and the line says so.
STOP_BOUND_S = 4 * EXIT_WITHIN_S


def test_local_stack_probes_all_nine_engines(tmp_path) -> None:
    port = free_port()
    ws_ports = free_ports(3)
    log = tmp_path / "stack.log"
    with open(log, "wb") as out:
        proc = start_stack(out, port, 25,
                           ws=("--websocket.port", ",".join(str(p) for p in ws_ports)))
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            wait_banner(proc, log, f"Metrics: {url}")

            def all_answered() -> bool:
                text = http_get(url)[1]
                return all(value(text, "nautilus_probe_latency_seconds_count", engine=e) >= 10
                           for e in (*ENGINES, "monolith")) and \
                    value(text, "nautilus_probe_trading_request_latency_seconds_count") >= 5
            wait_for(all_answered, 20, interval=0.5)
            text = http_get(url)[1]
            # The monolith is serial and ~200 ms a request.
            mono = value(text, "nautilus_probe_latency_seconds_sum", engine="monolith") / \
                value(text, "nautilus_probe_latency_seconds_count", engine="monolith")
            assert 0.2 <= mono <= 0.26, mono
            wait_for(lambda: value(http_get(url)[1], "nautilus_probe_engine_report_up") == 9, 10)
            wait_for(lambda: value(http_get(url)[1], "nautilus_probe_ws_connections_open") == 300, 10)
            text = http_get(url)[1]
            # Every WebSocket target of config/exporter.yml moved with the engines.
            assert f"WebSocket engines on ports {', '.join(map(str, ws_ports))}." in \
                log.read_text()
            for ws_port in ws_ports:
                endpoint = f"ws://127.0.0.1:{ws_port}/ws/engine/status"
                assert value(text, "nautilus_probe_ws_connections_open", endpoint=endpoint) == 100
                assert value(text, "nautilus_probe_ws_messages_received_total", endpoint=endpoint) > 0
            assert value(text, "nautilus_probe_ws_broadcast_frames_total") > 0

            def health_probed() -> bool:
                text = http_get(url)[1]
                return all(value(text, "nautilus_probe_http_up",
                                 target=f"http://127.0.0.1:{p}/health") == 1 and
                           value(text, "nautilus_probe_tcp_up", target=f"127.0.0.1:{p}") == 1
                           for p in ws_ports)
            wait_for(health_probed, 10)
            text = http_get(url)[1]
            # Nothing probed where the engines are not (free_ports picks 10000 and above).
            assert re.search(r"127\.0\.0\.1:808[0-2]\b", text) is None
            check = subprocess.run(["promtool", "check", "metrics"], input=text,
                                   capture_output=True, text=True, timeout=30)
            assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout
        finally:
            proc.terminate()
            assert proc.wait(20) == 0, log.read_text()
    # Every child was stopped: nothing listens on the exporter's port any more.
    assert re.search(r"Redis at redis://127\.0\.0\.1:\d+/0", log.read_text())
    status = None
    try:
        status = http_get(f"http://127.0.0.1:{port}/-/healthy", timeout=1)[0]
    except OSError:
        pass
    assert status is None


def test_a_second_sigterm_while_stopping_leaves_no_child(tmp_path) -> None:
    """A supervisor that signals twice must not orphan the engines: the first SIGTERM
    starts the stop, the second arrives while children are being stopped."""
    import os
    import signal
    import time

    port = free_port()
    log = tmp_path / "stack.log"
    with open(log, "wb") as out:
        proc = start_stack(out, port, 60)
        wait_banner(proc, log, "Metrics: ")
        children = [int(pid) for pid in
                    open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
        assert len(children) >= 12  # redis, nine engines, the monolith, ws-engine, exporter
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    # One stop, said once: the second SIGTERM neither restarted nor cut it short.
    stopped, seconds = shutdown(log.read_text(), "SIGTERM")
    assert stopped.startswith("the exporter, ") and stopped.endswith(", 9 engines, Redis")
    assert seconds <= STOP_BOUND_S, log.read_text()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return "zombie" not in open(f"/proc/{pid}/status").read()
    assert [pid for pid in children if alive(pid)] == []


def test_a_newcomer_injects_a_fault_and_sees_the_page_and_the_recovery(tmp_path) -> None:
    """`./run stack` with Prometheus and Alertmanager (rules with the test windows:
    a sixtieth of the real ones), `nautilus-probe knobs risk --error-ratio 1`: the
    console shows the knob, the page firing, Alertmanager delivering it to the local
    pager (the ticket inhibited); `--clear`: the knob cleared and the alert resolved."""
    from nautilus_testkit import live

    # The stack's Prometheus scrapes every 5 s: the recent and the current window need a
    # few samples.
    thresholds, rules = live.write_rules(tmp_path, {**live.TEST_ALERTING, "recent": "15s",
                                                    "current": "10s"})
    overview = live.render_dashboards(thresholds)["overview"]  # its windows, too
    port = free_port()
    log = tmp_path / "stack.log"
    with open(log, "wb") as out:
        proc = start_stack(out, port, 240, "--rules", str(rules))
        try:
            wait_banner(proc, log, "Prometheus: http://127.0.0.1:")
            redis_url = re.search(r"Redis at (redis://[^\s,]+)", log.read_text()).group(1)
            api = re.search(r"Prometheus: (http://[^\s]+)", log.read_text()).group(1)
            assert "Pushgateway: http://127.0.0.1:" in log.read_text()
            # The engines fail 0.1 % at random; over this test's 15 s windows one such
            # error on a slowly probed engine is several percent, so the check below
            # starts from none (the shipped 5 m windows: test_live_prometheus.py).
            with redis.Redis.from_url(redis_url) as r:
                for engine in ENGINES:
                    r.set(knobs_key(DEFAULT_PREFIX, engine), json.dumps({"*": {"error_ratio": 0}}))
            # Healthy for a while: nothing pending or firing, every overview cell that
            # is coloured is green (the stack's Prometheus scrapes every 5 s).
            wait_for(lambda: live.query(api, "nautilus_probe:system_error_ratio:rate"), 40)
            time.sleep(20)  # the knobs applied, and the 15 s windows past the start
            assert live.query(api, "ALERTS") == []
            service_now = {**overview, "panels": [p for p in overview["panels"]
                                                  if p["type"] == "stat"][:6]}
            assert len(live.query(api, service_now["panels"][0]["targets"][0]["expr"])) == 1
            assert live.red_cells(api, overview) == []
            # Earlier stacks and test runs on this machine pushed verdicts (the README
            # flow's test, before this file): this stack's Pushgateway has a store of
            # its own, so its capacity row shows none ("no load test yet", -1, or, for
            # what no command measures, -2).
            wait_for(lambda: live.query(api, 'up{job="pushgateway"} == 1'), 20)
            verdicts = live.capacity_rows(api, overview)
            assert verdicts and {r["value"] for r in verdicts} == {-1, -2}, verdicts

            def knobs(*args: str) -> None:
                subprocess.run([sys.executable, "-m", "nautilus_probe", "knobs", "risk", *args,
                                "--redis.url", redis_url], cwd=ROOT, check=True, timeout=30)
            knobs("--error-ratio", "1")
            wait_for(lambda: 'knobs: risk {"*": {"error_ratio": 1.0}}' in log.read_text(), 10)
            wait_for(lambda: "alert firing: EngineAvailabilityBudgetBurn risk (page)"
                     in log.read_text(), 60)
            # Alertmanager waits group_wait (5 s in the local stack) before notifying.
            wait_for(lambda: "PAGER firing: EngineAvailabilityBudgetBurn risk"
                     in log.read_text(), 60)
            knobs("--clear")
            cleared = time.monotonic()
            wait_for(lambda: "knobs: risk cleared" in log.read_text(), 10)
            # recent (15 s) + keep_firing_for (4 s) + a scrape and an evaluation (5 s
            # each) + the console's poll (5 s): the test windows' "within 10 minutes".
            wait_for(lambda: "alert resolved: EngineAvailabilityBudgetBurn risk (page)"
                     in log.read_text(), 45)
            print(f"resolved {time.monotonic() - cleared:.1f} s after the knob was cleared")
            # The pager hears of it within the local group_interval (5 s) and a poll:
            # what resolved and for how long, not the firing summary again.
            resolved = time.monotonic()
            wait_for(lambda: "PAGER resolved: EngineAvailabilityBudgetBurn risk — no longer "
                     "firing (it fired at " in log.read_text(), 20)
            print(f"delivered {time.monotonic() - resolved:.1f} s after the console's resolved")
            text = log.read_text()
            fired = set(re.findall(r"alert firing: (\S+ \S*)", text))
            assert fired <= {"EngineAvailabilityBudgetBurn risk"}, text
            assert text.count("PAGER firing:") == 1, text  # exactly one page delivered
            assert "TICKET firing" not in text  # inhibited by the page
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0, log.read_text()
            took = time.monotonic() - sent
            # Ctrl-C: the console says what it stops, in order, then that it stopped, and
            # within the bound (every child on its own SIGTERM: none was killed).
            stopped, seconds = shutdown(log.read_text(), "SIGINT")
            assert stopped == ("Prometheus, Alertmanager, the Pushgateway, the exporter, the "
                               "WebSocket engines, 2 monoliths, 9 engines, Redis"), stopped
            assert seconds <= STOP_BOUND_S and seconds <= took + 0.05, (seconds, took)  # .1f
            print(f"stopped in {seconds} s ({took:.1f} s from SIGINT to exit)")
        finally:
            if proc.poll() is None:
                proc.terminate()  # the stack stops its children (a kill would orphan them)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    print(log.read_text())


def test_a_bad_engines_file_is_refused_before_anything_starts(tmp_path) -> None:
    bad = tmp_path / "synthetic.yml"
    bad.write_text("defaults:\n  error_ratio: 2\nengines: {risk: {}}\n")
    done = subprocess.run([sys.executable, "-m", "nautilus_probe", "stack", "--no-prometheus",
                           "--web.listen-address", f"127.0.0.1:{free_port()}",
                           "--synthetic.config-file", str(bad)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "error_ratio" in done.stderr and "Traceback" not in done.stderr
    assert "stack is up" not in done.stdout


def test_free_ports_lie_outside_the_kernels_ephemeral_range() -> None:
    """Ports for the stack's (and the tests') servers are picked where no outgoing
    connection can take them before the server binds them."""
    import socket

    from exporter.listen import _ephemeral

    low, high = _ephemeral()
    ports = [free_port() for _ in range(50)]
    assert all(not low <= p <= high and 1024 < p < 65536 for p in ports), (low, high, ports)
    assert len(set(ports)) > 40  # picked at random, not one after another
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # free indeed


def test_a_taken_websocket_port_is_named_with_the_flag_that_moves_it(tmp_path) -> None:
    """Two stacks at once (or a stack beside the suite): the second one's engines would
    not bind. It says which port, and which flag moves them, before starting anything."""
    import socket

    taken = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", taken))
        s.listen()
        done = subprocess.run([sys.executable, "-m", "nautilus_probe", "stack", "--no-prometheus",
                               "--web.listen-address", f"127.0.0.1:{free_port()}",
                               "--websocket.port", f"{free_port()},{taken},{free_port()}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {taken} is in use" in done.stderr and "--websocket.port=" in done.stderr
    assert "Traceback" not in done.stderr and "stack is up" not in done.stdout
    assert "Redis at" not in done.stdout  # refused before anything started


def test_the_websocket_ports_flag(tmp_path, monkeypatch) -> None:
    """8080-8082 unless moved (the README's default); a first port or all three; a bad
    value names the flag and exits 2."""
    from nautilus_loadtest.cli import stack_websocket_urls
    from nautilus_probe.cli import build_parser
    from nautilus_probe.websocket_ports import DEFAULT, describe, endpoints, moved_config, parse
    from synthetic import knob_command

    assert build_parser().parse_args(["stack"]).websocket_port == "8080"
    # `loadtest websocket` with no stack running dials where a stack puts its engines.
    monkeypatch.setattr(knob_command, "STACK_STATE", tmp_path / "no-stack.json")
    assert stack_websocket_urls() == endpoints(DEFAULT) == [
        f"ws://127.0.0.1:{p}/ws/engine/status" for p in (8080, 8081, 8082)]
    assert parse("8080") == (8080, 8081, 8082) and describe(parse("8080")) == "8080-8082"
    assert parse("9000, 9100,9001") == (9000, 9100, 9001)
    assert describe((9000, 9100, 9001)) == "9000, 9100, 9001"
    shipped = ROOT / "config" / "exporter.yml"
    assert moved_config(shipped, parse("8080"), tmp_path) == shipped  # nothing to move
    moved = moved_config(shipped, parse("9000,9100,9001"), tmp_path).read_text()
    assert moved == (shipped.read_text().replace(":8080", ":9000").replace(":8081", ":9100")
                     .replace(":8082", ":9001"))
    assert "redis://127.0.0.1:6379/0" in moved  # only the WebSocket engines' ports
    for bad in ("x", "8080,8081", "0", "65534", "9000,9000,9001", ""):
        done = subprocess.run([sys.executable, "-m", "nautilus_probe", "stack", "--no-prometheus",
                               "--websocket.port", bad], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 2, (bad, done.stdout + done.stderr)
        assert done.stderr.startswith("nautilus-probe: --websocket.port: expected"), done.stderr
        assert "Traceback" not in done.stderr and "Redis at" not in done.stdout
