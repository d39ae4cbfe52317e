"""The local stack: its own redis-server, the nine synthetic engines, the monolith,
the exporter and, when installed, Prometheus and Alertmanager with the generated
rules (observe.py); each a child process stopped by PID on Ctrl-C or SIGTERM (in
waves, Redis last). The console says what changes: knobs, alert states,
notifications, and what is stopped and how long stopping took."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from collections.abc import Callable
from typing import Any, cast

import redis

from exporter.listen import parse_listen_address
from nautilus_wire import protocol
from synthetic.config import SyntheticConfig
from synthetic.knob_command import STACK_STATE

from . import ROOT, observe, websocket_ports
from .redis_server import RedisServer, RedisServerError

CONFIG_DIR = ROOT / "config"


# The load tests' own monolith answers on its own stream namespace, which no exporter
# probes: a baseline run against it measures the monolith alone while the stack's
# exporter keeps probing the other one (a baseline refuses a shared monolith).
LOADTEST_PREFIX = "nautilus:loadtest"


def command_name() -> str:
    """How to run `nautilus-probe` from this shell, as the banner prints it: the bare
    name only when PATH finds this installation's, else its path (`.venv/bin/...`
    after `./run stack`), else this Python with -m."""
    script = Path(sys.executable).parent / "nautilus-probe"
    if not script.exists():
        return f"{sys.executable} -m nautilus_probe"
    found = shutil.which("nautilus-probe")
    if found and Path(found).resolve() == script.resolve():
        return "nautilus-probe"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def loadtest_flow(cmd: str, redis_url: str) -> str:
    """The README's load-test flow against this stack, each command as it runs."""
    return (f"Load test, then validate (about 6 minutes; results/ and results/report/ in this "
            f"folder):\n"
            f"  {cmd} loadtest baseline --redis.url {redis_url} --prefix {LOADTEST_PREFIX}\n"
            f"  {cmd} loadtest containerized --redis.url {redis_url}\n"
            f"  {cmd} loadtest websocket\n"
            f"  {cmd} validate\n")


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def spawn(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    # Own session: Ctrl-C reaches only us, and we stop the children in order.
    return subprocess.Popen(argv, start_new_session=True, **kw)  # type: ignore[call-overload,no-any-return]  # **kw


def exited(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes] | None:
    return next((p for p in procs if p.poll() is not None), None)


def describe(proc: subprocess.Popen[bytes]) -> str:
    """The subcommand a child runs ("exporter", "engines", ...), or its program."""
    args = [str(a) for a in proc.args]  # type: ignore[union-attr]  # always a list here
    if args[1:3] != ["-m", "nautilus_probe"]:
        return Path(args[0]).name
    rest = args[3:]
    while rest and rest[0].startswith("--"):
        rest = rest[2:]  # a global flag and its value
    return rest[0] if rest else "nautilus-probe"


def _wait(ready: Callable[[], bool], timeout: float,
          procs: list[subprocess.Popen[bytes]]) -> str | None:
    """None once `ready()`; otherwise why not: a child exited, or "" when time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (dead := exited(procs)) is not None:
            return f"{describe(dead)} exited with {dead.returncode} (its error is above)"
        if ready():
            return None
        time.sleep(0.1)
    return ""


def wait_responders(redis_url: str, prefix: str, engines: list[str], timeout: float,
                    procs: list[subprocess.Popen[bytes]]) -> str | None:
    """None when every engine reads its requests (it makes its consumer group just
    before it starts reading); otherwise why not. Probing before that would count
    the engines' start-up as failures."""
    streams = {e: protocol.request_stream(prefix, e, "normal") for e in engines}
    waiting = list(engines)
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        def ready() -> bool:
            waiting[:] = [e for e in waiting if not _has_group(r, streams[e])]
            return not waiting
        problem = _wait(ready, timeout, procs)
    if problem == "":
        return f"engines not reading their requests after {timeout:.0f} s: {', '.join(waiting)}"
    return problem


def _has_group(r: redis.Redis, stream: str) -> bool:
    try:
        groups = cast(list[dict[str, Any]], r.xinfo_groups(stream))  # a sync client: a list
        return any(g["name"] == protocol.RESPONDER_GROUP for g in groups)
    except redis.ResponseError:
        return False  # no stream yet


def wait_ready(url: str, timeout: float, procs: list[subprocess.Popen[bytes]]) -> str | None:
    """None when `url` answers 200; otherwise why not (a child exited, or time ran out)."""
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False
    problem = _wait(ready, timeout, procs)
    if problem == "":
        return f"the exporter did not become ready within {timeout:.0f} s"
    return problem


# Each child exits within signals.EXIT_WITHIN_S of SIGTERM; one that has not after
# this long is killed.
STOP_WAIT_S = 5.0

# describe()'s name of a child -> what the console calls it (a name in _COUNTED takes
# a count and an "s") and its stop wave: what reads the exporter (Prometheus,
# Alertmanager, the Pushgateway), the exporter, what it probes, last the Redis they
# all use. An engine stopped under a running exporter would show as failing probes.
_CHILDREN = {"prometheus": ("Prometheus", 0), "prometheus-alertmanager": ("Alertmanager", 0),
             "alertmanager": ("Alertmanager", 0),
             "prometheus-pushgateway": ("the Pushgateway", 0),
             "pushgateway": ("the Pushgateway", 0), "exporter": ("the exporter", 1),
             "ws-engine": ("the WebSocket engines", 2), "monolith": ("monolith", 2),
             "engines": ("engine", 2), "redis-server": ("Redis", 3)}
_COUNTED = ("engine", "monolith")


def _wave(proc: subprocess.Popen[bytes]) -> int:
    return _CHILDREN.get(describe(proc), ("", 0))[1]  # a child not named here: first


def in_stop_order(procs: list[subprocess.Popen[bytes]]) -> list[subprocess.Popen[bytes]]:
    """By wave, the newest first within one."""
    return sorted(reversed(procs), key=_wave)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> list[subprocess.Popen[bytes]]:
    """In waves, the children of a wave together: the engines' teardowns (a few tenths
    of a second each) overlap instead of adding up. At most STOP_WAIT_S a wave, then
    SIGKILL: the children that needed it."""
    killed = []
    ordered = in_stop_order(procs)
    for wave in sorted({_wave(p) for p in procs}):
        mine = [p for p in ordered if _wave(p) == wave]
        for proc in mine:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for proc in mine:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(proc)
    return killed


def listing(procs: list[subprocess.Popen[bytes]]) -> str:
    """"Prometheus, the exporter, 2 monoliths, 9 engines, Redis": `procs` as the
    console names them, in their order."""
    counts: dict[str, int] = {}
    for proc in procs:
        name = _CHILDREN.get(describe(proc), (describe(proc), 0))[0]
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}{'s' if n > 1 else ''}" if name in _COUNTED else name
                     for name, n in counts.items())


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def say_while_stopping(text: str, below: bool = False) -> None:
    """say(), unless the console is gone (a closed pipe or terminal): the children are
    stopped all the same. `below`: on a new line (a terminal echoed ^C)."""
    try:
        if below:
            print()
        say(text)
    except OSError:
        pass


