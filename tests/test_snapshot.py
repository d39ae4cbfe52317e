"""The scrape snapshot (exporter/snapshot.py): the values of the moment it was taken,
rendered byte for byte as prometheus-client renders the live registry, and the
renderer's formats (exporter/web.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.process_collector import ProcessCollector

from exporter import snapshot
from exporter.metrics import build
from exporter.metrics import Failure
from exporter.probes import registry as kinds
from exporter.snapshot import Exposition, freeze, Snapshot
from exporter.web import FORMATS_KEPT, Renderer

ENCODERS = {"text": generate_latest, "openmetrics": openmetrics}


def without_process(text: bytes) -> list[str]:
    """The process collector's figures move by themselves: compare everything else."""
    return [line for line in text.decode().splitlines() if "process_" not in line]


def registry() -> tuple[CollectorRegistry, list]:
    reg = CollectorRegistry()
    m = build(reg)
    for kind in kinds.KINDS:
        if kind.metrics is not None:
            kind.metrics(reg)
    plain = Counter("plain", "An unlabelled counter.", registry=reg)
    gauge = Gauge("level", "A gauge with labels.", ["side"], registry=reg)
    read = Gauge("read_through", "A gauge read through a function.", registry=reg)
    value = [1.0]
    read.set_function(lambda: value[0])
    hist = Histogram("sizes", "An unlabelled histogram.", buckets=(1, 10, 100), registry=reg)
    # No _sum sample when a bucket bound is negative: the library's lines, not a template.
    signed = Histogram("signed", "A histogram below zero.", buckets=(-1, 0, 1), registry=reg)
    odd = Gauge("odd_labels", 'Label values to escape: "\\ and new\nlines.', ["v"], registry=reg)
    Counter("never_labelled", "A family with no children yet.", ["x"], registry=reg)
    ProcessCollector(registry=reg)
    risk = m.init_probe("risk", "limit_check")

    def change(k: float) -> None:
        risk.requests.inc(k)
        risk.in_flight.inc(k)
        risk.latency.observe(0.004 * k)
        risk.service.observe(0.001 * k)
        risk.failures[Failure.TIMEOUT].inc(k)
        m.schedule_lag.observe(0.0001 * k)
        plain.inc(k)
        gauge.labels("bid").set(k)
        gauge.labels(f"ask{k:g}").set(-k)  # a child born after the snapshot
        hist.observe(5 * k)
        signed.observe(-k)
        odd.labels('say "hi"\\\n, ünïcode\u2028').set(k)
        if k == 2:
            gauge.remove("ask1")  # a child gone since the last render
        value[0] = k

    return reg, [change]


def test_a_snapshot_renders_what_the_registry_held_when_it_was_taken() -> None:
    reg, [change] = registry()
    change(1)
    live = {name: without_process(encode(reg)) for name, encode in ENCODERS.items()}
    frozen = Snapshot(freeze(reg))
    change(2)  # the live registry moves on; the snapshot does not
    for name, encode in ENCODERS.items():
        assert without_process(encode(frozen)) == live[name]
        assert without_process(Exposition(encode).render(frozen)) == live[name]
    assert "process_cpu_seconds_total" in generate_latest(frozen).decode()
    # And it moved: the same registry renders differently now.
    assert without_process(generate_latest(reg)) != live["text"]


def test_what_an_exposition_learnt_renders_new_values_byte_for_byte() -> None:
    """Renders after the first write learnt lines with new values, children born and
    gone since, and families the library must render whole; each equals the library's
    rendering of the live registry at that moment, in both formats."""
    reg, [change] = registry()
    for name, encode in ENCODERS.items():
        exposition = Exposition(encode)
        for k in (1, 2, 3, 7.25, 1e9):
            change(k)
            frozen = Snapshot(freeze(reg))
            assert without_process(exposition.render(frozen)) == without_process(encode(reg)), (name, k)
        assert 'ask1"' not in exposition.render(frozen).decode()  # removed, and forgotten
        assert all(("ask1",) not in lines.children for lines in exposition._lines.values())
    # Anything else is the encoder's to render.
    assert without_process(Exposition(generate_latest).render(reg)) == without_process(
        generate_latest(reg))


