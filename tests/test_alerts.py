"""Generated rules: in sync with thresholds.yml, promtool-clean, every alert unit-tested."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


HAND_WRITTEN = sorted((ROOT / "alerts" / "tests").glob("*.yml"))


def test_promtool_checks_and_unit_tests_pass() -> None:
    check = subprocess.run([tool("promtool"), "check", "rules", "recording.yml", "alerts.yml"],
                           cwd=GENERATED, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert HAND_WRITTEN, "the hand-written burn-rate tests are missing"
    # All files at once: the day-long history file alone takes a core for half a
    # minute, the others fit beside it (a busy-phase lane: tests/conftest.py).
    tests = {path: subprocess.Popen([tool("promtool"), "test", "rules", path.name],
                                    cwd=path.parent, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for path in [GENERATED / "tests.yml", *HAND_WRITTEN]}
    for path, test in tests.items():
        stdout, stderr = test.communicate(timeout=300)
        assert test.returncode == 0 and "SUCCESS" in stdout, (path.name, stdout + stderr)


def test_the_hand_written_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The same tests against rules generated with a looser objective (99.5 %: page at
    7.2 % instead of 14.4 %) must fail: they do not come from the generator."""
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["objectives"]["availability"] = 0.995
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "generated").mkdir()
    for name, text in render(Thresholds.load(str(path))).items():
        (tmp_path / "generated" / name).write_text(text)
    (tmp_path / "tests").mkdir()
    # The threshold cases (the day-long history file checks timings, and is slow).
    hand = ROOT / "alerts" / "tests" / "burn_rates.yml"
    (tmp_path / "tests" / hand.name).write_text(hand.read_text())
    test = subprocess.run([tool("promtool"), "test", "rules", hand.name],
                          cwd=tmp_path / "tests", capture_output=True, text=True)
    assert test.returncode != 0 and "FAILED" in test.stdout + test.stderr


def test_every_alert_is_tested_and_has_a_runbook_section() -> None:
    t = Thresholds.load(str(ROOT / "thresholds.yml"))
    rules = yaml.safe_load((GENERATED / "alerts.yml").read_text())["groups"][0]["rules"]
    tests = [case for path in [GENERATED / "tests.yml", *HAND_WRITTEN]
             for case in yaml.safe_load(path.read_text())["tests"]]
    tested: dict[str, set[str]] = {}
    for case in tests:
        for step in case.get("alert_rule_test", []):
            for exp in step["exp_alerts"]:
                tested.setdefault(step["alertname"], set()).add(exp["exp_labels"]["severity"])
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for rule in rules:
        name, severity = rule["alert"], rule["labels"]["severity"]
        assert severity in ("page", "ticket"), name
        assert severity in tested.get(name, set()), f"{name}/{severity} never seen firing"
        assert f"\n## {name}\n" in runbook, name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("http") and url == f"{t.alerting.runbook_url}#{name.lower()}"
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    # Capacity targets are proven under load, never paged on.
    names = {r["alert"] for r in rules}
    assert not names & {"SystemThroughputBelowTarget", "WebSocketConnectionsBelowTarget",
                        "EngineThroughputBelowTarget", "CpuBusyOutsideTarget",
                        "OperationThroughputBelowTarget", "FullCycleAboveTarget"}


def expected_annotations(name: str) -> list[dict[str, str]]:
    """Every annotation set alerts/tests/<name> expects (promtool checks them above)."""
    return [alert["exp_annotations"]
            for case in yaml.safe_load((ROOT / "alerts" / "tests" / name).read_text())["tests"]
            for step in case.get("alert_rule_test", []) for alert in step["exp_alerts"]]


def words(path: Path) -> str:
    """A document's text with its line breaks and indentation as single spaces."""
    return " ".join(path.read_text().split())


