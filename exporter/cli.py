"""The `exporter` subcommand: flags, --config.check, one process or --workers N."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import socket
import sys
import threading
from typing import NoReturn

from .config import Config, parse_shard
from .listen import parse_listen_address
from .signals import EXIT_WITHIN_S, until_signalled
from .web import WebOptions
from .web_config import WebSecurity
from nautilus_config.checks import duration_or_zero
from nautilus_config.errors import ConfigError, UsageError

DEFAULT_LISTEN = ":9478"
STOP_BUDGET_S = 1.7
# Past this after SIGTERM the process leaves whatever is still stopping (a loop that
# ignores cancellation, an executor thread, a busy interpreter): the promise kept.
HARD_EXIT_S = EXIT_WITHIN_S - 0.1


_deadline: list[threading.Timer] = []


def exit_by_deadline() -> None:
    """Start the hard deadline (once): a daemon timer that ends the process if
    stopping is still under way by then. Called in the signal handler, so it counts
    from the signal. The garbage collector is off from here: a full collection of a
    million probes in flight takes longer than the stop."""
    if _deadline:
        return
    gc.disable()

    def force() -> None:
        log.warning("still stopping %.1f s after the signal; exiting now", HARD_EXIT_S)
        logging.shutdown()
        os._exit(0)

    _deadline.append(timer := threading.Timer(HARD_EXIT_S, force))
    timer.daemon = True
    timer.start()


def exit_now(code: int) -> NoReturn:
    """Leave without the interpreter's teardown: freeing every object one by one
    (500 MB of probes in flight took 0.5 s) is not needed to exit, and is what a
    SIGTERM under load would wait for after the stop itself."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

log = logging.getLogger("nautilus_probe")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("exporter", help="run the Prometheus exporter")
    p.add_argument("--config.file", dest="config_file", default="exporter.yml",
                   help="the probe plan (docs/configuration.md)")
    p.add_argument("--config.check", dest="config_check", action="store_true",
                   help="validate the configuration and exit")
    p.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN,
                   help="address to serve /metrics and the /-/ endpoints on")
    p.add_argument("--web.render-max-age", dest="render_max_age", default="500ms",
                   help="scrapes within this long of a render share it (0: render each)")
    p.add_argument("--web.config.file", dest="web_config_file",
                   help="TLS and basic auth, in the Prometheus exporter-toolkit format "
                        "(default: none: plain HTTP, no authentication)")
    p.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", action="store_true",
                   help="allow POST/PUT /-/reload (SIGHUP always reloads)")
    p.add_argument("--redis.url", dest="redis_url",
                   help="the MessageBus (default: the config file's redis_url)")
    p.add_argument("--shard", default="1/1",
                   help="i/N: run shard i of N of the probe plan (one exporter per shard); "
                        "ordinal/N: i is the StatefulSet pod's ordinal + 1, read from the "
                        "host name ($HOSTNAME, e.g. nautilus-probe-2 runs 3/N)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N worker processes (shards 1/N..N/N) behind this one /metrics")
    p.set_defaults(func=cmd_exporter)


async def _run_exporter(args: argparse.Namespace, config: Config, stop: asyncio.Event) -> None:
    from .runtime import Exporter
    from .web import ExporterBackend, install_sighup, serve

    exporter = Exporter(args.config_file, redis_url=args.redis_url, shard=args.shard)
    security = args.web.security
    exporter.metrics.web_config_ok.set_function(lambda: float(security.last_load_ok))
    # Listen first: a busy port is an error before any probe is sent.
    runner = await serve(ExporterBackend(exporter), args.listen_address, args.web)
    await exporter.start(config)
    install_sighup(exporter)
    log.info("listening on %s; metrics at /metrics", args.listen_address)
    await stop.wait()
    exit_by_deadline()
    try:
        # Within signals.EXIT_WITHIN_S in every state; what is left is cancelled at exit.
        async with asyncio.timeout(STOP_BUDGET_S):
            await runner.cleanup()
            await exporter.stop()
    except TimeoutError:
        log.warning("stopping took over %.1f s; exiting without waiting further", STOP_BUDGET_S)


def shard_from_ordinal(text: str, hostname: str | None = None) -> str:
    """`ordinal/N` -> `i/N` with i the pod's StatefulSet ordinal + 1: the number after
    the host name's last '-' ($HOSTNAME, else the system's). Any other text is returned
    as it is, for parse_shard. The exporter does this itself so a pod needs no shell."""
    if not text.startswith("ordinal/"):
        return text
    count = text.removeprefix("ordinal/")
    host = hostname or os.environ.get("HOSTNAME") or socket.gethostname()
    match = re.fullmatch(r".+-(\d+)", host)
    if match is None:
        raise ConfigError("--shard", f"ordinal/{count} takes the shard from a StatefulSet pod's "
                          f"ordinal (the host name's last '-<n>'); host name {host!r} has none")
    ordinal = int(match[1])
    if count.isdigit() and ordinal >= int(count):
        raise ConfigError("--shard", f"pod {host!r} has ordinal {ordinal}, past the {count} shards "
                          "of ordinal/" + count + ": the StatefulSet's replicas and the shard "
                          "count must be equal")
    return f"{ordinal + 1}/{count}"


def cmd_exporter(args: argparse.Namespace) -> int:
    args.shard = parse_shard(shard_from_ordinal(args.shard))
    # Parsed once: the exporter starts with this very object (no second read).
    # The limits hold for each process's part: this one's, or each worker's.
    parts = ([(i, args.workers) for i in range(1, args.workers + 1)] if args.workers > 1
             else [args.shard])
    cfg, *_ = [Config.load(args.config_file, redis_url=args.redis_url, shard=p) for p in parts]
    # The web config too: certificates, users and headers are checked before anything
    # listens (and by --config.check).
    security = WebSecurity(args.web_config_file)
    if args.config_check:
        need = cfg.memory
        print(f"{args.config_file}: OK ({len(cfg.probes)} probe series; memory bound "
              f"{-(-need.total // 2**20):,} MiB of max_memory_mib {cfg.max_memory // 2**20:,}: "
              f"{need.describe()} MiB)")
        if args.web_config_file:
            print(f"{args.web_config_file}: OK ({security.describe()})")
        return 0
    parse_listen_address(args.listen_address)
    args.web = WebOptions(duration_or_zero("--web.render-max-age", args.render_max_age),
                          args.enable_lifecycle, security)
    if args.workers > 1:
        if args.shard != (1, 1):
            raise UsageError("--workers and --shard: use one or the other")
        from .workers import run_workers, worker_argv

        asyncio.run(until_signalled(
            lambda stop: run_workers(args.workers, worker_argv(args), args.listen_address,
                                     args.web, stop, exit_by_deadline), exit_by_deadline))
        exit_now(0)
    asyncio.run(until_signalled(lambda stop: _run_exporter(args, cfg, stop), exit_by_deadline))
    exit_now(0)
