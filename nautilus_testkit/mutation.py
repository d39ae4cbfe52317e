"""`./run mutate`'s summary: mutmut's results per module of the measuring core, the
score (killed / all, timeouts counted as killed: the mutant never finished), and
every survivor. Presentation code of validate (report text, plots) is left out."""

from __future__ import annotations

import collections
import subprocess
import sys

# validate's report text, file reading and the load tests' own pushes (capacity_checks,
# offered_ops: tested live in test_benchmarks and test_capacity_push).
OUT_OF_SCOPE = ("x__fmt", "x_judge", "x_markdown", "x_plot", "x_validate", "x__cell", "x_console",
                "x__verdict", "x__quantile", "x__average", "x__load", "x__read", "x__meta_rows",
                "x__offered", "x__disagreement", "x__step_verdict", "x_capacity_checks",
                "x_offered_ops")


def main() -> int:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         capture_output=True, text=True, check=True).stdout
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors = []
    for line in out.splitlines():
        if ": " not in line:
            continue
        name, status = line.strip().rsplit(": ", 1)
        module, function = name.split(".x", 1)
        if module.endswith("validate") and f"x{function}".startswith(OUT_OF_SCOPE):
            continue
        counts[module][status] += 1
        if status == "survived":
            survivors.append(name)
    for module, c in sorted(counts.items()):
        caught = c["killed"] + c["timeout"]
        total = sum(c.values())
        print(f"{module:32} {caught:4d}/{total:<4d} {100 * caught / total:5.1f} %  {dict(c)}")
    print("\nsurvivors (mutmut show NAME):", *survivors, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
