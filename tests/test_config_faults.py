"""Hostile and mistaken configuration files: each is rejected with the key (or
line) named, exit 2 and no traceback, quickly and in little memory; a running
exporter keeps its configuration when a reload is rejected."""

from __future__ import annotations

import copy
import random
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import Config
from nautilus_config.errors import ConfigError
from nautilus_testkit import ROOT, free_port, http_post, wait_for

from .conftest import write_config

SHIPPED = yaml.safe_load((ROOT / "config" / "exporter.yml").read_text())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nautilus_probe", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("text", "message"), [
    ("engines: {risk: {alert: {rate: .nan}}}", "engines.risk.alert.rate: must be a positive number, got nan"),
    ("engines: {risk: {alert: {rate: .inf}}}", "engines.risk.alert.rate: must be a positive number, got inf"),
    ("engines: {risk: {alert: {timeout: .inf}}}", "engines.risk.alert.timeout: must be a duration"),
    ("engines: {risk: {alert: {timeout: -.inf}}}", "engines.risk.alert.timeout: must be a duration"),
    ("engines: {risk: {alert: {rate: 1e9}}}", "engines.risk.alert.rate: must be at most 50,000"),
    ("engines: {risk: {alert: {timeout: 1:30}}}", "engines.risk.alert.timeout: must be a duration"),
    ("engines: {risk: {alert: {payload_size: 0o777777777}}}", "engines.risk.alert.payload_size"),
    ("engines: {risk: {alert: {payload_size: 10000000}}}", "engines.risk.alert.payload_size: must be at most 65,536"),
    ("engines: {risk: {alert: {}}}\nmax_in_flight: 100000000", "max_in_flight: must be at most"),
    ("engines: {risk: {alert: {}}}\nwebsocket: {endpoints: ['ws://x/ws'], heartbeat_rate: .nan}",
     "websocket.heartbeat_rate: must be a positive number, got nan"),
    ("engines: {risk: {alert: {}}}\nengines: {ml: {process: {}}}", "engines: appears twice (line 2)"),
    ("engines: {risk: {alert: {}, alert: {}}}", "engines.risk.alert: appears twice (line 1)"),
    ("websocket:\n  endpoints:\n    - {url: ws://127.0.0.1:1/ws, url: ws://127.0.0.1:2/ws}",
     "websocket.endpoints[0].url: appears twice (line 3)"),
    ("redis_url: redis://127.0.0.1:99999/0\nengines: {risk: {alert: {}}}", "redis_url: is not a valid URL"),
    ("redis_url: 'redis://[::1/0'\nengines: {risk: {alert: {}}}", "redis_url: is not a valid URL (Invalid IPv6 URL)"),
    # Plain decimal numbers only: no octal, underscores, hex or base 60, tagged or not.
    ("engines: {risk: {alert: {timeout: 017}}}", "engines.risk.alert.timeout: must be a duration such as 250ms or 2s, got '017'"),
    ("engines: {risk: {alert: {rate: 1_000}}}", "engines.risk.alert.rate: must be a positive number, got '1_000'"),
    ("engines: {risk: {alert: {rate: 0x10}}}", "engines.risk.alert.rate: must be a positive number, got '0x10'"),
    ("engines: {risk: {alert: {rate: !!int 0x10}}}", "line 1: '0x10' is not a plain decimal number"),
    ("engines: {risk: {alert: {rate: !!float 1_0.5}}}", "line 1: '1_0.5' is not a plain decimal number"),
    ("engines: {risk: {alert: {timeout: '02s'}}}", "engines.risk.alert.timeout: must be a duration"),
    # Names and prefixes: no trailing newline, whitespace or control characters.
    ('engines: {"risk\\n": {alert: {}}}', "engines.risk\\n: must be a lower-case name"),
    ('engines: {risk: {"alert\\n": {}}}', "must be a lower-case name like risk or limit_check, got 'alert\\n'"),
    ('prober_id: "exporter\\n"\nengines: {risk: {alert: {}}}', "prober_id: must be a lower-case name"),
    ('prefix: "nautilus:probe\\n"\nengines: {risk: {alert: {}}}', "prefix: must be 1-64 letters"),
    ('prefix: "a{b}"\nengines: {risk: {alert: {}}}', "prefix: must be 1-64 letters"),
    ('engines: {risk: {alert: {}}}\ntrading_request: {legs: {"risk\\n": alert}}', "trading_request.legs.risk\\n: must be a lower-case name"),
    ('engines: {risk: {alert: {}}}\nself_reports: {engines: ["risk\\n"]}', "self_reports.engines[0]: must be a lower-case name"),
    # WebSocket endpoints with a host and a valid port.
    ("websocket: {endpoints: ['ws://']}", "websocket.endpoints[0]: needs a host"),
    ("websocket: {endpoints: ['ws://127.0.0.1:99999/x']}", "websocket.endpoints[0]: is not a valid URL"),
    ("websocket: {endpoints: ['ws://[::1/x']}", "websocket.endpoints[0]: is not a valid URL (Invalid IPv6 URL)"),
    ("websocket: {endpoints: ['ws://127.0.0.1:0/x']}", "websocket.endpoints[0]: needs a host"),
    ("websocket: {endpoints: [{url: 'ws://h st/x'}]}", "websocket.endpoints[0].url: must not contain spaces"),
    ("redis_url: redis://:6379/0\nengines: {risk: {alert: {}}}", "redis_url: needs a host"),
    ("redis_url: redis://127.0.0.1:0/0\nengines: {risk: {alert: {}}}", "redis_url: needs a host"),
    ("engines: {risk: {alert: {rate: 40000}, limit_check: {rate: 40000}, alert2: {rate: 40000}}}",
     "engines: adds up to 120,000 probes/s"),
    # The documented grammar, strictly: no space before a unit, a port in a Redis
    # URL, a key once per mapping even through a YAML merge key.
    ("engines: {risk: {alert: {timeout: 1 h}}}", "engines.risk.alert.timeout: must be a duration such as 250ms or 2s, got '1 h'"),
    ("engines: {risk: {alert: {timeout: ' 2s'}}}", "engines.risk.alert.timeout: must be a duration"),
    ("redis_url: redis://127.0.0.1/0\nengines: {risk: {alert: {}}}", "redis_url: needs a port (host:6379)"),
    ("redis_url: redis+cluster://10.0.0.1\nengines: {risk: {alert: {}}}", "redis_url: needs a port"),
    ("base: &d {rate: 1, timeout: 2s}\nengines: {risk: {alert: {<<: *d, rate: 3}}}",
     "engines.risk.alert.rate: appears twice"),
    ("base: &d {rate: 1}\nmore: &e {rate: 2}\nengines: {risk: {alert: {<<: [*d, *e]}}}",
     "engines.risk.alert.rate: appears twice (merged by << at line 3)"),
    ("a: &a [1]\n" + "".join(f"b{i}: &b{i} [*a, *a]\n" for i in range(70)), "more than 64 YAML aliases"),
    ("engines: " + "[" * 100 + "]" * 100, "nested deeper than 32 levels"),
])
def test_hostile_values_are_rejected_with_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(str(path))
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}: ")  # the file, then the key or line


