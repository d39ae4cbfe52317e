"""The lint and type gates of `./run test`: ruff with the project's rule set
(pyproject.toml) over the whole tree, and mypy --strict over every package. Every
remaining suppression carries its reason."""

from __future__ import annotations

import re
import subprocess
import sys

from nautilus_testkit import ROOT

SOURCES = ("alerts", "bench", "dashboards", "examples", "exporter", "nautilus_loadtest",
           "nautilus_probe", "nautilus_testkit", "nautilus_wire", "synthetic", "tests")


def test_ruff_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Every package the suite runs (tests/, bench/ and examples/ are scripts and tests
# of them, not packages).
TYPED = ("alerts", "dashboards", "exporter", "nautilus_config", "nautilus_loadtest",
         "nautilus_probe", "nautilus_testkit", "nautilus_wire", "synthetic")


def test_mypy_strict_on_every_package(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                           str(tmp_path / "cache"), *TYPED], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_package_is_typed() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(TYPED)


def test_every_suppression_says_why() -> None:
    """A `noqa` or `type: ignore` names its rule and gives its reason after it."""
    bare = []
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                for m in re.finditer(r"#\s*(noqa|type:\s*ignore)\b(.*)", line):
                    rest = m.group(2)
                    if not re.match(r"(:\s*[A-Z]+\d+|\[[a-z-, ]+\])\s*(#|-)?\s*\S", rest):
                        bare.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert bare == [], "suppressions without a rule and a reason:\n" + "\n".join(bare)