def test_the_docs_quote_what_the_rules_say_after_a_fix_and_of_a_missed_target() -> None:
    """docs/alerting.md and runbook.md quote the recovered pages and a missed capacity
    target's ticket word for word as the hand-written promtool tests expect them."""
    recovered = expected_annotations("recovered.yml")
    descriptions = {a["description"] for a in recovered if ": recovered: " in a["description"]}
    quoted = {line[2:] for line in (ROOT / "docs" / "alerting.md").read_text().splitlines()
              if line.startswith("> ") and ": recovered: " in line}
    assert len(quoted) == 2 and quoted <= descriptions, quoted - descriptions
    summary = ("risk has recovered: within its availability error budget over the last 1m; "
               "this page waits to resolve.")
    assert summary in {a["summary"] for a in recovered}
    capacity = {a["summary"] for a in expected_annotations("capacity.yml")}
    missed = ("risk latency_average_seconds missed its capacity target: measured 101ms, "
              "required at most 100ms (run containerized 2026-11-28T10:01:00+00:00).")
    assert missed in capacity
    # The burning page's and ticket's summaries: the windows, never "slowly".
    burning = {a["summary"] for a in expected_annotations("burn_rates.yml")}
    fast, sustained = ("risk is burning its availability error budget (fast: over 1h or 6h).",
                       "risk is burning its availability error budget (sustained: over 1d or 3d).")
    assert {fast, sustained} <= burning and not [s for s in burning if "slowly" in s]
    for doc, quotes in (("alerting.md", [summary, fast, sustained]),
                        ("runbook.md", [summary, missed, fast, sustained])):
        for quote in quotes:
            assert f'"{quote}"' in words(ROOT / "docs" / doc), (doc, quote)


