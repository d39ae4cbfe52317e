"""`nautilus-probe`: one command for the exporter, the synthetic engines, the local
stack and the load-test tools. Each package adds its own subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from exporter import __version__
from exporter import cli as exporter_cli
from exporter.signals import raise_fd_limit, use_uvloop
from nautilus_config.errors import ConfigError, UsageError
from nautilus_loadtest import cli as loadtest_cli
from nautilus_wire.redact import RedactingFilter, redact
from synthetic import cli as synthetic_cli


def cmd_stack(args: argparse.Namespace) -> int:
    from .stack import run_stack

    return run_stack(args)


LOG_LEVELS = ("debug", "info", "warn", "error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nautilus-probe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nautilus-probe {__version__}")
    parser.add_argument("--log.level", dest="log_level", default="info", choices=LOG_LEVELS)
    sub = parser.add_subparsers(dest="command", required=True)
    exporter_cli.add_parser(sub)
    synthetic_cli.add_parsers(sub)
    loadtest_cli.add_parsers(sub)

    p = sub.add_parser("stack", help="run Redis, the synthetic engines and the exporter locally")
    p.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:9478")
    p.add_argument("--redis.port", dest="redis_port", type=int, default=0,
                   help="port for the stack's own redis-server (default: a free one)")
    p.add_argument("--websocket.port", dest="websocket_port", default="8080",
                   help="the first of the three WebSocket engines' consecutive ports, or the "
                        "three, comma-separated (default: 8080, i.e. 8080-8082; another stack "
                        "or the test suite can then run beside this one)")
    p.add_argument("--no-exporter", dest="no_exporter", action="store_true",
                   help="engines only: nothing probes them")
    p.add_argument("--duration", type=float, default=0,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--no-prometheus", dest="no_prometheus", action="store_true",
                   help="leave out Prometheus and Alertmanager")
    p.add_argument("--synthetic.config-file", dest="synthetic_config", default=None,
                   help="the synthetic engines' configuration (default: config/synthetic.yml)")
    p.add_argument("--rules", default=str(Path(__file__).resolve().parent.parent / "alerts" /
                                          "generated"),
                   help="folder with recording.yml and alerts.yml (default: the generated rules)")
    p.set_defaults(func=cmd_stack)
    # Also after the subcommand (`nautilus-probe exporter ... --log.level=debug`, as
    # the docs show it); given there, it wins.
    for command in set(sub.choices.values()):
        command.add_argument("--log.level", dest="log_level", default=argparse.SUPPRESS,
                             choices=LOG_LEVELS)
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
