"""Load-test, validate and review tooling: the migration plan's benchmark runs done honestly,
and the post-migration verdicts. Plots need the [loadtest] extra (matplotlib)."""
