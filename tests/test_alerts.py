"""Generated rules: in sync with thresholds.yml, promtool-clean, every alert unit-tested."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from alerts.__main__ import render
from alerts.thresholds import Thresholds

from nautilus_testkit import ROOT

GENERATED = ROOT / "alerts" / "generated"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run ./run setup"
    return path


def test_committed_rules_match_a_fresh_generation() -> None:
    fresh = render(Thresholds.load(str(ROOT / "thresholds.yml")))
    for name, text in fresh.items():
        assert (GENERATED / name).read_text() == text, f"{name} is stale: run python -m alerts"


def test_promtool_checks_and_unit_tests_pass() -> None:
    check = subprocess.run([tool("promtool"), "check", "rules", "recording.yml", "alerts.yml"],
                           cwd=GENERATED, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([tool("promtool"), "test", "rules", "tests.yml"], cwd=GENERATED,
                          capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_every_alert_is_tested_and_has_a_runbook_section() -> None:
    rules = yaml.safe_load((GENERATED / "alerts.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((GENERATED / "tests.yml").read_text())["tests"]
    tested: dict[str, set[str]] = {}
    for case in tests:
        for step in case.get("alert_rule_test", []):
            for exp in step["exp_alerts"]:
                tested.setdefault(step["alertname"], set()).add(exp["exp_labels"]["severity"])
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for rule in rules:
        name, severity = rule["alert"], rule["labels"]["severity"]
        assert severity in tested.get(name, set()), f"{name}/{severity} never seen firing"
        assert f"\n## {name}\n" in runbook, name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}


def test_a_threshold_change_changes_the_rules(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["system"]["latency_average_seconds"]["max"] = 0.07
    data["alerting"]["for"]["critical"] = "2m"
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    rules = yaml.safe_load(render(Thresholds.load(str(path)))["alerts.yml"])["groups"][0]["rules"]
    crit = next(r for r in rules if r["alert"] == "SystemLatencyAboveTarget"
                and r["labels"]["severity"] == "critical")
    assert crit["expr"] == "nautilus_probe:system_latency_seconds:mean > 0.07"
    assert crit["for"] == "2m"


def test_bad_thresholds_name_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["system"]["error_ratio"] = {"max": "one percent"}
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "alerts", "--thresholds", str(path),
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"alerts: config error: {path}: system.error_ratio.max: "
                                   "must be a number >= 0, got 'one percent'")


def test_alertmanager_config() -> None:
    config = ROOT / "alerts" / "alertmanager.yml"
    check = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    am = yaml.safe_load(config.read_text())
    routes = {r["matchers"][0]: r["receiver"] for r in am["route"]["routes"]}
    assert routes == {'severity="critical"': "pager", 'severity="warning"': "chat"}
    assert am["route"]["group_by"] == ["alertname", "engine"]
    [inhibit] = am["inhibit_rules"]
    assert inhibit["equal"] == ["alertname", "engine"]