def test_the_fast_path_is_taken_with_the_installed_prometheus_client() -> None:
    """Every metric of the exporter is copied value by value, not collected in full
    (a prometheus-client release that renamed what snapshot.py reads fails here)."""
    reg, [change] = registry()
    change(1)
    frozen = freeze(reg)
    collected = [c for c in frozen if isinstance(c, snapshot._Collected)]
    # An info metric, a gauge read through a function, a custom collector: read in full.
    assert [c.collect()[0].name for c in collected] == [
        "nautilus_probe_build", "read_through", "process_virtual_memory_bytes"]
    assert len(frozen) > 40
    exposition = Exposition(openmetrics)
    exposition.render(Snapshot(frozen))
    families = {c.metric._name for c in frozen if isinstance(c, snapshot._Family) and c.children}
    learnt = {metric._name for metric in exposition._lines}
    # Every family with children renders from learnt lines, but the one whose
    # samples differ from what the template expects; one without is a header.
    assert len(families) > 20 and learnt == families - {"signed"}


class Backend:
    """A registry behind the endpoints, without an exporter."""

    def __init__(self) -> None:
        self.reg, [self.change] = registry()
        self.renders = 0

    async def registry(self) -> Snapshot:
        self.renders += 1
        return Snapshot(freeze(self.reg))

    def generation(self) -> int:
        return 0


async def test_the_renderer_keeps_a_few_formats_whatever_clients_ask() -> None:
    """An OpenMetrics Accept header may name any version, each a content type: the
    renderer keeps the latest FORMATS_KEPT, not one rendered body per version asked."""
    backend = Backend()
    backend.change(1)
    renderer = Renderer(backend, max_age=60)
    for minor in range(20):
        fmt, content_type = await renderer.render(f"application/openmetrics-text; version=1.{minor}.0")
        assert content_type.startswith(f"application/openmetrics-text; version=1.{minor}.0;")
        assert without_process(fmt.body) == without_process(openmetrics(backend.reg))
    assert len(renderer._formats) == FORMATS_KEPT
    # Within max_age a format's render is served again; text is a format of its own.
    fmt, _ = await renderer.render("application/openmetrics-text; version=1.19.0")
    text, content_type = await renderer.render("text/plain")
    assert backend.renders == 21 and content_type.startswith("text/plain; version=0.0.4")
    assert without_process(text.body) == without_process(generate_latest(backend.reg))



def test_the_installed_prometheus_client_is_inside_the_proven_fence() -> None:
    """pyproject.toml bounds prometheus-client from above; the suite runs on a release
    inside the bound, so a release let in has passed these tests."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    from nautilus_testkit import ROOT

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [req] = [Requirement(d) for d in deps if Requirement(d).name == "prometheus-client"]
    assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), req
    assert req.specifier.contains(version("prometheus-client")), (req, version("prometheus-client"))
    assert snapshot.FAST_PATH and snapshot._fast_path_holds()


def test_a_release_storing_function_gauges_differently_is_collected_in_full(monkeypatch) -> None:
    """A release that kept a gauge's function elsewhere than the instance's
    `_child_samples` would be copied as a plain gauge, its value read wrong in
    silence: the self-test catches it, and the snapshot then collects in full."""

    def set_function(self, f) -> None:  # the function kept on the instance, by another name
        self._function = f

    def child_samples(self):
        from prometheus_client.samples import Sample
        f = getattr(self, "_function", None)
        return (Sample("", {}, f() if f else self._value.get(), None, None),)

    monkeypatch.setattr(Gauge, "set_function", set_function)
    monkeypatch.setattr(Gauge, "_child_samples", child_samples)
    assert not snapshot._fast_path_holds()
    monkeypatch.setattr(snapshot, "FAST_PATH", False)
    reg, [change] = registry()
    change(1)
    live = {name: without_process(encode(reg)) for name, encode in ENCODERS.items()}
    frozen = Snapshot(freeze(reg))
    change(2)
    assert 'read_through 1.0' in "\n".join(live["text"])
    for name, encode in ENCODERS.items():
        assert without_process(Exposition(encode).render(frozen)) == live[name], name
