"""Synthetic engine knobs: parsing, distributions, stalls, run-time overrides."""

from __future__ import annotations

import random
import statistics

import pytest

from nautilus_config.checks import Node
from nautilus_config.errors import ConfigError
from synthetic.config import parse
from synthetic.engine import apply_overrides
from synthetic.knobs import Knobs, ServiceTime, parse_knobs


def test_defaults_cover_all_nine_engines() -> None:
    cfg = parse({})
    assert [e.name for e in cfg.engines] == ["analytics", "risk", "factor", "ml", "features",
                                             "websocket", "strategy", "marketdata", "portfolio"]
    assert set(cfg.engine("factor").ops) == {"factor_calculation", "cross_correlation", "full_cycle"}


def test_knobs_inherit_defaults_and_override() -> None:
    cfg = parse({"defaults": {"service_time": "5ms", "error_ratio": 0.01},
                 "engines": {"risk": {"alert": {"drop_ratio": 0.5}}}})
    alert = cfg.engine("risk").ops["alert"]
    assert alert == Knobs(ServiceTime("fixed", 0.005), error_ratio=0.01, drop_ratio=0.5)


@pytest.mark.parametrize(("dist", "mean"), [
    ({"distribution": "uniform", "min": "10ms", "max": "30ms"}, 0.020),
    ({"distribution": "exponential", "mean": "20ms"}, 0.020),
    ({"distribution": "lognormal", "median": "20ms", "sigma": 0.1}, 0.0201),
])
def test_distributions(dist: dict, mean: float) -> None:
    knobs = parse_knobs(Node({"service_time": dist}), Knobs())
    rng = random.Random(7)
    samples = [knobs.service_time.sample(rng) for _ in range(20000)]
    assert statistics.fmean(samples) == pytest.approx(mean, rel=0.03)


def test_stall_windows() -> None:
    knobs = parse_knobs(Node({"stall": {"duration": "1s", "period": "5s"}}), Knobs())
    assert knobs.stall_wait(3.9) == 0
    assert knobs.stall_wait(4.25) == pytest.approx(0.75)
    assert knobs.stall_wait(9.5) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="stall.period: must be longer than duration"):
        parse_knobs(Node({"stall": {"duration": "5s", "period": "1s"}}), Knobs())


def test_runtime_overrides() -> None:
    configured = {"limit_check": Knobs(), "alert": Knobs()}
    out = apply_overrides(configured, {"*": {"error_ratio": 0.1},
                                       "alert": {"service_time": "150ms"}})
    assert out["limit_check"] == Knobs(error_ratio=0.1)
    assert out["alert"] == Knobs(ServiceTime("fixed", 0.15), error_ratio=0.1)
    with pytest.raises(ConfigError, match="alert.drop_ratio: must be a ratio"):
        apply_overrides(configured, {"alert": {"drop_ratio": 7}})
