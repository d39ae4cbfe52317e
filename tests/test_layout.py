"""Import rules between the packages (docs/architecture.md): each package may
import only what its row allows, so the exporter stays light and the wire
protocol stays embeddable. Read from the source, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

from nautilus_testkit import ROOT

FIRST_PARTY = ("exporter", "synthetic", "alerts", "dashboards", "nautilus_wire", "nautilus_config",
               "nautilus_loadtest", "nautilus_probe", "nautilus_testkit", "tests", "bench")

# package -> first-party modules it may import (a name allows its submodules).
ALLOWED: dict[str, set[str]] = {
    "nautilus_wire": {"nautilus_wire"},
    # Strict configuration files and the MessageBus settings: every program reads them.
    "nautilus_config": {"nautilus_config", "nautilus_wire"},
    "exporter": {"exporter", "nautilus_wire", "nautilus_config"},
    "synthetic": {"synthetic", "nautilus_wire", "nautilus_config", "exporter.signals"},
    "alerts": {"alerts", "nautilus_wire", "nautilus_config", "exporter.metrics",
               "exporter.supervise"},
    # exporter.probes.registry: the probe kinds' own panels (ProbeKind.panels).
    "dashboards": {"dashboards", "alerts", "nautilus_wire", "exporter.metrics",
                   "exporter.probes.registry"},
    # synthetic.knob_command: where the running local stack is (its Pushgateway).
    "nautilus_loadtest": {"nautilus_loadtest", "nautilus_wire", "nautilus_config", "exporter", "alerts",
                          "synthetic.knob_command"},
    # alerts.thresholds: the job names the local and compose Prometheus configs scrape under.
    "nautilus_probe": {"nautilus_probe", "nautilus_config", "exporter", "synthetic", "nautilus_loadtest",
                       "nautilus_wire", "alerts.thresholds"},
    "nautilus_testkit": {"nautilus_testkit", "nautilus_probe", "nautilus_config", "exporter", "synthetic",
                         "nautilus_wire", "alerts", "dashboards"},
    "bench": {"nautilus_testkit", "nautilus_loadtest", "nautilus_wire", "exporter"},
    # What engine teams copy: the wire package only.
    "examples": {"nautilus_wire"},
}
# Third-party packages that only an extra installs, and who may import them.
EXTRAS = {"grafanalib": {"dashboards"}, "matplotlib": {"nautilus_loadtest", "dashboards"}}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if path.name == "__init__.py":
        package = package[:-1] if package[-1] == "__init__" else package
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # `from pkg import mod` may import a submodule: judge pkg.mod.
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return out


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package]
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        where = path.relative_to(ROOT)
        if package == "bench" and "sys.path" in path.read_text():
            bad.append(f"{where}: edits sys.path; import installed packages instead")
        for line, name in imports(path):
            root = name.split(".")[0]
            if root in EXTRAS and package not in EXTRAS[root]:
                bad.append(f"{where}:{line}: {name} (an extra's dependency)")
            if root in FIRST_PARTY and not any(
                    name == a or name.startswith(a + ".") or a.startswith(name + ".")
                    for a in allowed):
                bad.append(f"{where}:{line}: {name}")
    return bad


def test_every_package_imports_only_what_it_may() -> None:
    bad = [v for package in ALLOWED for v in violations(package)]
    assert bad == [], "forbidden imports:\n" + "\n".join(bad)


def test_every_package_has_a_rule() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"bench", "examples"}
    assert found - {"tests"} == set(ALLOWED)


def test_the_wire_package_needs_only_redis() -> None:
    """nautilus-wire's one dependency is redis (hiredis optional): anything else it
    imported would break an engine that installed only the wire distribution."""
    import sys

    bad = []
    for path in sorted((ROOT / "nautilus_wire").rglob("*.py")):
        for line, name in imports(path):
            root = name.split(".")[0]
            if root not in sys.stdlib_module_names and root not in (
                    "nautilus_wire", "redis", "hiredis", "__future__"):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert bad == []


def test_the_checker_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    got = dict((name, line) for line, name in imports(ROOT / "exporter" / "probes" / "bus.py"))
    assert "exporter.metrics.Metrics" in got and "nautilus_wire.requester.ProberTransport" in got
    lazy = {name for _, name in imports(ROOT / "nautilus_loadtest" / "validate.py")}
    assert "matplotlib" in lazy


def modules() -> dict[str, Path]:
    """Every first-party module (a package is its __init__), by dotted name."""
    out = {}
    for package in FIRST_PARTY:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports (any import: at the top, lazy, or
    for type checking only; `from m import name` is an edge to m)."""
    mods = modules()

    def target(name: str) -> str | None:
        parts = name.split(".")
        return next((m for n in range(len(parts), 0, -1)
                     if (m := ".".join(parts[:n])) in mods), None)

    return {m: {t for _, name in imports(path) if (t := target(name)) not in (None, m)}
            for m, path in mods.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next((w for w in edges if w not in index or w in on_stack), None)
            if nxt is not None:
                if nxt in index:
                    low[node] = min(low[node], index[nxt])
                else:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_circles() -> None:
    """Drawn module by module, the imports have no circle: each module can be read,
    tested and replaced from the leaves up."""
    found = circles(import_graph())
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_circle_finder_finds_circles() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"b", "a"}}) == []
    graph = import_graph()
    assert "exporter.probes.bus" in graph["exporter.probes.messagebus"]
    assert "nautilus_wire.replies" in graph["nautilus_wire.thin_streams"]
