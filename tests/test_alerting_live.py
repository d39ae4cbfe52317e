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
    with live.live_stack(tmp_path, duration=400, alertmanager=True) as stack:
        api = stack.api
        warm(api)
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
        wait_for(lambda: page in delivered(stack.alertmanager), 30, interval=1)
        # The page inhibits the ticket of the same alert and engine.
        assert delivered(stack.alertmanager) == {page}
        set_knobs(stack.redis_url, "risk", None)

        # Errors on ml and, meanwhile, a stalled factor (two faults at once: the suite's
        # time): ml's availability page and nothing new about any engine but these two;
        # factor's requests pile up in its streams and its saturation alert fires.
        set_knobs(stack.redis_url, "ml", {"*": {"error_ratio": 0.5}})
        set_knobs(stack.redis_url, "factor", {"*": {"stall": {"duration": "20s",
                                                              "period": "20.001s"}}})
        page = ("EngineAvailabilityBudgetBurn", "page", "ml")
        wait_for(lambda: page + ("firing",) in active(api), 60, interval=1)
        new = {a[:3] for a in active(api) if a[2] != "factor"} - {
            ("EngineLatencyBudgetBurn", s, "risk") for s in ("page", "ticket")}
        assert new <= {page, ("EngineAvailabilityBudgetBurn", "ticket", "ml")}
        set_knobs(stack.redis_url, "ml", None)
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
