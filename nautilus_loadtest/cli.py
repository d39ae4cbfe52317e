"""The `loadtest`, `validate` and `review` subcommands."""

from __future__ import annotations

from typing import Any
import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from alerts.thresholds import Thresholds
from nautilus_config.messagebus import redis_url_check
from nautilus_wire import protocol, ws_protocol
from nautilus_wire.redact import redact


# Seconds: long enough that the shipped run establishes what it reports (evidence.py):
# a containerized run cuts its duration into ~12 s shares (scenarios.phase_shares).
DEFAULT_DURATION = {"baseline": 30.0, "containerized": 240.0, "websocket": 30.0}


def default_duration(args: argparse.Namespace) -> float:
    if args.kind == "containerized" and args.operations == "all":
        return 300.0  # five more operations, five more shares
    return DEFAULT_DURATION[args.kind]


THRESHOLDS_HELP = ("the targets (default: thresholds.yml in this folder, else the one of the "
                   "checkout this tool runs from)")


def thresholds_path(given: str | None) -> str:
    """--thresholds, or thresholds.yml here, or the checkout's own: the local stack's
    rules come from the latter, so a load test run from another folder judges by the
    same targets."""
    if given is not None:
        return given
    here = Path("thresholds.yml")
    checkout = Path(__file__).resolve().parent.parent / "thresholds.yml"
    return str(here if here.exists() or not checkout.exists() else checkout)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("loadtest", aliases=["bench"],
                       help="load-test runs: baseline (monolith), containerized, websocket")
    p.add_argument("kind", choices=("baseline", "containerized", "websocket"),
                   help="baseline: the serial monolith; containerized: the engines; "
                        "websocket: the WebSocket engines")
    p.add_argument("--redis.url", dest="redis_url", default="redis://127.0.0.1:6379/0",
                   help="the MessageBus (the local stack's banner prints its own)")
    p.add_argument("--transport", choices=protocol.TRANSPORTS, default="streams",
                   help="how requests and replies travel over Redis")
    p.add_argument("--prefix", default=protocol.DEFAULT_PREFIX,
                   help="the stream namespace the engines answer on")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="seconds (whole run; default: baseline 30, containerized 240 (300 "
                        "with --operations all) — long enough that every figure it reports is "
                        "established — websocket 30)")
    p.add_argument("--operations", choices=("first", "all"), default="first",
                   help="containerized: each engine's first operation, or every operation "
                        "thresholds.yml gives a rate (longer: give --duration more)")
    p.add_argument("--rate", type=float, default=100.0,
                   help="containerized: trading requests/s of the open-loop latency phase; "
                        "websocket: heartbeats/s over the held connections")
    p.add_argument("--concurrency", type=int, default=100, metavar="N",
                   help="containerized: requests in flight per worker in closed-loop phases")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="seconds a request waits for its reply (websocket: a connection and "
                        "a heartbeat too)")
    first, last = ws_protocol.DEFAULT_PORTS[0], ws_protocol.DEFAULT_PORTS[-1]
    p.add_argument("--url", action="append",
                   help="websocket: endpoint (repeatable; default: the running local stack's "
                        f"engines, else ws://127.0.0.1:{first}-{last}{ws_protocol.PATH})")
    p.add_argument("--connections", type=int, default=1000, metavar="N",
                   help="websocket: held per worker")
    p.add_argument("--connect-rate", type=float, default=1000.0, help="websocket: per second")
    p.add_argument("--p99-target", type=float, dest="p99_target", metavar="SECONDS",
                   help="containerized: seconds (default: the end-to-end latency target "
                        "of --thresholds)")
    p.add_argument("--thresholds", default=None, metavar="FILE", help=THRESHOLDS_HELP)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes sharing the load; their results merge exactly")
    p.add_argument("--shares", type=int, metavar="N",
                   help="run one share of N of the load (several machines or pods); each "
                        "leaves its result in Redis under --run-id for `merge` (default: the "
                        "whole load here)")
    p.add_argument("--run-id", dest="run_id",
                   help="with --shares: names the run in Redis (default: none; --shares "
                        "needs it)")
    p.add_argument("--share.index", dest="share_index", type=int,
                   help="with --shares: this share, 0..N-1 (default: $JOB_COMPLETION_INDEX)")
    p.add_argument("--out", metavar="FILE",
                   help="result file (default: results/<kind>_results.json)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    _push_flag(p)
    p.set_defaults(func=cmd_loadtest)

    p = sub.add_parser("merge", help="merge the shares of a load test run with --shares "
                                     "(waits for all), write its result")
    p.add_argument("kind", choices=("containerized", "websocket"), help="the run's kind")
    p.add_argument("--redis.url", dest="redis_url", default="redis://127.0.0.1:6379/0",
                   help="the Redis the shares left their results in")
    p.add_argument("--prefix", default=protocol.DEFAULT_PREFIX,
                   help="the stream namespace the shares were given")
    p.add_argument("--shares", type=int, metavar="N",
                   help="how many shares the run was given (required)")
    p.add_argument("--run-id", dest="run_id", help="the run's --run-id (required)")
    p.add_argument("--wait", type=float, default=600.0, metavar="SECONDS",
                   help="seconds to wait for every share's result")
    p.add_argument("--thresholds", default=None, metavar="FILE", help=THRESHOLDS_HELP)
    p.add_argument("--out", metavar="FILE",
                   help="result file (default: results/<kind>_results.json)")
    _push_flag(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("validate", help="judge load-test results against thresholds.yml")
    p.add_argument("--baseline", default="results/baseline_results.json", metavar="FILE",
                   help="a `loadtest baseline` result (default: %(default)s)")
    p.add_argument("--containerized", default="results/containerized_results.json",
                   metavar="FILE",
                   help="a `loadtest containerized` result (default: %(default)s)")
    p.add_argument("--websocket", default=None, metavar="FILE",
                   help="a `loadtest websocket` result (default: results/websocket_results.json "
                        "when it exists; without one its targets are reported as not measured)")
    p.add_argument("--thresholds", default=None, metavar="FILE", help=THRESHOLDS_HELP)
    p.add_argument("--out", default="results/report", metavar="DIR",
                   help="report.md and its plots go here (default: %(default)s)")
    _push_flag(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("review", help="the validate verdicts from PromQL over a time window")
    p.add_argument("--prometheus", default="http://127.0.0.1:9090", metavar="URL",
                   help="the Prometheus that scraped the exporter")
    p.add_argument("--start", metavar="TIME", help="unix seconds or ISO 8601 (default: an hour before --end)")
    p.add_argument("--end", metavar="TIME", help="unix seconds or ISO 8601 (default: now)")
    p.add_argument("--thresholds", default=None, metavar="FILE", help=THRESHOLDS_HELP)
    p.add_argument("--out", default="results/review", metavar="DIR",
                   help="report.md, its plots and review.json go here")
    _push_flag(p)
    p.set_defaults(func=cmd_review)


def _push_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pushgateway.url", dest="pushgateway",
                   help="push the verdicts to this Prometheus Pushgateway (default: the "
                        "running local stack's, if any; '' to push nowhere)")


def _push(command: str, args: argparse.Namespace, t: Thresholds, checks: list[Any],
          runs: dict[str, dict[str, Any]], offered_ops: float | None = None) -> None:
    """Push the judged verdicts under `t`'s capacity job, each with the provenance of
    the runs that measured it (`runs`: metadata by TargetCheck.sources); a Pushgateway
    that cannot take them is reported, and the verdicts still stand (the report is
    written, the exit code says pass or fail)."""
    from synthetic.knob_command import no_stack_found, stack_state

    url = args.pushgateway
    checks = [c for c in checks if c.judged]  # an unproven figure is no verdict to show
    if url is None:
        url = stack_state().get("pushgateway")
        if url is None and checks:  # meant for the stack's Pushgateway: say it went nowhere
            print(f"nautilus-probe {command}: the verdicts were not pushed: {no_stack_found()}; "
                  "give --pushgateway.url ('' to push nowhere)", file=sys.stderr)
    if not url or not checks:
        return
    from .push import push, run_from_metadata

    # The checks by the runs they were computed from (one run: all of them, whatever
    # each says).
    groups: dict[tuple[str, ...], list[Any]] = {}
    for c in checks:
        groups.setdefault(tuple(runs) if len(runs) == 1 else c.sources, []).append(c)
    n = 0
    try:
        for sources, mine in groups.items():
            metas = [runs[s] for s in sources if s in runs]
            n += push(url, mine, run_from_metadata(command, metas, offered_ops),
                      t.jobs.capacity)
    except (OSError, ValueError) as exc:  # unreachable, refused, or not a URL
        print(f"nautilus-probe {command}: could not push the verdicts to {redact(url)}: "
              f"{redact(str(exc))}", file=sys.stderr)
        return
    print(f"{n} verdicts pushed to {redact(url)}")


def _need_plots(command: str) -> int | None:
    """The report's plots need the [loadtest] extra; say so instead of a traceback."""
    if importlib.util.find_spec("matplotlib") is None:
        print(f"nautilus-probe {command}: the report plots need matplotlib; install the "
              "extra: pip install 'nautilus-probe[loadtest]'", file=sys.stderr)
        return 2
    return None


def stack_websocket_urls() -> list[str]:
    """The running local stack's WebSocket engines (`stack --websocket.port` may have
    moved them), else where a stack puts them by default."""
    from synthetic.knob_command import stack_state

    urls = stack_state().get("websocket_urls")
    if isinstance(urls, list) and urls:
        return [str(u) for u in urls]
    return [ws_protocol.local_url(p) for p in ws_protocol.DEFAULT_PORTS]


def cmd_loadtest(args: argparse.Namespace) -> int:
    from .report import others, summary_table
    from .results import Containerized
    from .runs import Contaminated, NothingAnswered, run
    from .validate import capacity_checks, offered_ops

    opts = {"redis_url": redis_url_check("--redis.url", args.redis_url),
            "transport": args.transport, "prefix": args.prefix, "prober": "bench",
            "duration": args.duration if args.duration is not None else default_duration(args),
            "operations": args.operations, "timeout": args.timeout, "rate": args.rate,
            "concurrency": args.concurrency, "progress": not args.quiet,
            "urls": args.url or stack_websocket_urls(),
            "connections": args.connections, "connect_rate": args.connect_rate,
            "p99_target": args.p99_target, "thresholds": thresholds_path(args.thresholds)}
    t = Thresholds.load(thresholds_path(args.thresholds))
    system = t.system
    if args.p99_target is None:
        opts["p99_target"] = system["latency_average_seconds"].max
    opts["error_ratio_target"] = system["error_ratio"].max
    if args.shares is not None:
        return _run_share(args, opts, t)
    out = args.out or f"results/{args.kind}_results.json"
    try:
        result = run(args.kind, opts, args.workers, out)
    except (NothingAnswered, Contaminated) as exc:
        print(f"nautilus-probe loadtest: {redact(str(exc))}", file=sys.stderr)
        return 2
    print(summary_table(result, t))
    print(f"written to {out}")
    if isinstance(result, Containerized) and (
            line := others(result.contamination, "engines", args.prefix)):
        # Not refused as a baseline is (the engines may answer only on the prefix an
        # exporter probes), but never silent; validate's report says it too.
        print(f"nautilus-probe loadtest: warning: {line}.", file=sys.stderr)
    _push("loadtest", args, t, capacity_checks(t, result), {args.kind: result.metadata},
          offered_ops(result))
    return 0


def _check_shares(args: argparse.Namespace) -> str | None:
    """What is wrong with --shares / --run-id, if anything."""
    if args.shares is None:
        return "--shares N: how many shares the run has"
    if args.shares < 1:
        return f"--shares must be 1 or more, got {args.shares}"
    if not args.run_id or not all(c.isalnum() or c in "-_." for c in args.run_id):
        return "--shares needs --run-id: letters, digits, '-', '_' or '.'"
    return None


def _run_share(args: argparse.Namespace, opts: dict[str, Any], t: Thresholds) -> int:
    """One share of a run: its part of the load, its raw result left in Redis."""
    from .report import merge, report, summary_table
    from .runs import _in_process
    from .shares import ShareError, share_index, share_options, store

    problem = _check_shares(args)
    if problem is None and args.workers != 1:
        problem = "--workers and --shares: use one or the other"
    if problem is None and args.out:
        problem = "--out with --shares: a share leaves its result in Redis; `merge --out` writes the run's"
    try:
        if problem:
            raise ShareError(problem)
        share_options(args.kind, opts, 0, args.shares)  # what cannot be shared, said first
        index = share_index(args.share_index, args.shares)
        mine = share_options(args.kind, opts, index, args.shares)
    except ShareError as exc:
        print(f"nautilus-probe loadtest: {exc}", file=sys.stderr)
        return 2
    started = time.time()
    raw = _in_process(args.kind, mine)
    ended = time.time()
    print(summary_table(report(merge([raw]), 1, mine.get("concurrency", 1)), t))
    store(mine, args.run_id, args.kind, index, args.shares, opts, raw, started, ended)
    print(f"share {index} of {args.shares} of run {args.run_id!r} stored in Redis at "
          f"{redact(opts['redis_url'])}; `nautilus-probe merge {args.kind}` merges the run")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from .report import summary_table
    from .results import encode
    from .runs import _answered
    from .shares import fetch, merge_shares, retire, ShareError
    from .validate import capacity_checks, offered_ops

    problem = _check_shares(args)
    if problem:
        print(f"nautilus-probe merge: {problem}", file=sys.stderr)
        return 2
    url = redis_url_check("--redis.url", args.redis_url)
    try:
        records = fetch(url, args.prefix, args.run_id, args.kind, args.shares, args.wait)
    except ShareError as exc:
        print(f"nautilus-probe merge: {exc}", file=sys.stderr)
        return 2
    # The run's whole options, as share 0 was given them; the URL is this command's.
    whole = {**records[0]["options"], "redis_url": url}
    out = args.out or f"results/{args.kind}_results.json"
    if args.kind != "websocket" and not sum(_answered(r["raw"]) for r in records):
        print(f"nautilus-probe merge: no request of run {args.run_id!r} was answered: is the "
              "MessageBus reachable from the shares, and are the engines running? No result "
              f"was written to {out}.", file=sys.stderr)
        return 2
    result = merge_shares(args.kind, records, whole, args.run_id)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(encode(result), fh, indent=2)
    t = Thresholds.load(thresholds_path(args.thresholds))
    print(summary_table(result, t))
    retire(url, args.prefix, args.run_id, args.kind)
    print(f"{args.shares} shares of run {args.run_id!r} merged, written to {out}")
    _push("merge", args, t, capacity_checks(t, result), {args.kind: result.metadata},
          offered_ops(result))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    if (code := _need_plots("validate")) is not None:
        return code
    from .results import UnusableResults
    from .validate import validate

    t = Thresholds.load(thresholds_path(args.thresholds))
    try:
        j = validate(t, args.baseline, args.containerized, args.out, args.websocket)
    except UnusableResults as exc:
        print(f"nautilus-probe validate: {exc}", file=sys.stderr)
        return 2
    print(j.text)
    print(f"\n{j.headline}; report in {args.out}/report.md")
    _push("validate", args, t, j.checks, j.runs)
    return 0 if j.passed else 1


def cmd_review(args: argparse.Namespace) -> int:
    if (code := _need_plots("review")) is not None:
        return code
    from .results import encode
    from .review import NoData, collect, parse_time
    from .validate import judge

    end = parse_time(args.end) if args.end else time.time()
    start = parse_time(args.start) if args.start else end - 3600
    if start >= end:
        print("nautilus-probe: --start must be before --end", file=sys.stderr)
        return 2
    try:
        baseline, containerized = collect(args.prometheus, start, end)
    except NoData as exc:
        print(f"nautilus-probe review: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"nautilus-probe: cannot query {args.prometheus}: {exc}", file=sys.stderr)
        return 2
    t = Thresholds.load(thresholds_path(args.thresholds))
    j = judge(t, baseline, containerized, args.out)
    with open(f"{args.out}/review.json", "w") as fh:
        json.dump({"baseline": encode(baseline), "containerized": encode(containerized)}, fh,
                  indent=2)
    print(j.text)
    print(f"\n{j.headline}; report in {args.out}/report.md")
    _push("review", args, t, j.checks, j.runs)
    return 0 if j.passed else 1