def run_stack(args: argparse.Namespace) -> int:
    host, port = parse_listen_address(args.listen_address)
    ws_ports = websocket_ports.parse(args.websocket_port)
    synthetic_path = args.synthetic_config or str(CONFIG_DIR / "synthetic.yml")
    synthetic = SyntheticConfig.load(synthetic_path)  # a bad file fails before anything starts
    # Before anything starts: the engines would start and the stack then fail.
    for ws_port in ws_ports:
        if port_in_use(ws_port):
            print(f"nautilus-probe: port {ws_port} is in use (another stack?); the stack's "
                  f"WebSocket engines need {websocket_ports.describe(ws_ports)}: move them "
                  f"with {websocket_ports.FLAG}=<the first of three free ports>",
                  file=sys.stderr)
            return 1
    redis = RedisServer(args.redis_port or None)
    redis_url = redis.url
    procs: list[subprocess.Popen[bytes]] = []
    # SIGINT explicitly: a shell starts a background job (`./run stack &`) with SIGINT
    # ignored, and Python keeps an inherited "ignore".
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="nautilus-stack-"))
    receiver: observe.Receiver | None = None
    why = ""  # what stopped the stack, for the shutdown line
    try:
        try:
            redis.start(start_new_session=True)
        except RedisServerError as exc:
            print(f"nautilus-probe: {exc}", file=sys.stderr)
            return 1
        assert redis.proc is not None
        procs.append(redis.proc)
        exporter_path = str(websocket_ports.moved_config(CONFIG_DIR / "exporter.yml", ws_ports,
                                                         tmp))
        # Children log warnings and errors only: the banner below stays readable.
        py = [sys.executable, "-m", "nautilus_probe", "--log.level", "warn"]
        engines = synthetic.engines

        for spec in engines:  # one process each, as deployed
            procs.append(spawn([*py, "engines", "--config.file", synthetic_path,
                                "--engine", spec.name, "--redis.url", redis_url]))
        procs.append(spawn([*py, "monolith", "--redis.url", redis_url]))
        procs.append(spawn([*py, "monolith", "--redis.url", redis_url,
                            "--prefix", LOADTEST_PREFIX]))
        procs.append(spawn([*py, "ws-engine", *[a for p in ws_ports for a in ("--port", str(p))]]))
        names = [spec.name for spec in engines] + [protocol.BASELINE_ENGINE]
        for prefix, waiting in ((synthetic.prefix, names),
                                (LOADTEST_PREFIX, [protocol.BASELINE_ENGINE])):
            if (problem := wait_responders(redis_url, prefix, waiting, 30, procs)) is not None:
                print(f"nautilus-probe: {problem}", file=sys.stderr)
                return 1
        # `loadtest websocket` finds the engines here wherever they listen.
        state = {"pid": os.getpid(), "redis_url": redis_url,
                 "websocket_urls": websocket_ports.endpoints(ws_ports)}
        STACK_STATE.write_text(json.dumps(state))
        cmd = command_name()
        knob_help = (f"{loadtest_flow(cmd, redis_url)}"
                     f"Inject a fault: {cmd} knobs risk --error-ratio 1   "
                     "(--clear to undo; each change is shown below)\n")
        watches: list[tuple[Callable[[], bool], Callable[[], None]]] = [
            (observe.ticker(1.0), observe.KnobWatch(redis_url, synthetic.prefix, say).poll)]
        where = (f"\nnautilus-probe stack is up: Redis at {redis_url}, {len(engines)} engines, "
                 f"the monolith (and the load tests' own, prefix {LOADTEST_PREFIX}), "
                 f"WebSocket engines on ports {websocket_ports.describe(ws_ports)}.\n")
        if args.no_exporter:
            print(f"{where}No exporter (--no-exporter): nothing else sends requests.\n"
                  f"{knob_help}Press Ctrl-C to stop.\n", flush=True)
        else:
            procs.append(spawn([*py, "exporter", "--config.file", exporter_path, "--redis.url",
                                redis_url, "--web.listen-address", args.listen_address,
                                "--web.enable-lifecycle"]))
            base = f"http://{host or '127.0.0.1'}:{port}"
            if (problem := wait_ready(f"{base}/-/ready", 30, procs)) is not None:
                print(f"nautilus-probe: {problem}", file=sys.stderr)
                return 1
            observing = ""
            if args.no_prometheus:
                observing = "No Prometheus or Alertmanager (--no-prometheus).\n"
            elif observe.binaries() is None:
                observing = ("Prometheus and Alertmanager are not installed (./run setup "
                             "installs them): no rules are evaluated.\n")
            else:
                seen = observe.start(tmp, f"{host or '127.0.0.1'}:{port}", Path(args.rules),
                                     say, spawn)
                receiver, api = seen.receiver, seen.prometheus
                procs.extend(seen.procs)
                if (problem := wait_ready(f"{api}/-/ready", 30, procs)) is not None:
                    print(f"nautilus-probe: Prometheus: {problem}", file=sys.stderr)
                    return 1
                watches.append((observe.ticker(5.0), observe.AlertWatch(api, say).poll))
                observing = (f"Prometheus: {api} (rules: {args.rules}), Alertmanager: "
                             f"{seen.alertmanager};\npages and tickets are printed here as "
                             "Alertmanager delivers them.\n")
                if seen.pushgateway:
                    state["pushgateway"] = seen.pushgateway
                    STACK_STATE.write_text(json.dumps(state))
                    observing += (f"Pushgateway: {seen.pushgateway} (the load tests and "
                                  "validate below push their verdicts here by themselves; it "
                                  "starts empty with every stack).\n")
                else:
                    observing += ("No Pushgateway (./run setup installs it): the overview's "
                                  "capacity row stays \"no load test yet\".\n")
            print(f"{where}Metrics: {base}/metrics\n"
                  f"Exporter config: {exporter_path} (edit, then POST {base}/-/reload)\n"
                  f"{observing}{knob_help}Press Ctrl-C to stop.\n", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            if (dead := exited(procs)) is not None:
                print(f"nautilus-probe: {describe(dead)} exited with {dead.returncode}",
                      file=sys.stderr)
                return 1
            for due, poll in watches:
                if due():
                    poll()
            time.sleep(0.2)
        why = f" (--duration {args.duration:g} s over)"
        return 0
    except KeyboardInterrupt as exc:
        why = f" ({exc.args[0] if exc.args else 'SIGINT'})"
        return 0
    finally:
        # Stopping is under way: a second SIGTERM or Ctrl-C (a supervisor that
        # signals again, an impatient user) must not abandon children half-stopped.
        # stop_all is bounded (STOP_WAIT_S a wave, then SIGKILL).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stopping = time.monotonic()
        alive = [p for p in in_stop_order(procs) if p.poll() is None]
        if alive:
            say_while_stopping(f"stopping{why}: {listing(alive)}",
                               below=why == " (SIGINT)" and sys.stdout.isatty())
        killed = stop_all(procs)
        redis.remove()
        if receiver is not None:
            receiver.close()
        try:
            if json.loads(STACK_STATE.read_text()).get("pid") == os.getpid():
                STACK_STATE.unlink()
        except (OSError, ValueError):
            pass
        shutil.rmtree(tmp, ignore_errors=True)
        if alive:
            late = (f" (killed, still running {STOP_WAIT_S:g} s after SIGTERM: "
                    f"{listing(killed)})" if killed else "")
            say_while_stopping(f"stopped in {time.monotonic() - stopping:.1f} s{late}")
