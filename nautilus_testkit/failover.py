"""A MessageBus failover watched from the exporter's /metrics: the kill, the outage,
the first answer after it and the window after that, every scrape checked for
requests = answered + failed + in flight. Shared by tests/test_failover.py and
bench/failover.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .exposition import samples, value
from .http import http_get

OK = "nautilus_probe_latency_seconds_count"


@dataclass
class Scrape:
    at: float  # monotonic
    requests: float
    answered: float
    in_flight: float
    failures: dict[str, float]  # by reason
    skipped: float
    changes: float  # messagebus_master_changes_total
    masters: set[str]
    answered_by: dict[str, float]  # by engine

    def answered_of(self, engines: tuple[str, ...] | None) -> float:
        if engines is None:
            return self.answered
        return sum(self.answered_by.get(e, 0.0) for e in engines)

    @property
    def failed(self) -> float:
        return sum(self.failures.values())

    def balanced(self) -> bool:
        return self.requests == self.answered + self.failed + self.in_flight


def scrape(base: str) -> Scrape:
    asked = time.monotonic()
    status, text = http_get(f"{base}/metrics", timeout=5)
    # The exposition was rendered between the request and its answer: the midpoint,
    # so a slow scrape does not skew the window's rates.
    at = (asked + time.monotonic()) / 2
    assert status == 200, status
    failures: dict[str, float] = {}
    masters = set()
    answered_by: dict[str, float] = {}
    for (name, labels), v in samples(text).items():
        if name == OK:
            engine = dict(labels)["engine"]
            answered_by[engine] = answered_by.get(engine, 0.0) + v
        elif name == "nautilus_probe_failures_total":
            reason = dict(labels)["reason"]
            failures[reason] = failures.get(reason, 0.0) + v
        elif name == "nautilus_probe_messagebus_master_info" and v == 1:
            masters.add(dict(labels)["address"])
    return Scrape(at, value(text, "nautilus_probe_requests_total"), value(text, OK),
                  value(text, "nautilus_probe_in_flight"), failures,
                  value(text, "nautilus_probe_probes_skipped_total"),
                  value(text, "nautilus_probe_messagebus_master_changes_total"), masters,
                  answered_by)


@dataclass
class Failover:
    """What the exporter's numbers said about one failover."""

    killed: Scrape  # the last scrape before the kill
    back: Scrape  # the first scrape after the outage with more answers
    after: Scrape  # `window` seconds after `back`
    kill_at: float
    scrapes: list[Scrape] = field(default_factory=list)

    @property
    def first_answer_s(self) -> float:
        """Kill to the first scrape showing answers again (scrape interval included)."""
        return self.back.at - self.kill_at

    def lost(self) -> dict[str, float]:
        """Probes failed from the kill to the end of the window, by reason."""
        return {r: self.after.failures.get(r, 0.0) - self.killed.failures.get(r, 0.0)
                for r in self.after.failures
                if self.after.failures.get(r, 0.0) != self.killed.failures.get(r, 0.0)}

    def unbalanced(self) -> list[Scrape]:
        return [s for s in self.scrapes if not s.balanced()]

    def window_rate(self) -> tuple[float, float]:
        """(requests/s, answers/s) in the window after the first answer."""
        span = self.after.at - self.back.at
        return ((self.after.requests - self.back.requests) / span,
                (self.after.answered - self.back.answered) / span)


def through_failover(base: str, kill: Callable[[], float], *, window: float = 10.0,
                     give_up: float = 20.0, every: float = 0.2,
                     engines: tuple[str, ...] | None = None) -> Failover:
    """kill() the master (it returns the monotonic time of the kill), scrape every
    `every` s until answers stop and come back, then for `window` s more. Raises
    AssertionError if they do not come back within `give_up` s. `engines`: those
    whose answers the kill stops (a Cluster master holds some engines' streams);
    all by default."""
    scrapes = [scrape(base)]
    kill_at = kill()
    stalled = False
    while True:
        time.sleep(every)
        scrapes.append(now := scrape(base))
        grew = now.answered_of(engines) > scrapes[-2].answered_of(engines)
        if stalled and grew and now.at - kill_at >= 0.5:  # not replies read as it died
            back = now
            break
        # The outage, seen as no answers, or as sends failing (one shorter than a
        # scrape interval shows only as that). Timeouts are not a sign: a loaded
        # machine has some anyway.
        if not grew or now.failures.get("send_failed", 0) > scrapes[-2].failures.get("send_failed", 0):
            stalled = True
        if now.at - kill_at > give_up:
            raise AssertionError(
                f"no answer within {give_up} s of the kill; answers since it by engine: "
                f"{ {e: now.answered_by[e] - scrapes[0].answered_by.get(e, 0) for e in now.answered_by} }"
                f", failed by reason: {now.failures}")
    while time.monotonic() - back.at < window:
        time.sleep(every)
        scrapes.append(scrape(base))
    return Failover(scrapes[0], back, scrapes[-1], kill_at, scrapes)
