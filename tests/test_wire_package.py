"""nautilus-wire as an engine team installs it: a distribution of its own that
brings only redis, one top-level package, no side effects on the importing process;
and the engine side working against the oldest and the newest redis-py it supports
(the venvs `./run setup` makes in .venv-wire/, nautilus-wire alone in each)."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nautilus_testkit import ROOT, wait_for

from .conftest import sync_client, write_config
from .test_examples import LAT, Engine, consumers, group_ready

VENVS = {"oldest": ROOT / ".venv-wire" / "redis__5_0_1", "newest": ROOT / ".venv-wire" / "redis"}


def wheel(tmp: Path, project: Path) -> zipfile.ZipFile:
    """Built from a copy: setuptools leaves build/ and *.egg-info in the source tree."""
    src = tmp / "src"
    shutil.copytree(project, src, symlinks=False, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "node_modules", "__pycache__", "*.egg-info", "build", "tests",
        "docs", "tools", "bench", ".mypy_cache", ".pytest_cache", "mutants"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src),
                    "-w", str(tmp)], check=True, capture_output=True)
    return zipfile.ZipFile(next(tmp.glob("*.whl")))


def metadata(whl: zipfile.ZipFile) -> email.message.Message:
    name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    return email.message_from_bytes(whl.read(name))


def test_the_wire_wheel_holds_one_package_and_requires_only_redis(tmp_path) -> None:
    whl = wheel(tmp_path / "wire", ROOT / "wire")
    assert {n.split("/")[0] for n in whl.namelist()} == {
        "nautilus_wire", f"nautilus_wire-{metadata(whl)['Version']}.dist-info"}
    requires = metadata(whl).get_all("Requires-Dist")
    assert [r.split(";")[0].strip() for r in requires] == ["redis>=5.0.1", "hiredis>=2.0"]
    assert 'extra == "hiredis"' in requires[1]


def test_the_exporter_wheel_ships_no_test_kit_and_depends_on_the_wire(tmp_path) -> None:
    whl = wheel(tmp_path / "probe", ROOT)
    top = {n.split("/")[0] for n in whl.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"exporter", "synthetic", "dashboards", "alerts", "nautilus_probe", "nautilus_config",
                   "nautilus_loadtest"}  # the import names docs/engines.md lists
    assert any(r.startswith("nautilus-wire") for r in metadata(whl).get_all("Requires-Dist"))


@pytest.mark.parametrize("which", sorted(VENVS))
def test_importing_changes_nothing_in_the_process(which) -> None:
    """No event-loop policy, logging handler, signal handler or module outside the
    standard library, redis and nautilus_wire."""
    python = VENVS[which] / "bin" / "python"
    code = """
import asyncio, logging, signal, sys
policy = type(asyncio.get_event_loop_policy())
handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
before = set(sys.modules)
import nautilus_wire
from nautilus_wire import Responder, ResponderThread
assert type(asyncio.get_event_loop_policy()) is policy
assert handlers == {s: signal.getsignal(s) for s in handlers}
assert logging.getLogger().handlers == [] and logging.getLogger("nautilus_wire").handlers == []
third = {m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)
print(sorted(third))
"""
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                         cwd="/").stdout
    assert set(eval(out)) <= {"nautilus_wire", "redis", "hiredis", "async_timeout"}, out


@pytest.mark.parametrize("which", sorted(VENVS))
def test_venv_holds_nautilus_wire_redis_and_nothing_else(which) -> None:
    out = subprocess.run([str(VENVS[which] / "bin" / "python"), "-m", "pip", "list",
                          "--format=freeze"], check=True, capture_output=True, text=True).stdout
    names = {line.split("==")[0].lower() for line in out.split()}
    assert names - {"pip", "setuptools"} <= {"nautilus-wire", "redis", "async-timeout"}, names
    version = next(line for line in out.split() if line.lower().startswith("redis=="))
    assert version == "redis==5.0.1" if which == "oldest" else int(version.split("==")[1][0]) >= 7


@pytest.mark.parametrize("which", sorted(VENVS))
@pytest.mark.parametrize("example", ["asyncio", "sync"])
def test_engine_side_on_each_supported_redis_py(which, example, redis_server, exporter,
                                                tmp_path) -> None:
    engine, ops = {"asyncio": ("factor", ("factor_calculation", "cross_correlation")),
                   "sync": ("ml", ("process",))}[example]
    r = sync_client(redis_server)
    eng = Engine([str(VENVS[which] / "bin" / "python"), f"examples/{example}_engine.py"],
                 redis_server.url, tmp_path / "engine.log")
    wait_for(lambda: group_ready(r, engine), 20)
    ex = exporter(write_config(tmp_path / "exporter.yml", redis_server.url,
                               {engine: {op: {"rate": 20} for op in ops}},
                               self_reports={"interval": "1s", "engines": [engine]}))
    for op in ops:
        wait_for(lambda op=op: ex.value(f"{LAT}_count", engine=engine, op=op) >= 10, 20)
    wait_for(lambda: ex.value("nautilus_probe_engine_report_up", engine=engine) == 1, 10)
    assert ex.value("nautilus_probe_failures_total", engine=engine, op=ops[0], reason="error") == 0
    eng.terminate()
    assert eng.proc.returncode == 0, eng.log.read_text()
    assert consumers(r, engine) == []
    assert "Traceback" not in eng.log.read_text()


def test_the_wire_package_is_typed_and_checks_strictly(tmp_path) -> None:
    """Engine teams type-check against it: py.typed ships in the wheel, and the package
    passes `mypy --strict`."""
    whl = wheel(tmp_path / "wire", ROOT / "wire")
    assert "nautilus_wire/py.typed" in whl.namelist()
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                           str(tmp_path / "cache"), "nautilus_wire"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
