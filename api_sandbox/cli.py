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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``api-sandbox`` script."""
    args = _parser().parse_args(argv)
    try:
        faults = [Fault.parse(spec) for spec in args.fault]
        drifts = [Drift.parse(spec) for spec in args.drift]
    except ValueError as exc:
        print(f"api-sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox(
            seed=args.seed,
            records=args.records,
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
