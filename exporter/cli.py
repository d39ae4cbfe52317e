"""`nautilus-probe` console script: exporter, synthetic engines, monolith, local stack."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Awaitable, Callable

from . import __version__
from .yamlcheck import ConfigError

DEFAULT_LISTEN = ":9478"

log = logging.getLogger("nautilus_probe")


def _raise_fd_limit() -> None:
    """Holding 10,000 WebSocket connections needs more descriptors than the usual
    soft limit of 1,024: take what the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _until_signalled(body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await body(stop)


# -- exporter -----------------------------------------------------------------------

async def _run_exporter(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from .app import Exporter
    from .web import install_sighup, serve

    exporter = Exporter(args.config_file, redis_url=args.redis_url, shard=args.shard)
    await exporter.start()
    runner = await serve(exporter, args.listen_address)
    install_sighup(exporter)
    log.info("listening on %s; metrics at /metrics", args.listen_address)
    await stop.wait()
    await runner.cleanup()
    await exporter.stop()


def cmd_exporter(args: argparse.Namespace) -> int:
    from .config import Config, parse_shard
    from .web import parse_listen_address

    args.shard = parse_shard(args.shard)
    cfg = Config.load(args.config_file, redis_url=args.redis_url, shard=args.shard)
    if args.config_check:
        print(f"{args.config_file}: OK ({len(cfg.probes)} probe streams)")
        return 0
    parse_listen_address(args.listen_address)
    if args.workers > 1:
        if args.shard != (1, 1):
            raise ValueError("--workers and --shard: use one or the other")
        from .workers import run_workers, worker_argv

        asyncio.run(_until_signalled(
            lambda stop: run_workers(args.workers, worker_argv(args), args.listen_address, stop)))
        return 0
    asyncio.run(_until_signalled(lambda stop: _run_exporter(args, stop)))
    return 0


# -- synthetic engines ----------------------------------------------------------------

def cmd_engines(args: argparse.Namespace) -> int:
    from synthetic.config import SyntheticConfig
    from synthetic.engine import SyntheticEngine
    from .transport import connect, ready

    cfg = SyntheticConfig.load(args.config_file)
    specs = [cfg.engine(name) for name in args.engine] if args.engine else list(cfg.engines)
    if args.config_check:
        print(f"{args.config_file}: OK ({len(specs)} engines)")
        return 0
    redis_url = args.redis_url or cfg.redis_url

    async def body(stop: asyncio.Event) -> None:
        client = connect(redis_url)
        await ready(client)
        engines = [SyntheticEngine(client, s.name, s.ops, transport=cfg.transport,
                                   prefix=cfg.prefix, concurrency=cfg.concurrency,
                                   report_interval=cfg.report_interval) for s in specs]
        log.info("serving engines %s on %s", ", ".join(s.name for s in specs), redis_url)
        await asyncio.gather(*(e.run(stop) for e in engines))
        await client.aclose()

    asyncio.run(_until_signalled(body))
    return 0


def cmd_monolith(args: argparse.Namespace) -> int:
    from synthetic.monolith import Monolith
    from .transport import connect

    async def body(stop: asyncio.Event) -> None:
        client = connect(args.redis_url)
        await Monolith(client, transport=args.transport, prefix=args.prefix,
                       workers=args.workers).run(stop)
        await client.aclose()

    asyncio.run(_until_signalled(body))
    return 0


def cmd_ws_engine(args: argparse.Namespace) -> int:
    import ssl

    from synthetic.websocket_engine import WebSocketEngine, WsKnobs

    from .yamlcheck import duration_or_zero, ratio

    knobs = WsKnobs(
        reply_delay=duration_or_zero("--reply-delay", args.reply_delay),
        error_ratio=ratio("--error-ratio", args.error_ratio),
        drop_ratio=ratio("--drop-ratio", args.drop_ratio),
        drop_interval=duration_or_zero("--drop-interval", args.drop_interval) or 1.0,
        refuse=args.refuse, tokens=frozenset(args.token or ()),
        broadcast_rate=args.broadcast_rate,
        broadcast_skip_ratio=ratio("--broadcast-skip-ratio", args.broadcast_skip_ratio))
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    async def body(stop: asyncio.Event) -> None:
        engines = [WebSocketEngine(knobs) for _ in args.port]
        await asyncio.gather(*(e.run(stop, port, args.host, context)
                               for e, port in zip(engines, args.port)))

    log.info("WebSocket engines on %s", ", ".join(f"{args.host}:{p}" for p in args.port))
    asyncio.run(_until_signalled(body))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmarks import run, summary_table
    from .yamlcheck import redis_url_check

    opts = {"redis_url": redis_url_check("--redis.url", args.redis_url),
            "transport": args.transport, "prefix": args.prefix, "prober": "bench",
            "duration": args.duration, "timeout": args.timeout, "rate": args.rate,
            "concurrency": args.concurrency, "progress": not args.quiet,
            "urls": args.url or [f"ws://127.0.0.1:{p}/ws/engine/status" for p in (8080, 8081, 8082)],
            "connections": args.connections, "connect_rate": args.connect_rate,
            "p99_target": args.p99_target}
    if args.p99_target is None:
        from .thresholds import Thresholds

        opts["p99_target"] = Thresholds.load(args.thresholds).system["latency_average_seconds"].max
    out = args.out or f"results/{args.kind}_results.json"
    result = run(args.kind, opts, args.workers, out)
    print(summary_table(args.kind, result))
    print(f"written to {out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .thresholds import Thresholds
    from .validate import validate

    try:
        ok, text = validate(Thresholds.load(args.thresholds), args.baseline, args.containerized,
                            args.out)
    except (OSError, ValueError, KeyError) as exc:
        print(f"nautilus-probe: cannot read the results: {exc!r}", file=sys.stderr)
        return 2
    print(text)
    print(f"\n{'PASS' if ok else 'FAIL'}; report in {args.out}/report.md")
    return 0 if ok else 1


def cmd_review(args: argparse.Namespace) -> int:
    import json
    import time

    from .review import collect, parse_time
    from .thresholds import Thresholds
    from .validate import judge

    end = parse_time(args.end) if args.end else time.time()
    start = parse_time(args.start) if args.start else end - 3600
    if start >= end:
        print("nautilus-probe: --start must be before --end", file=sys.stderr)
        return 2
    try:
        baseline, containerized = collect(args.prometheus, start, end)
    except (OSError, ValueError) as exc:
        print(f"nautilus-probe: cannot query {args.prometheus}: {exc}", file=sys.stderr)
        return 2
    ok, text = judge(Thresholds.load(args.thresholds), baseline, containerized, args.out)
    with open(f"{args.out}/review.json", "w") as fh:
        json.dump({"baseline": baseline, "containerized": containerized}, fh, indent=2)
    print(text)
    print(f"\n{'PASS' if ok else 'FAIL'}; report in {args.out}/report.md")
    return 0 if ok else 1


def cmd_stack(args: argparse.Namespace) -> int:
    from synthetic.stack import run_stack

    return run_stack(args)


# -- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from . import protocol

    parser = argparse.ArgumentParser(prog="nautilus-probe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nautilus-probe {__version__}")
    parser.add_argument("--log.level", dest="log_level", default="info",
                        choices=("debug", "info", "warn", "error"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("exporter", help="run the Prometheus exporter")
    p.add_argument("--config.file", dest="config_file", default="exporter.yml")
    p.add_argument("--config.check", dest="config_check", action="store_true",
                   help="validate the configuration and exit")
    p.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN)
    p.add_argument("--redis.url", dest="redis_url", help="override the config's redis_url")
    p.add_argument("--shard", default="1/1",
                   help="i/N: run shard i of N of the probe plan (one exporter per shard)")
    p.add_argument("--workers", type=int, default=1,
                   help="N worker processes (shards 1/N..N/N) behind this one /metrics")
    p.set_defaults(func=cmd_exporter)

    p = sub.add_parser("engines", help="run synthetic engines")
    p.add_argument("--config.file", dest="config_file", default="synthetic.yml")
    p.add_argument("--config.check", dest="config_check", action="store_true",
                   help="validate the configuration and exit")
    p.add_argument("--engine", action="append", help="serve only this engine (repeatable)")
    p.add_argument("--redis.url", dest="redis_url", help="override the config's redis_url")
    p.set_defaults(func=cmd_engines)

    p = sub.add_parser("monolith", help="run the serial ~200 ms monolith baseline")
    p.add_argument("--redis.url", dest="redis_url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--transport", choices=protocol.TRANSPORTS, default="streams")
    p.add_argument("--prefix", default=protocol.DEFAULT_PREFIX)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_monolith)

    p = sub.add_parser("ws-engine", help="run synthetic WebSocket engines (one per --port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, action="append", required=True)
    p.add_argument("--reply-delay", default="0", help="e.g. 10ms")
    p.add_argument("--error-ratio", type=float, default=0.0)
    p.add_argument("--drop-ratio", type=float, default=0.0,
                   help="share of open connections aborted every --drop-interval")
    p.add_argument("--drop-interval", default="1s")
    p.add_argument("--refuse", action="store_true", help="answer new handshakes with 503")
    p.add_argument("--token", action="append", help="require ?token= (repeatable)")
    p.add_argument("--broadcast-rate", type=float, default=10.0)
    p.add_argument("--broadcast-skip-ratio", type=float, default=0.0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.set_defaults(func=cmd_ws_engine)

    p = sub.add_parser("bench", help="benchmark runs: baseline (monolith), containerized, websocket")
    p.add_argument("kind", choices=("baseline", "containerized", "websocket"))
    p.add_argument("--redis.url", dest="redis_url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--transport", choices=protocol.TRANSPORTS, default="streams")
    p.add_argument("--prefix", default=protocol.DEFAULT_PREFIX)
    p.add_argument("--duration", type=float, default=30.0, help="seconds (whole run)")
    p.add_argument("--rate", type=float, default=100.0,
                   help="containerized: trading requests/s of the open-loop latency phase")
    p.add_argument("--concurrency", type=int, default=100,
                   help="containerized: requests in flight per worker in closed-loop phases")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--url", action="append",
                   help="websocket: endpoint (repeatable; default the stack's 8080-8082)")
    p.add_argument("--connections", type=int, default=1000, help="websocket: held per worker")
    p.add_argument("--connect-rate", type=float, default=1000.0, help="websocket: per second")
    p.add_argument("--p99-target", type=float, dest="p99_target",
                   help="containerized: seconds; default the end-to-end latency target")
    p.add_argument("--thresholds", default="thresholds.yml")
    p.add_argument("--workers", type=int, default=1, help="processes; results merge exactly")
    p.add_argument("--out", help="result file (default results/<kind>_results.json)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("validate", help="judge bench results against thresholds.yml")
    p.add_argument("--baseline", default="results/baseline_results.json")
    p.add_argument("--containerized", default="results/containerized_results.json")
    p.add_argument("--thresholds", default="thresholds.yml")
    p.add_argument("--out", default="results/report", help="report and plots go here")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("review", help="the validate verdicts from PromQL over a time window")
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    p.add_argument("--start", help="unix seconds or ISO 8601 (default: an hour before --end)")
    p.add_argument("--end", help="unix seconds or ISO 8601 (default: now)")
    p.add_argument("--thresholds", default="thresholds.yml")
    p.add_argument("--out", default="results/review")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("stack", help="run Redis, the synthetic engines and the exporter locally")
    p.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:9478")
    p.add_argument("--redis.port", dest="redis_port", type=int, default=0,
                   help="port for the stack's own redis-server (default: a free one)")
    p.add_argument("--duration", type=float, default=0,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=cmd_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {"warn": "WARNING"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _event_loop_policy()
    _raise_fd_limit()
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"nautilus-probe: config error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad flag values
        print(f"nautilus-probe: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the listen address is taken
        print(f"nautilus-probe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