def test_a_label_value_with_a_quote_selects_its_own_series(tmp_path: Path) -> None:
    """alerts.promql.string writes a label value as a PromQL string literal that PromQL
    reads back as the value itself: promtool selects the series by it, and sets it with
    label_replace, both compared with a literal escaped by hand."""
    from alerts.promql import string

    value = 'risk "eu\\west"\nb'  # a double quote, a backslash, a newline
    by_hand = '"risk \\"eu\\\\west\\"\\nb"'
    assert string(value) == by_hand
    (tmp_path / "quote.yml").write_text(yaml.safe_dump({"rule_files": [], "tests": [{
        "interval": "1m",
        "input_series": [{"series": f"x{{scope={by_hand}}}", "values": "1x2"},
                         {"series": 'x{scope="risk"}', "values": "2x2"}],
        "promql_expr_test": [
            {"expr": f"x{{scope={string(value)}}}", "eval_time": "1m",
             "exp_samples": [{"labels": f"x{{scope={by_hand}}}", "value": 1}]},
            {"expr": f'label_replace(vector(3), "scope", {string(value)}, "", "")',
             "eval_time": "1m", "exp_samples": [{"labels": f"{{scope={by_hand}}}", "value": 3}]}]}]}))
    test = subprocess.run([tool("promtool"), "test", "rules", "quote.yml"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_every_rule_reads_metrics_the_exporter_defines() -> None:
    """Every raw series a rule selects is one exporter/metrics.py defines, or one the
    load tests push (nautilus_loadtest/push.py); the live test checks that the
    shipped configuration really produces each selector."""
    from prometheus_client import CollectorRegistry
    from exporter.probes.registry import every_family
    from nautilus_loadtest.push import Run, registry_for
    from nautilus_loadtest.validate import TargetCheck

    reg = CollectorRegistry()
    every_family(reg)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "info": ("_info",)}
    pushed = registry_for(TargetCheck("absolute", "x", 1.0, ">= 1", "met", "system", "x", 1.0, 2.0),
                          Run("run", "validate", 0.0, 1.0, 1.0))
    samples = {m.name + suffix for r in (reg, pushed) for m in r.collect()
               for suffix in suffixes.get(m.type, ("",))}
    text = (GENERATED / "recording.yml").read_text() + (GENERATED / "alerts.yml").read_text()
    used = set(re.findall(r"\b(nautilus_probe_[a-z_]+)", text))
    assert used and used <= samples, used - samples


def test_a_threshold_change_changes_the_rules(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["objectives"]["latency"] = 0.999
    data["alerting"]["burn_rates"]["page"] = [{"factor": 10, "long": "2h", "short": "10m"}]
    data["alerting"]["for"]["page"] = "3m"
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    rules = yaml.safe_load(render(Thresholds.load(str(path)))["alerts.yml"])["groups"][0]["rules"]
    page = next(r for r in rules if r["alert"] == "EngineLatencyBudgetBurn"
                and r["labels"]["severity"] == "page")
    # 10× a 0.1 % budget over 2h and 10m, and still burning (over 1× the budget) over
    # the recent 5m.
    assert page["expr"] == ("(nautilus_probe:engine_latency_errors:ratio_rate2h > 0.01 and "
                            "nautilus_probe:engine_latency_errors:ratio_rate10m > 0.01 and "
                            "nautilus_probe:engine_latency_errors:ratio_rate5m > 0.001)")
    assert page["keep_firing_for"] == "270s"
    backlog = next(r for r in rules if r["alert"] == "EngineBacklogGrowing")
    assert backlog["for"] == "3m"
    recording = render(Thresholds.load(str(path)))["recording.yml"]
    assert "ratio_rate10m" in recording and "ratio_rate30m" not in recording


def test_no_rule_or_panel_divides_live_traffic_by_the_monoliths_capacity(
        tmp_path: Path) -> None:
    """The monolith's documented throughput (baseline.throughput_ops_per_second) is a
    capacity: only `validate` divides by it, the containerized run's capacity. What
    flows live over it would read a quiet hour as a failed migration, so no rule,
    alert or dashboard uses it (a rule once recorded exactly that as the 50× factor)."""
    from dashboards.__main__ import render as dashboards

    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["baseline"]["throughput_ops_per_second"] = 1234.5  # a figure found nowhere else
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    t = Thresholds.load(str(path))
    files = {**render(t), **dashboards(t)}
    assert [name for name, text in files.items() if "1234.5" in text] == []
    assert "throughput_improvement:ratio" not in "".join(files.values())


def test_every_burn_condition_needs_the_recent_window_over_the_budget(tmp_path: Path) -> None:
    """A recovered page promises to resolve once the recent window is within budget:
    so every condition needs it over the budget, even a pair whose short window is the
    recent one and whose factor is below 1 (its own limit would be under the budget)."""
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["alerting"]["burn_rates"]["ticket"] = [{"factor": 0.5, "long": "3d", "short": "5m"}]
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    rules = yaml.safe_load(render(Thresholds.load(str(path)))["alerts.yml"])["groups"][0]["rules"]
    ticket = next(r for r in rules if r["alert"] == "EngineAvailabilityBudgetBurn"
                  and r["labels"]["severity"] == "ticket")
    ratio = "nautilus_probe:engine_availability_errors:ratio_rate"
    assert ticket["expr"] == (f"({ratio}3d > 0.005 and {ratio}5m > 0.005 and "
                              f"{ratio}5m > 0.01)")


def test_the_job_names_come_from_thresholds(tmp_path: Path) -> None:
    from dashboards.__main__ import render as dashboards

    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["prometheus"] = {"exporter_job": "probe-eu", "capacity_job": "capacity-eu"}
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    t = Thresholds.load(str(path))
    files = render(t)
    rules = {r["alert"]: r["expr"] for r in yaml.safe_load(files["alerts.yml"])["groups"][0]["rules"]}
    assert rules["ExporterDown"] == 'up{job="probe-eu"} == 0'
    assert 'capacity_verdict{job="capacity-eu"}' in rules["CapacityValidationFailed"]
    for old in ('job="nautilus-probe"', 'job="nautilus-capacity"'):
        assert old not in files["alerts.yml"] + files["tests.yml"]
    # The promtool tests generated with them still pass.
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    check = subprocess.run([tool("promtool"), "test", "rules", str(tmp_path / "tests.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    boards = dashboards(t)
    overview = json.loads(boards["overview.json"])
    job = next(v for v in overview["templating"]["list"] if v["name"] == "job")
    assert job["current"]["value"] == "probe-eu"
    assert 'job=\\"capacity-eu\\"' in boards["overview.json"]
    assert "nautilus-capacity" not in boards["overview.json"]


@pytest.mark.parametrize("key, value, message", [
    (("prometheus", "exporter_job"), 'probe"} or vector(1)',
     "prometheus.exporter_job: must be a job name of letters, digits and _ . : - (at most 64), "
     "got 'probe\"} or vector(1)'"),
    (("prometheus", "capacity_job"), "nautilus-probe",
     "prometheus.capacity_job: must differ from exporter_job ('nautilus-probe'): the capacity "
     "alerts would read the exporter's series"),
    (("system", "error_ratio"), {"max": "one percent"},
     "system.error_ratio.max: must be a number >= 0, got 'one percent'"),
    (("alerting", "runbook_url"), "docs/runbook.md",
     "alerting.runbook_url: must be an absolute http(s) URL (alerts link to it), got 'docs/runbook.md'"),
    (("objectives", "availability"), 99,
     "objectives.availability: must be a share between 0 and 1 (e.g. 0.99), got 99"),
    (("alerting", "burn_rates"), {"page": [{"factor": 14.4, "long": "5m", "short": "1h"}]},
     "alerting.burn_rates.page[0].short: must be shorter than long"),
    (("alerting", "burn_rates"), {"ticket": [{"factor": 1, "long": "3 days", "short": "6h"}]},
     "alerting.burn_rates.ticket[0].long: must be a window such as 5m, 6h or 3d, got '3 days'"),
    # The side every rule and verdict computes with (a traceback before).
    (("system", "throughput_ops_per_second"), {"max": 100_000},
     "system.throughput_ops_per_second: needs a min"),
    (("engine_defaults", "latency_average_seconds"), {"min": 0.001},
     "engine_defaults.latency_average_seconds: needs a max"),
])
def test_bad_thresholds_name_the_key(tmp_path: Path, key: tuple[str, str], value: object,
                                     message: str) -> None:
    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data[key[0]][key[1]] = value
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "alerts", "--thresholds", str(path),
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"alerts: config error: {path}: {message}"


def routed(*labels: str) -> str:
    out = subprocess.run([tool("amtool"), "config", "routes", "test",
                          f"--config.file={ROOT / 'alerts' / 'alertmanager.yml'}", *labels],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def test_alertmanager_config_and_routes() -> None:
    config = ROOT / "alerts" / "alertmanager.yml"
    check = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # amtool resolves the routes: a page wakes someone, a ticket does not.
    assert routed("severity=page", "alertname=EngineLatencyBudgetBurn", "engine=risk") == "pager"
    assert routed("severity=page", "alertname=MessageBusUnreachable") == "pager"
    assert routed("severity=ticket", "alertname=EngineLatencyBudgetBurn", "engine=risk") == "ticket"
    assert routed("severity=ticket", "alertname=ProberSaturated") == "ticket"
    assert routed("alertname=Unlabelled") == "ticket"  # never a page by accident
    # Every severity the rules use has a route.
    rules = yaml.safe_load((GENERATED / "alerts.yml").read_text())["groups"][0]["rules"]
    am = yaml.safe_load(config.read_text())
    matchers = {r["matchers"][0] for r in am["route"]["routes"]}
    assert {f'severity="{r["labels"]["severity"]}"' for r in rules} <= matchers
    inhibit = {tuple(i["source_matchers"]): i for i in am["inhibit_rules"]}
    assert inhibit[('severity="page"',)]["equal"] == ["alertname", "engine"]
    assert ('alertname=~"MessageBusUnreachable|ExporterDown"',) in inhibit
