"""`nautilus-probe`: one command for the exporter, the synthetic engines, the local
stack and the load-test tools. Each package adds its own subcommands."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import textwrap

from exporter import __version__
from exporter import cli as exporter_cli
from exporter.signals import raise_fd_limit, use_uvloop
from nautilus_config.errors import ConfigError, UsageError
from nautilus_loadtest import cli as loadtest_cli
from nautilus_wire.redact import RedactingFilter, redact
from synthetic import cli as synthetic_cli
from synthetic.knob_command import STACK_STATE

from . import ROOT, websocket_ports


def cmd_stack(args: argparse.Namespace) -> int:
    from .stack import run_stack

    return run_stack(args)


LOG_LEVELS = ("debug", "info", "warn", "error")


class HelpFormatter(argparse.HelpFormatter):
    """-h/--help as Prometheus's programs print it: each flag's default after its help,
    unless the help already says it (a default worked out at run time: "a free one");
    a value named by the flag's last word (`--web.listen-address ADDRESS`). A
    description keeps its paragraphs, and its indented lines (examples) as written."""

    # Never broken at a hyphen: flags (--web.listen-address), paths, port ranges.
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            if all(line[:1].isspace() for line in paragraph.splitlines()):
                paragraphs.append(paragraph)
            else:
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width,
                                                initial_indent=indent, subsequent_indent=indent,
                                                break_on_hyphens=False))
        return "\n\n".join(paragraphs)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return re.split(r"[.-]", action.option_strings[-1].lstrip("-"))[-1].upper()

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        # nargs 0: an on/off flag (--no-exporter), off unless given.
        if ("default" in text or not action.option_strings or action.nargs == 0
                or default is None or default == argparse.SUPPRESS):
            return text
        if isinstance(default, float) and default.is_integer():
            default = int(default)  # 10, not 10.0
        return f"{text} (default: {str(default).replace('%', '%%')})"


def stack_description() -> str:
    """`stack --help`'s: what it starts, how it stops, where others find it."""
    ws = websocket_ports.describe(websocket_ports.DEFAULT)
    return f"""\
Run the local stack on this machine, each part a child process of this one: its
own redis-server, the synthetic engines (config/synthetic.yml's nine, a process
each), the monolith and the load tests' own, three WebSocket engines ({ws}),
the exporter and, when installed, Prometheus, Alertmanager and a Pushgateway
with the generated rules. The banner prints their addresses and the load-test
commands against this stack; the console then shows each knob change, alert
state change and page or ticket delivered.

Ctrl-C or SIGTERM stops every part, Redis last, and says so ("stopping: ...", then
"stopped in N s"). While it runs, the stack leaves its Redis URL, WebSocket
engines and Pushgateway in {STACK_STATE}, where `knobs` and the load tests find
them (when run with the same TMPDIR)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nautilus-probe", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"nautilus-probe {__version__}")
    parser.add_argument("--log.level", dest="log_level", default="info", choices=LOG_LEVELS,
                        help="the least severe log messages shown")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="`nautilus-probe COMMAND --help` says more")
    exporter_cli.add_parser(sub)
    synthetic_cli.add_parsers(sub)
    loadtest_cli.add_parsers(sub)

    p = sub.add_parser("stack", help="run Redis, the synthetic engines, the exporter, "
                                     "Prometheus and Alertmanager locally, until Ctrl-C",
                       description=stack_description())
    p.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:9478",
                   help="address the stack's exporter serves /metrics on")
    p.add_argument("--redis.port", dest="redis_port", type=int, default=0,
                   help="port for the stack's own redis-server (default: a free one)")
    first = websocket_ports.DEFAULT[0]
    p.add_argument("--websocket.port", dest="websocket_port", default=str(first),
                   help="the first of the three WebSocket engines' consecutive ports, or the "
                        "three, comma-separated; moved, another stack or the test suite can run "
                        f"beside this one (default: {first}, i.e. "
                        f"{websocket_ports.describe(websocket_ports.DEFAULT)})")
    p.add_argument("--no-exporter", dest="no_exporter", action="store_true",
                   help="engines only: nothing probes them")
    p.add_argument("--duration", type=float, default=0, metavar="SECONDS",
                   help="stop after this many seconds (default: 0, run until Ctrl-C or "
                        "SIGTERM)")
    p.add_argument("--no-prometheus", dest="no_prometheus", action="store_true",
                   help="leave out Prometheus, Alertmanager and the Pushgateway")
    p.add_argument("--synthetic.config-file", dest="synthetic_config", default=None,
                   help="the synthetic engines' configuration (default: config/synthetic.yml "
                        "in this checkout)")
    p.add_argument("--rules", metavar="DIR", default=str(ROOT / "alerts" / "generated"),
                   help="folder with recording.yml and alerts.yml (default: alerts/generated "
                        "in this checkout)")
    p.set_defaults(func=cmd_stack)
    # Also after the subcommand (`nautilus-probe exporter ... --log.level=debug`, as
    # the docs show it); given there, it wins.
    for command in set(sub.choices.values()):
        command.add_argument("--log.level", dest="log_level", default=argparse.SUPPRESS,
                             choices=LOG_LEVELS,
                             help="the least severe log messages shown (default: as given "
                                  "before the subcommand, else info)")
        command.formatter_class = HelpFormatter
    # `<command> --help` opens with what `nautilus-probe --help` says of it, unless the
    # command describes itself at more length.
    for choice in sub._choices_actions:
        if (command := sub.choices[choice.dest]).description is None:
            command.description = choice.help
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {"warn": "WARNING"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    if level != "DEBUG":
        # Libraries log every connection at INFO: quiet unless asked (--log.level debug).
        for name in ("websockets", "aiohttp", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    use_uvloop()
    raise_fd_limit()
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"nautilus-probe: config error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:  # bad flag values; any other ValueError is a bug: traceback
        print(f"nautilus-probe: {redact(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the listen address is taken
        text = exc.strerror if exc.strerror and exc.filename is None else exc
        print(f"nautilus-probe: {redact(str(text))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
