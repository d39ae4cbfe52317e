"""Dial-in behaviour of a synthetic engine operation: the knobs that make known truth."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nautilus_config.checks import duration, duration_or_zero, Node, ratio
from nautilus_config.errors import ConfigError

DISTRIBUTIONS = ("fixed", "uniform", "exponential", "lognormal")


@dataclass(frozen=True)
class ServiceTime:
    """Seconds an operation takes: fixed, uniform(min, max), exponential(mean),
    lognormal(median, sigma)."""

    distribution: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.distribution == "fixed":
            return self.a
        if self.distribution == "uniform":
            return rng.uniform(self.a, self.b)
        if self.distribution == "exponential":
            return rng.expovariate(1.0 / self.a)
        return self.a * rng.lognormvariate(0.0, self.b)


def service_time(path: str, value: Any) -> ServiceTime:
    if not isinstance(value, dict):
        return ServiceTime("fixed", duration_or_zero(path, value))
    node = Node(value, path)
    dist = node.get("distribution", "fixed")
    if dist == "fixed":
        st = ServiceTime("fixed", node.get("value", 0.0, duration_or_zero))
    elif dist == "uniform":
        st = ServiceTime("uniform", node.get("min", 0.0, duration_or_zero),
                         node.get("max", 0.0, duration_or_zero))
        if st.b < st.a:
            raise ConfigError(node.sub("max"), "must not be below min")
    elif dist == "exponential":
        st = ServiceTime("exponential", node.get("mean", 0.001, duration))
    elif dist == "lognormal":
        sigma = node.get("sigma", 0.5)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0:
            raise ConfigError(node.sub("sigma"), f"must be a number >= 0, got {sigma!r}")
        st = ServiceTime("lognormal", node.get("median", 0.001, duration), float(sigma))
    else:
        raise ConfigError(node.sub("distribution"),
                          f"must be one of {', '.join(DISTRIBUTIONS)}; got {dist!r}")
    node.done()
    return st


@dataclass(frozen=True)
class Knobs:
    service_time: ServiceTime = ServiceTime()
    error_ratio: float = 0.0
    drop_ratio: float = 0.0  # no reply at all
    duplicate_ratio: float = 0.0  # the reply is sent twice
    reorder_ratio: float = 0.0  # served only after the next request is answered
    stall_duration: float = 0.0  # stop answering for this long ...
    stall_period: float = 0.0  # ... at the end of every period

    def stall_wait(self, elapsed: float) -> float:
        """Seconds until the current stall window ends (0 when not stalled)."""
        if self.stall_duration <= 0:
            return 0.0
        phase = elapsed % self.stall_period
        start = self.stall_period - self.stall_duration
        return self.stall_period - phase if phase >= start else 0.0


def parse_knobs(node: Node, base: Knobs) -> Knobs:
    stall = base.stall_duration, base.stall_period
    if "stall" in node.data:
        snode = node.node("stall")
        if node.data["stall"] is None:
            stall = (0.0, 0.0)
        else:
            stall = (snode.get("duration", 0.0, duration), snode.get("period", 0.0, duration))
            if stall[1] <= stall[0]:
                raise ConfigError(snode.sub("period"), "must be longer than duration")
            snode.done()
    knobs = Knobs(
        service_time=node.get("service_time", base.service_time, service_time),
        error_ratio=node.get("error_ratio", base.error_ratio, ratio),
        drop_ratio=node.get("drop_ratio", base.drop_ratio, ratio),
        duplicate_ratio=node.get("duplicate_ratio", base.duplicate_ratio, ratio),
        reorder_ratio=node.get("reorder_ratio", base.reorder_ratio, ratio),
        stall_duration=stall[0], stall_period=stall[1],
    )
    node.done()
    return knobs
