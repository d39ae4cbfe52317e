"""The `engines`, `monolith` and `ws-engine` subcommands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl

from exporter.signals import until_signalled
from nautilus_config.checks import duration_or_zero, ratio
from nautilus_config.messagebus import redis_url_override
from nautilus_wire import protocol
from nautilus_wire.redis_client import connect, ready

from . import knob_command
from .config import SyntheticConfig
from .engine import SyntheticEngine
from .monolith import Monolith
from .websocket_engine import WebSocketEngine, WsKnobs

log = logging.getLogger("nautilus_probe")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    knob_command.add_parser(sub)
    p = sub.add_parser("engines", help="run synthetic engines")
    p.add_argument("--config.file", dest="config_file", default="synthetic.yml",
                   help="the engines and their behaviour (docs/configuration.md)")
    p.add_argument("--config.check", dest="config_check", action="store_true",
                   help="validate the configuration and exit")
    p.add_argument("--engine", action="append",
                   help="serve only this engine (repeatable; default: every engine the file "
                        "names)")
    p.add_argument("--redis.url", dest="redis_url",
                   help="the MessageBus (default: the config file's redis_url)")
    p.set_defaults(func=cmd_engines)

    p = sub.add_parser("monolith", help="run the serial ~200 ms monolith baseline")
    p.add_argument("--redis.url", dest="redis_url", default="redis://127.0.0.1:6379/0",
                   help="the MessageBus")
    p.add_argument("--transport", choices=protocol.TRANSPORTS, default="streams",
                   help="how requests and replies travel over Redis")
    p.add_argument("--prefix", default=protocol.DEFAULT_PREFIX,
                   help="the stream namespace it answers on")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="requests served at once (1: the serial original; more model a "
                        "scaled-out monolith)")
    p.set_defaults(func=cmd_monolith)

    p = sub.add_parser("ws-engine", help="run synthetic WebSocket engines (one per --port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, action="append", required=True,
                   help="an engine's port (required; repeatable: one engine per --port)")
    p.add_argument("--reply-delay", default="0", help="before each reply, e.g. 10ms")
    p.add_argument("--error-ratio", type=float, default=0.0,
                   help="share of replies replaced by an error frame")
    p.add_argument("--drop-ratio", type=float, default=0.0,
                   help="share of open connections aborted every --drop-interval")
    p.add_argument("--drop-interval", default="1s", help="how often --drop-ratio applies")
    p.add_argument("--refuse", action="store_true", help="answer new handshakes with 503")
    p.add_argument("--token", action="append",
                   help="require ?token= (repeatable; default: none required)")
    p.add_argument("--broadcast-rate", type=float, default=10.0,
                   help="broadcast frames per second per topic")
    p.add_argument("--broadcast-skip-ratio", type=float, default=0.0,
                   help="share of broadcast sequence numbers skipped (gaps the client counts)")
    p.add_argument("--tls-cert", help="PEM certificate: serve wss:// (default: none: ws://)")
    p.add_argument("--tls-key", help="the certificate's PEM key (default: in --tls-cert)")
    p.set_defaults(func=cmd_ws_engine)


def cmd_engines(args: argparse.Namespace) -> int:
    cfg = SyntheticConfig.load(args.config_file, redis_url=args.redis_url)
    specs = [cfg.engine(name) for name in args.engine] if args.engine else list(cfg.engines)
    if args.config_check:
        print(f"{args.config_file}: OK ({len(specs)} engines)")
        return 0
    redis_url = cfg.redis_url

    async def body(stop: asyncio.Event) -> None:
        client = connect(redis_url, cfg.redis_access)
        await ready(client)
        engines = [SyntheticEngine(client, s.name, s.ops, transport=cfg.transport,
                                   prefix=cfg.prefix, concurrency=cfg.concurrency,
                                   report_interval=cfg.report_interval) for s in specs]
        log.info("serving engines %s on %s", ", ".join(s.name for s in specs), redis_url)
        await asyncio.gather(*(e.run(stop) for e in engines))
        await client.aclose()

    asyncio.run(until_signalled(body))
    return 0


def cmd_monolith(args: argparse.Namespace) -> int:
    redis_url_override(args.redis_url, args.transport)
    async def body(stop: asyncio.Event) -> None:
        client = connect(args.redis_url)
        await Monolith(client, transport=args.transport, prefix=args.prefix,
                       workers=args.workers).run(stop)
        await client.aclose()

    asyncio.run(until_signalled(body))
    return 0


def cmd_ws_engine(args: argparse.Namespace) -> int:
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
                               for e, port in zip(engines, args.port, strict=True)))

    log.info("WebSocket engines on %s", ", ".join(f"{args.host}:{p}" for p in args.port))
    asyncio.run(until_signalled(body))
    return 0
