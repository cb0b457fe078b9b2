"""``api-sandbox serve``: run every fake API in the foreground for scripts and benchmarks."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from api_sandbox.drift import Drift
from api_sandbox.faults import Fault
from api_sandbox.sandbox import Sandbox


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="api-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve all APIs until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (keep it local)")
    serve.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    serve.add_argument("--seed", type=int, default=42, help="data seed")
    serve.add_argument("--records", type=int, default=None, help="count of every paginated stream")
    serve.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="API.STREAM=N",
        help="count of one stream, over --records (e.g. rewards.orders=20000)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help='e.g. "kind=status,api=rewards,path=/v2/orders,status=429,retry_after=2,times=1"',
    )
    serve.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="SPEC",
        help="new fields from a record on: api=rewards,stream=orders,start=10,string_from=20",
    )
    return parser


def _counts(specs: Sequence[str]) -> dict[str, dict[str, int]]:
    """``["rewards.orders=20000"]`` as ``{"rewards": {"orders": 20000}}``."""
    counts: dict[str, dict[str, int]] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        api, dot, stream = name.strip().partition(".")
        if not (sep and dot and api and stream and value.strip().isdigit()):
            raise ValueError(f"--count {spec!r} is not API.STREAM=N")
        counts.setdefault(api, {})[stream] = int(value)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``api-sandbox`` script."""
    args = _parser().parse_args(argv)
    try:
        faults = [Fault.parse(spec) for spec in args.fault]
        drifts = [Drift.parse(spec) for spec in args.drift]
        counts = _counts(args.count)
    except ValueError as exc:
        print(f"api-sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox(
            seed=args.seed,
            records=args.records,
            counts=counts,
            faults=faults,
            host=args.host,
            port=args.port,
            drifts=drifts,
        )
    except (KeyError, ValueError) as exc:
        print(f"api-sandbox: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        sandbox.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sandbox.start()
    for api in sandbox.apis:
        print(f"{api} {sandbox.base_url(api)}")
    for api in sandbox.apis:
        creds = " ".join(f"{k}={v}" for k, v in sandbox.credentials(api).items())
        print(f"{api} credentials: {creds}")
    sys.stdout.flush()
    sandbox.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
