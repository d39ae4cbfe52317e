"""`nautilus-probe knobs`: inject a fault into a running synthetic engine (or clear
it) by writing its run-time knobs key; the engine applies it within its report
interval, and the local stack's console says so.

    nautilus-probe knobs risk --error-ratio 1             # every risk request fails
    nautilus-probe knobs risk --op limit_check --service-time 150ms
    nautilus-probe knobs factor --stall 20s/30s           # stop answering 20 s of every 30
    nautilus-probe knobs risk --clear                     # back to the configured behaviour
    nautilus-probe knobs                                  # what is set, engine by engine

Without --redis.url it uses the Redis of the local stack that is running (its
banner prints the URL too).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nautilus_config.checks import duration, name, Node
from nautilus_config.errors import ConfigError, UsageError
from nautilus_wire import protocol

from .engine import knobs_key
from .knobs import Knobs, parse_knobs

# Where a running local stack leaves its Redis URL for this command (and its
# Pushgateway and WebSocket engines for the load tests).
STACK_STATE = Path(tempfile.gettempdir()) / "nautilus-probe-stack.json"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("knobs", help="inject a fault into a synthetic engine, or clear it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", nargs="?", help="engine name (none: show every engine's knobs)")
    p.add_argument("--op", help="only this operation (default: every operation)")
    # A knob not given keeps the engine's configured behaviour.
    configured = "(default: as configured)"
    p.add_argument("--error-ratio", type=float,
                   help=f"share of requests answered with an error {configured}")
    p.add_argument("--drop-ratio", type=float,
                   help=f"share of requests never answered {configured}")
    p.add_argument("--duplicate-ratio", type=float, help=f"share answered twice {configured}")
    p.add_argument("--service-time", help=f"time to answer, e.g. 150ms {configured}")
    p.add_argument("--stall", metavar="DURATION/PERIOD",
                   help=f"stop answering DURATION of every PERIOD, e.g. 20s/30s {configured}")
    p.add_argument("--clear", action="store_true", help="remove the engine's knobs")
    p.add_argument("--redis.url", dest="redis_url",
                   help="the engines' Redis (default: the running local stack's)")
    p.add_argument("--prefix", default=protocol.DEFAULT_PREFIX,
                   help="the engines' stream namespace")
    p.set_defaults(func=cmd_knobs)


def stack_state() -> dict[str, Any]:
    """What the running local stack left for other commands (its Redis URL, its
    Pushgateway's, its WebSocket engines'), or {} when none is running."""
    try:
        state = json.loads(STACK_STATE.read_text())
        os.kill(int(state["pid"]), 0)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def no_stack_found() -> str:
    """Why a command did not find the local stack: it looks in one place only."""
    return (f"no local stack found (a running stack leaves {STACK_STATE}; one started "
            "with another TMPDIR is not seen from here)")


def stack_redis_url() -> str | None:
    """The running local stack's Redis URL, if one is running."""
    url = stack_state().get("redis_url")
    return str(url) if url else None


def requested(args: argparse.Namespace) -> dict[str, Any]:
    """The knobs the flags ask for, validated as an engine would validate them."""
    out: dict[str, Any] = {}
    for flag in ("error_ratio", "drop_ratio", "duplicate_ratio"):
        if getattr(args, flag) is not None:
            out[flag] = getattr(args, flag)
    if args.service_time is not None:
        out["service_time"] = args.service_time
    if args.stall is not None:
        stall_for, slash, period = args.stall.partition("/")
        if not slash:
            raise UsageError(f"--stall: expected DURATION/PERIOD such as 20s/30s, got {args.stall!r}")
        out["stall"] = {"duration": duration("--stall", stall_for),
                        "period": duration("--stall", period or "")}
    try:
        parse_knobs(Node(out, "--"), Knobs())
    except ConfigError as exc:
        raise UsageError(str(exc).replace("--.", "--").replace("_", "-")) from None
    return out


def _client(url: str) -> Any:
    """A synchronous client for the knobs: any URL the engines take but a cluster's."""
    import redis
    from redis.sentinel import Sentinel

    from nautilus_config.messagebus import redis_url_check
    from nautilus_wire.redis_client import SENTINEL_SCHEMES, sentinel_address

    redis_url_check("--redis.url", url)
    if url.startswith("redis+cluster://"):
        raise UsageError("knobs: --redis.url: a Redis Cluster is not supported here; give one "
                         "of its nodes as redis://host:port")
    if url.startswith(SENTINEL_SCHEMES):
        where = sentinel_address(url)
        tls = {"ssl": True} if where.tls else {}
        sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py untyped
            list(where.sentinels), sentinel_kwargs={"socket_timeout": 1, **tls},
            socket_timeout=5, **tls)
        return sentinels.master_for(  # type: ignore[no-untyped-call]  # redis-py untyped
            where.master, db=where.db, decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def cmd_knobs(args: argparse.Namespace) -> int:
    url = args.redis_url or stack_redis_url()
    if url is None:
        raise UsageError(f"{no_stack_found()}: give --redis.url (the stack's banner prints it)")
    with _client(url) as r:
        if args.engine is None:
            keys = sorted(r.scan_iter(f"{args.prefix}:*:knobs"))
            for key in keys:
                print(f"{key}: {r.get(key)}")
            if not keys:
                print("no knobs set: every engine behaves as configured")
            return 0
        name("engine", args.engine)
        key = knobs_key(args.prefix, args.engine)
        if args.clear:
            r.delete(key)
            print(f"{args.engine}: knobs cleared")
            return 0
        knobs = requested(args)
        if not knobs:
            raise UsageError("nothing to set: give a knob (e.g. --error-ratio 1) or --clear")
        if args.op is not None:
            name("--op", args.op)
        current = json.loads(r.get(key) or "{}")
        target = args.op or "*"
        current[target] = {**current.get(target, {}), **knobs}
        r.set(key, json.dumps(current))
        print(f"{args.engine}: {json.dumps(current)}")
    return 0
