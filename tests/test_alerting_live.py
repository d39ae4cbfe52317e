"""The generated alerts on a real Prometheus and Alertmanager, scraping the local
stack (windows a sixtieth of the real ones: nautilus_testkit.live.TEST_ALERTING):
quiet when healthy; loud, and only about the right thing, when a fault is injected."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import redis
import yaml

from alerts.query import PrometheusAPI
from exporter.metrics import LATENCY_BUCKETS
from nautilus_testkit import ROOT, http_get, live, wait_for
from nautilus_testkit.live import query
from nautilus_wire.protocol import ENGINES

KNOBS = "nautilus:probe:{{{engine}}}:knobs"


def active(api: str) -> set[tuple[str, str, str, str]]:
    """(alertname, severity, engine, state) of every pending or firing alert."""
    return {(a["labels"]["alertname"], a["labels"].get("severity", ""),
             a["labels"].get("engine", ""), a["state"]) for a in PrometheusAPI(api).alerts()}


def delivered(am: str) -> set[tuple[str, str, str]]:
    """What Alertmanager would notify: active, neither inhibited nor silenced."""
    status, body = http_get(f"{am}/api/v2/alerts?active=true&inhibited=false&silenced=false")
    assert status == 200, body
    return {(a["labels"]["alertname"], a["labels"].get("severity", ""),
             a["labels"].get("engine", "")) for a in json.loads(body)}


def set_knobs(redis_url: str, engine: str, knobs: dict | None) -> None:
    with redis.Redis.from_url(redis_url) as r:
        key = KNOBS.format(engine=engine)
        r.set(key, json.dumps(knobs)) if knobs else r.delete(key)


def warm(api: str, age: int = 60) -> None:
    """Until every burn-rate window has samples for every engine, and a minute of
    them: in the first seconds a window holds a few dozen probes, and one of the
    engines' 0.1 % random errors reads as a 1-3 % burn (with the real windows the
    alerts' `for:` covers that; the test's are seconds long)."""
    wait_for(lambda: len(query(api, "nautilus_probe:engine_latency_errors:ratio_rate1m")) >= 9,
             60, interval=1)
    wait_for(lambda: query(api, "nautilus_probe:engine_backlog_messages:max"), 30, interval=1)
    wait_for(lambda: query(api, 'time() - max(process_start_time_seconds{job="nautilus-probe"})'
                                f' > {age}'), 90, interval=1)


CURRENT = live.TEST_ALERTING["current"]  # the present a page states


def recovered_page(api: str, alertname: str, engine: str) -> dict[str, str]:
    """The annotations of `engine`'s page, still firing, once they say it has
    recovered (empty until then)."""
    for a in PrometheusAPI(api).alerts():
        labels = a["labels"]
        if (labels["alertname"], labels.get("engine"), labels["severity"], a["state"]) == (
                alertname, engine, "page", "firing") and a["annotations"]["description"].startswith(
                f"{engine}: recovered: "):
            return dict(a["annotations"])
    return {}


def descriptions(api: str, alertname: str, engine: str) -> dict[str, str]:
    """severity -> the description Prometheus rendered for an alert of `engine`."""
    return {a["labels"]["severity"]: a["annotations"]["description"]
            for a in PrometheusAPI(api).alerts()
            if a["labels"]["alertname"] == alertname and a["labels"].get("engine") == engine}


def seconds(text: str) -> float:
    """Prometheus's humanizeDuration back to seconds: 152.3ms, 1.204s, 2m 5s."""
    units = {"ms": 1e-3, "us": 1e-6, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    parts = re.findall(r"([\d.]+)(ms|us|s|m|h|d)", text)
    assert parts, text
    return sum(float(n) * units[u] for n, u in parts)


def shipped_windows() -> dict[str, str]:
    """Each test window's name -> the shipped window it stands for (thresholds.yml)."""
    shipped = yaml.safe_load((ROOT / "thresholds.yml").read_text())["alerting"]
    test = live.TEST_ALERTING
    pairs = [(test["current"], shipped["current"]), (test["recent"], shipped["recent"])]
    for sev, rates in test["burn_rates"].items():
        for mine, theirs in zip(rates, shipped["burn_rates"][sev], strict=True):
            pairs += [(mine["long"], theirs["long"]), (mine["short"], theirs["short"])]
    mapping = dict(pairs)
    assert len(mapping) == len(set(pairs)), "a test window stands for two shipped ones"
    return mapping


def shape(text: str, windows: dict[str, str] | None = None) -> str:
    """A page's words without its figures (and, rendered at the test windows, with
    the shipped windows' names): what docs/alerting.md's quotes must match."""
    windows = windows or {}
    text = re.sub(r"^\w+:", "ENGINE:", text)
    # When a recovered page resolves: keep_firing_for, and the recent window plus it.
    text = re.sub(r"\b(within|about) \d+[smhd]( \d+[smhd])*", r"\1 D", text)
    # A window with less history than its length names the history's length instead
    # (alerts/tests/burn_rates.yml pins both wordings): either reads as the window.
    text = re.sub(r"all [\d.]+\w+( \d+\w+)* of history \(a (\w+) window\)",
                  lambda m: f"the last {windows.get(m[2], m[2])}", text)
    text = re.sub(r"p50 [\d.]+\w+( \d+\w+)* and p99 [\d.]+\w+( \d+\w+)*", "p50 D and p99 D", text)
    text = re.sub(r"\b\d+[smhd]\b", lambda m: windows.get(m[0], m[0]), text)
    return re.sub(r"\d+(\.\d+)?(e[+-]\d+)?(?=[%×])", "N", text)


def docs_quotes() -> dict[tuple[str, str], str]:
    """The burn-rate page texts docs/alerting.md quotes, by objective and state
    (burning, or recovered and waiting to resolve)."""
    quotes = [line[2:] for line in (ROOT / "docs" / "alerting.md").read_text().splitlines()
              if line.startswith("> ") and "this fires when the budget burns" in line]
    return {("latency" if "slower than" in q else "availability",
             "recovered" if ": recovered: " in q else "burning"): q for q in quotes}


def rule_selectors() -> set[str]:
    """Every raw series selector in the generated rules."""
    out = set()
    for name in ("recording.yml", "alerts.yml"):
        for rule in yaml.safe_load((ROOT / "alerts" / "generated" / name).read_text())[
                "groups"][0]["rules"]:
            out |= {m.group(0) for m in re.finditer(
                r"\b(?:nautilus_probe_[a-z_]+|up)(\{[^}]*\})?", rule["expr"])}
    return out


def test_quiet_when_healthy_and_each_fault_pages_for_itself(tmp_path) -> None:
    with live.live_stack(tmp_path, duration=400, alertmanager=True, pushgateway=True) as stack:
        api = stack.api
        warm(api)
        # The prober dashboard's exporter panels show the exporter only, not the
        # Pushgateway (its process_* series are scraped too).
        exporter = stack.exporter.removeprefix("http://")
        assert len(query(api, "process_resident_memory_bytes")) >= 2
        prober = live.render_dashboards(stack.thresholds)["prober"]
        for panel in prober["panels"]:
            if panel["title"].startswith("Exporter ") and panel["type"] == "timeseries":
                shown = {r["metric"]["instance"] for r in query(
                    api, live.substitute(panel["targets"][0]["expr"]))}
                assert shown == {exporter}, (panel["title"], shown)
        # Every selector the rules read is produced by the shipped configuration
        # (the capacity verdicts come from load tests: tests/test_capacity_push.py).
        missing = [s for s in sorted(rule_selectors())
                   if "nautilus-capacity" not in s and not query(api, f"count({s})")]
        assert missing == [], "rules read series the shipped config never produces"

        # Healthy: not one alert pending or firing for 15 s (pages need 2 s of `for:`).
        seen: set = set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen |= active(api)
            time.sleep(1)
        assert seen == set()

        # Slow risk: risk's latency budget pages (and tickets) — nothing else.
        set_knobs(stack.redis_url, "risk", {"*": {"service_time": "150ms"}})
        injected = time.monotonic()
        page = ("EngineLatencyBudgetBurn", "page", "risk")
        wait_for(lambda: page + ("firing",) in active(api), 60, interval=1)
        # Every probe slow: the 1m ratio passes 14.4 % within ~9 s, then `for: 2s`
        # (measured here: 9 s).
        took = time.monotonic() - injected
        print(f"latency page firing {took:.1f} s after the fault")
        assert 5 <= took <= 30, took
        assert {a[:3] for a in active(api)} <= {page, ("EngineLatencyBudgetBurn", "ticket", "risk")}
        # The page states the present: p50 and p99 over the last 5 s, about the 150 ms
        # every answer takes, against the 100 ms target; and every probe slow.
        # histogram_quantile interpolates linearly inside the bucket that holds the
        # truth, so a quantile of ~150 ms answers reads anywhere from that bucket's
        # lower edge (128 ms) up: a fresh-clone CI read p50 148.3 ms.
        floor = max(b for b in LATENCY_BUCKETS if b < 0.15)
        time.sleep(3)  # the current window past the fault's start
        text = descriptions(api, "EngineLatencyBudgetBurn", "risk")["page"]
        now = re.match(rf"risk: p50 (\S+) and p99 (\S+) over the last {CURRENT} \(target 100 ms\), "
                       r"([\d.]+)% of answered probes were slower than 100 ms; ", text)
        assert now, text
        assert floor <= seconds(now[1]) <= 0.2 and floor <= seconds(now[2]) <= 0.25, text
        assert float(now[3]) >= 90, text
        latency_page = text
        wait_for(lambda: page in delivered(stack.alertmanager), 30, interval=1)
        # The page inhibits the ticket of the same alert and engine.
        assert delivered(stack.alertmanager) == {page}
        set_knobs(stack.redis_url, "risk", None)

        # Errors on ml and, meanwhile, a stalled factor (two faults at once: the suite's
        # time): ml's availability page and nothing new about any engine but these two;
        # factor's requests pile up in its streams and its saturation alert fires.
        set_knobs(stack.redis_url, "ml", {"*": {"error_ratio": 1}})
        set_knobs(stack.redis_url, "factor", {"*": {"stall": {"duration": "20s",
                                                              "period": "20.001s"}}})
        page = ("EngineAvailabilityBudgetBurn", "page", "ml")
        wait_for(lambda: page + ("firing",) in active(api), 60, interval=1)
        new = {a[:3] for a in active(api) if a[2] != "factor"} - {
            ("EngineLatencyBudgetBurn", s, "risk") for s in ("page", "ticket")}
        assert new <= {page, ("EngineAvailabilityBudgetBurn", "ticket", "ml")}
        # A live fault of 100 % errors: the page says ~100 % for the last 5 s (the
        # shipped: the last minute), beside the windows' lower figures.
        time.sleep(3)
        text = descriptions(api, "EngineAvailabilityBudgetBurn", "ml")["page"]
        now = re.match(rf"ml: ([\d.]+)% of probes failed over the last {CURRENT}; ", text)
        assert now and 95 <= float(now[1]) <= 105, text
        set_knobs(stack.redis_url, "ml", None)
        # Fixed: within a few seconds the present is within the budget while the recent
        # window still holds the page open (a page that fired after its fault ended
        # reads so too). It says so, and when it will resolve.
        cleared = time.monotonic()
        recovered = wait_for(lambda: recovered_page(api, "EngineAvailabilityBudgetBurn", "ml"),
                             20, interval=0.25)
        print(f"page says recovered {time.monotonic() - cleared:.1f} s after the fix")
        assert recovered["summary"] == (f"ml has recovered: within its availability error "
                                        f"budget over the last {CURRENT}; this page waits to "
                                        "resolve."), recovered
        figures = re.match(rf"ml: recovered: ([\d.]+)% of probes failed over the last {CURRENT}, "
                           r"within the error budget \(1%\)\. Still ([\d.]+)% over ",
                           recovered["description"])
        # Within the budget now; the recent window, what holds it open, still above it.
        assert figures and float(figures[1]) <= 1 <= float(figures[2]), recovered
        # docs/alerting.md quotes pages Prometheus rendered, word for word but for
        # the figures (the quotes are from the shipped windows).
        windows = shipped_windows()
        print(f"rendered: {text}\nrendered: {latency_page}\nrendered: {recovered['description']}")
        quotes = {key: shape(q) for key, q in docs_quotes().items()}
        assert quotes[("availability", "burning")] == shape(text, windows)
        assert quotes[("latency", "burning")] == shape(latency_page, windows)
        assert quotes[("availability", "recovered")] == shape(recovered["description"], windows)
        wait_for(lambda: ("EngineBacklogGrowing", "page", "factor", "firing") in active(api),
                 90, interval=1)
        set_knobs(stack.redis_url, "factor", None)


def test_redis_stopped_pages_message_bus_unreachable_only(tmp_path) -> None:
    with live.live_stack(tmp_path, duration=300, alertmanager=True) as stack:
        # This test is about inhibition, not noise: without the engines' 0.1 % random
        # errors the early windows cannot read as a burn, and a short warm-up does.
        for engine in ENGINES:
            set_knobs(stack.redis_url, engine, {"*": {"error_ratio": 0}})
        warm(stack.api, age=15)
        with redis.Redis.from_url(stack.redis_url) as r:
            pid = int(r.info("server")["process_id"])
        os.kill(pid, signal.SIGSTOP)  # Redis stops answering; its process stays
        try:
            wait_for(lambda: ("MessageBusUnreachable", "page", "", "firing") in active(stack.api),
                     60, interval=1)
            wait_for(lambda: delivered(stack.alertmanager), 30, interval=1)
            time.sleep(5)
            # What the prober cannot see is not blamed on the engines; anything it
            # still raises about itself is inhibited.
            assert delivered(stack.alertmanager) == {("MessageBusUnreachable", "page", "")}
            firing = {a for a in active(stack.api) if a[0].startswith("Engine")
                      and a[3] == "firing"}
            assert firing == set(), firing
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: not any(a[0] == "MessageBusUnreachable" and a[3] == "firing"
                                 for a in active(stack.api)), 60, interval=1)