def test_a_merge_key_without_a_key_twice_is_read(tmp_path: Path) -> None:
    path = tmp_path / "merge.yml"
    path.write_text("x-defaults: &d {rate: 7}\nengines: {risk: {alert: {<<: *d, timeout: 1s}}}\n")
    with pytest.raises(ConfigError, match="x-defaults"):  # the exporter knows no such key...
        Config.load(str(path))
    from nautilus_config.strict_yaml import load_yaml
    data, _ = load_yaml(str(path))  # ...but the reader merged it as YAML says
    assert data["engines"]["risk"]["alert"] == {"rate": 7, "timeout": "1s"}


def test_number_and_name_rules_at_the_command_line(tmp_path: Path) -> None:
    """The same rules through `--config.check`: exit 2, file and key, no traceback."""
    path = tmp_path / "bad.yml"
    path.write_text("engines: {risk: {alert: {timeout: 017}}}\n")
    proc = cli("exporter", "--config.file", str(path), "--config.check")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"nautilus-probe: config error: {path}: engines.risk.alert."
                                   "timeout: must be a duration such as 250ms or 2s, got '017'")


def test_too_many_series_and_too_big_a_file(tmp_path: Path) -> None:
    path = tmp_path / "many.yml"
    path.write_text(yaml.safe_dump({"engines": {f"e{i}": {f"op{j}": {"rate": 1} for j in range(60)}
                                                for i in range(9)}}))
    with pytest.raises(ConfigError, match="names 540 engine × op series; at most 500"):
        Config.load(str(path))
    path.write_text("# padding\n" * 120_000)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        Config.load(str(path))


