"""The two errors a user may cause: a bad file or a bad command-line value."""

from __future__ import annotations

from nautilus_wire.redact import redact


class ConfigError(Exception):
    """Invalid configuration; str() is the message shown to the user."""

    def __init__(self, path: str, problem: str) -> None:
        # A problem may quote a value: a Redis URL's password never leaves in it.
        self.path, self.problem = path, redact(problem)
        self.file = ""  # set by the loader that read it
        super().__init__(f"{path}: {problem}" if path else problem)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}: {where}{self.problem}" if self.file else f"{where}{self.problem}"


class UsageError(ValueError):
    """A bad command-line value: the command says so and exits 2 (any other
    ValueError is a bug and keeps its traceback)."""