def mutations(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(description, file text) of n mutated copies of the shipped config: type
    swaps, unknown keys, out-of-range values, syntax errors."""
    swaps: list[Any] = [[1, 2], {"x": 1}, "text", True, None, -1, 0, 1e12, float("nan"),
                        float("inf"), "", "1:30", [[[]]], {"": None}]

    def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
        out = [prefix] if prefix else []
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        return out

    leaves = paths(SHIPPED)
    out = []
    for i in range(n):
        data = copy.deepcopy(SHIPPED)
        kind = i % 4
        where = rng.choice(leaves)
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        if kind == 0:
            parent[where[-1]] = rng.choice(swaps)
            out.append((f"swap {'.'.join(map(str, where))}", yaml.safe_dump(data)))
        elif kind == 1:
            target = parent[where[-1]] if isinstance(parent[where[-1]], dict) else parent
            target[f"typo_{i}"] = 1
            out.append((f"unknown key under {'.'.join(map(str, where))}", yaml.safe_dump(data)))
        elif kind == 2:
            parent[where[-1]] = rng.choice([-5, 0, 10**9, -0.001, 1e308, "-2s", "99h"])
            out.append((f"out of range {'.'.join(map(str, where))}", yaml.safe_dump(data)))
        else:
            text = yaml.safe_dump(data)
            cut = rng.randrange(1, len(text))
            broken = text[:cut] + rng.choice(["\t", ": [", "{", "]", "\"", ": : :", "\n  - x\n y"]) + text[cut:]
            out.append((f"syntax at {cut}", broken))
    return out


def test_hundreds_of_mutated_configs_fail_cleanly(tmp_path: Path) -> None:
    """Each mutation either loads (some are still valid) or raises ConfigError naming
    a key or a line: never another exception, never slowly, never big."""
    rng = random.Random(20261128)
    path = tmp_path / "mutated.yml"
    rejected = 0
    tracemalloc.start()
    for description, text in mutations(rng, 400):
        path.write_text(text)
        started = time.monotonic()
        try:
            Config.load(str(path))
        except ConfigError as exc:
            rejected += 1
            message = str(exc)
            assert message.startswith(f"{path}: ") and len(message) > len(str(path)) + 5, \
                (description, message)
        assert time.monotonic() - started < 2, description
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100 * 2**20
    assert rejected >= 250, rejected


@pytest.mark.parametrize("text", [
    "engines: {risk: {alert: {rate: .nan}}}",
    "engines: {risk: {alert: {}}}\nengines: {}",
    "engines: " + "[" * 100 + "]" * 100,
    "\t\tengines: [",
])
def test_the_command_exits_2_without_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    started = time.monotonic()
    proc = cli("exporter", "--config.file", str(path), "--config.check")
    assert time.monotonic() - started < 10
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("nautilus-probe: config error: ") and "Traceback" not in proc.stderr


def test_a_rejected_reload_keeps_probing(redis_url: str, exporter, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "exp.yml", redis_url, {"risk": {"alert": {"rate": 50}}})
    ex = exporter(cfg)
    for bad in ("engines: {risk: {alert: {rate: .nan}}}", "engines: {risk: {alert: {rate: .inf}}}"):
        cfg.write_text(bad)
        status, body = http_post(f"{ex.base}/-/reload")
        assert status == 500 and "rate: must be a positive number" in body
        assert ex.value("nautilus_probe_config_last_reload_successful") == 0
    before = ex.value("nautilus_probe_requests_total")
    wait_for(lambda: ex.value("nautilus_probe_requests_total") >= before + 25, 5)
    write_config(cfg, redis_url, {"risk": {"alert": {"rate": 50}, "limit_check": {"rate": 50}}})
    assert http_post(f"{ex.base}/-/reload") == (200, "Reloaded.\n")
    assert ex.value("nautilus_probe_config_last_reload_successful") == 1
    wait_for(lambda: ex.value("nautilus_probe_requests_total", op="limit_check") >= 10, 5)
    assert ex.value("nautilus_probe_loop_restarts_total") == 0


def test_busy_port_exits_at_once_naming_the_address(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        proc = cli("exporter", "--config.file", "config/exporter.yml",
                   "--redis.url", f"redis://127.0.0.1:{free_port()}/0",
                   "--web.listen-address", f"127.0.0.1:{port}")
        took = time.monotonic() - started
    assert proc.returncode == 1 and took < 2, (took, proc.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in proc.stderr


@pytest.mark.parametrize("url", ["ftp://x", "redis://:6379", "redis://127.0.0.1:70000/0",
                                 "redis+sentinel://127.0.0.1/bus"])
def test_engines_check_redis_url_as_the_exporter_does(tmp_path, url: str) -> None:
    """`engines --redis.url` is checked like the exporter's: exit 2 naming the flag,
    with or without --config.check, never a traceback."""
    syn = tmp_path / "syn.yml"
    syn.write_text("engines: {risk: {}}\n")
    exp = tmp_path / "exp.yml"
    exp.write_text("engines: {risk: {limit_check: {rate: 1}}}\n")
    runs = [cli("engines", "--config.file", str(syn), "--redis.url", url, "--config.check"),
            cli("engines", "--config.file", str(syn), "--redis.url", url),
            cli("monolith", "--redis.url", url),
            cli("exporter", "--config.file", str(exp), "--redis.url", url, "--config.check")]
    messages = set()
    for proc in runs:
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("nautilus-probe: config error: --redis.url: "), proc.stderr
        messages.add(proc.stderr)
    assert len(messages) == 1, messages  # the same words everywhere


def test_log_level_before_or_after_the_subcommand() -> None:
    """docs/configuration.md lists --log.level among the exporter's flags: it works
    there, before the subcommand too, and the later one wins."""
    from nautilus_probe.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["exporter", "--log.level", "debug"]).log_level == "debug"
    assert parse(["--log.level", "error", "engines"]).log_level == "error"
    assert parse(["--log.level", "error", "exporter", "--log.level", "warn"]).log_level == "warn"
    assert parse(["loadtest", "containerized"]).log_level == "info"
    proc = cli("exporter", "--config.file", "config/exporter.yml", "--config.check",
               "--log.level", "loud")
    assert proc.returncode == 2 and "invalid choice: 'loud'" in proc.stderr


def help_entries(page: str) -> list[tuple[str, str]]:
    """(invocation, help text) of every argument a --help page lists, after its
    description: argparse indents an argument by 2 (a subcommand in the list by 4)
    and its help's further lines by more, at the help column."""
    found: list[tuple[str, str]] = []
    listing = False
    for line in page.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            listing = line in ("positional arguments:", "options:")
        elif listing and indent in (2, 4):
            invocation, _, text = line.strip().partition("  ")
            found.append((invocation, text.strip()))
        elif listing and found:
            found[-1] = (found[-1][0], f"{found[-1][1]} {line.strip()}".strip())
    return found


def test_every_command_documents_every_flag_and_its_default(capsys, monkeypatch) -> None:
    """`nautilus-probe <command> --help`, Prometheus-style: exit 0, a description, every
    argument with help text, every flag that takes a value with its default (or
    "required")."""
    import argparse

    from nautilus_probe.cli import build_parser

    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps at the terminal's width
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    assert {"exporter", "engines", "monolith", "ws-engine", "knobs", "loadtest", "merge",
            "validate", "review", "stack"} <= set(commands), commands
    pages = {}
    for command in ["", *commands]:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*command.split(), "--help"])
        assert done.value.code == 0, command
        pages[command] = capsys.readouterr().out
    undocumented, no_default = [], []
    for command, page in pages.items():
        entries = help_entries(page)
        assert len(entries) >= 3, (command, page)  # -h, --log.level and one of its own
        description = page.split("\n\n")[1]
        assert not description.startswith(("positional arguments:", "options:")), page
        for invocation, text in entries:
            if not text:
                undocumented.append(f"{command or 'nautilus-probe'} {invocation}")
            # "--flag VALUE" or "--flag {a,b}": it takes a value, so it has a default.
            elif (re.fullmatch(r"(-\S+, )*-\S+ [^-\s]\S*", invocation)
                  and not re.search(r"\b(default|required)\b", text)):
                no_default.append(f"{command} {invocation}: {text}")
    assert undocumented == [], undocumented
    assert no_default == [], no_default
    stack = pages["stack"]
    assert "Ctrl-C or SIGTERM stops every part" in stack and "nautilus-probe-stack.json" in stack
    assert "--web.listen-address ADDRESS" in stack
    assert re.search(r"address the stack's exporter serves /metrics on \(default:\s+"
                     r"127\.0\.0\.1:9478\)", stack), stack
    assert re.search(r"\(default:\s+info\)", pages[""]), pages[""]
    # The real command, as a user types it.
    proc = cli("stack", "--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "Ctrl-C or SIGTERM stops every part" in proc.stdout
