"""The ``--overlap`` mode of issue 20: overlapped requests against a slow API.

The sandbox (a process of its own) adds a fixed latency to every data reply and has no
rate limit. Each of the five taps syncs everything at the sandbox's default size, and
tap-rewards syncs 20,000 orders (a list paged by a known total), once with
``max_concurrent_requests: 1`` and once with the default (8), both with
``max_requests_per_minute: 0``, at 50 ms and at 200 ms. Per run: wall time (process
start to exit), the data requests the sandbox answered, the most it answered at once,
and the 429s it served. Then a second run with the contracts' rate limits switched on in
the sandbox (rewards 10 a second, inventory 100 a calendar minute) and the taps' default
budgets: it must provoke no 429, and rewards must keep at least 90% of 10 requests a
second. The figures are saved as JSON and drawn by ``benchmarks/chart.py``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT_BIN = ROOT / ".venv" / "bin"
OUT = ROOT / "benchmarks" / "out"
TAPS = ("rewards", "invoicing", "inventory", "reporting", "bookings")
#: What a tap needs besides the sandbox's base URL and credentials to read the data.
EXTRA = {"reporting": {"start_date": "2023-07-01T00:00:00Z", "window_days": 31}}
LATENCIES = (0.05, 0.2)
ORDERS = 20_000
RATE_LIMITS = (
    "kind=rate_limit,api=rewards,per_second=10,window=1,times=none",
    "kind=rate_limit,api=inventory,per_second=100,window=60,fixed_window=true,times=none",
)
#: The issue's targets.
FIVE_TAPS_AT_200MS = 4.0
ORDERS_AT_50MS = 6.0
REWARDS_SHARE_OF_BUDGET = 0.90
REWARDS_PER_SECOND = 10.0


@dataclass
class Run:
    what: str  # "rewards", ..., or "orders-20000"
    latency: float
    concurrent: int
    seconds: float
    requests: int
    peak: int
    status_429: int
    per_second: float  # data requests a second, first to last
    #: Process start to the first request the sandbox saw (interpreter, imports, setup).
    start: float = 0.0
    #: The last request's arrival to the process's exit (the last reply's latency, the
    #: last page's records, the interpreter's shutdown).
    tail: float = 0.0


#: The project's packages, compiled to bytecode before timing (see ``_compile``).
PACKAGES = ("taps_core", *(f"tap_{name}" for name in TAPS), "api_sandbox")


class Sandbox:
    """``api-sandbox serve`` with its control endpoints, in a process of its own."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(PROJECT_BIN / "api-sandbox"), "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.base: dict[str, str] = {}
        self.credentials: dict[str, dict[str, str]] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            words = line.split()
            if len(words) == 2:
                self.base[words[0]] = words[1]
            elif len(words) >= 2 and words[1] == "credentials:":
                self.credentials[words[0]] = dict(w.split("=", 1) for w in words[2:])
                if len(self.credentials) == len(TAPS):
                    break
        self.url = self.base["rewards"].rsplit("/", 1)[0]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_sandbox/{path}", data, method=method)
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def set_faults(self, *specs: dict) -> None:
        self.control("DELETE", "faults")
        for spec in specs:
            self.control("POST", "faults", spec)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _config(sandbox: Sandbox, api: str, work: Path, **settings: Any) -> Path:
    path = work / f"{api}-config.json"
    config = {"base_url": sandbox.base[api], **sandbox.credentials[api], **EXTRA.get(api, {})}
    path.write_text(json.dumps({**config, **settings}))
    return path


def _orders_catalog(config: Path, work: Path) -> Path:
    discovered = json.loads(
        subprocess.run(
            [str(PROJECT_BIN / "tap-rewards"), "--config", str(config), "--discover"],
            check=True,
            capture_output=True,
        ).stdout
    )
    for stream in discovered["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "orders"
    path = work / "orders-catalog.json"
    path.write_text(json.dumps(discovered))
    return path


def sync(
    sandbox: Sandbox, what: str, latency: float, concurrent: int, work: Path, **settings: Any
) -> Run:
    """One timed sync to /dev/null; the sandbox's counters read afterwards."""
    api = "rewards" if what.startswith("orders") else what
    config = _config(sandbox, api, work, max_concurrent_requests=concurrent, **settings)
    argv = [str(PROJECT_BIN / f"tap-{api}"), "--config", str(config)]
    if api != what:
        argv += ["--catalog", str(_orders_catalog(config, work))]
    sandbox.control("DELETE", "requests")
    sandbox.control("DELETE", "in_flight")
    log = work / f"{what}-{latency}-{concurrent}.stderr"
    began, spawned = time.perf_counter(), time.time()
    with log.open("wb") as err:
        code = subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=err)
    seconds = time.perf_counter() - began
    if code != 0:
        raise RuntimeError(f"{what} exited {code}: {log.read_text()[-2000:]}")
    requests = [r for r in sandbox.control("GET", "requests") if r["api"] == api]
    data = [r for r in requests if "token" not in r["path"]]
    times = sorted(r["time"] for r in data)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return Run(
        what,
        latency,
        concurrent,
        seconds,
        len(data),
        sandbox.control("GET", "in_flight")["peak"],
        sum(1 for r in requests if r["status"] == 429),
        rate,
        times[0] - spawned if times else 0.0,
        spawned + seconds - times[-1] if times else 0.0,
    )


def _compile(report: Any) -> None:
    """Write the project's bytecode once, as installing a wheel does.

    The project is installed editable; where ``PYTHONDONTWRITEBYTECODE`` is set (it is
    on this machine) every tap process would otherwise compile ``taps_core`` and its
    tap from source again, some 0.1 s a run, paid by both modes alike, which no
    deployed tap pays.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(ROOT / p) for p in PACKAGES)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    report("the project's modules byte-compiled first (as a wheel install does)")


def floor_seconds(zero: Run, requests: int, latency: float, concurrent: int = 8) -> float:
    """The least an overlapped sync can take under this design, from its 0 ms run.

    Start-up (process start to first request) and tail (last request to exit) are paid
    whatever overlaps; in between, ``concurrent`` requests in flight at most, each
    taking ``latency``: at least ``ceil(requests / concurrent)`` rounds. A lower bound:
    it leaves out the tap's CPU between the first and the last request, the first
    request of a stream (sent alone, so bad credentials fail once) and the lists whose
    pages need the reply before them (one in flight at a time).
    """
    return zero.start + zero.tail + math.ceil(requests / concurrent) * latency


def overlap(args: Any, report: Any, work: Path) -> bool:
    """The mode's entry point (``benchmarks/run.py --overlap``)."""
    report("issue 20 overlap: sequential (1) against overlapped (8), no rate limits, no pacing")
    report(f"five taps at the sandbox's default size, and tap-rewards at {ORDERS:,} orders")
    report()
    _compile(report)
    runs: list[Run] = []
    sandboxes = {
        "default": Sandbox("--seed", "42"),
        "orders": Sandbox("--seed", "42", "--count", f"rewards.orders={ORDERS}"),
    }
    try:
        for which, sandbox in sandboxes.items():  # the data is made on first use: untimed
            for what in TAPS if which == "default" else (f"orders-{ORDERS}",):
                sync(sandbox, what, 0.0, 8, work, max_requests_per_minute=0)
        zeros: dict[str, Run] = {}
        for which, sandbox in sandboxes.items():  # timed: start-up, tail, the tap's own time
            for what in TAPS if which == "default" else (f"orders-{ORDERS}",):
                zero = zeros[what] = sync(sandbox, what, 0.0, 8, work, max_requests_per_minute=0)
                report(
                    f"  {what:<13} {0:4.0f} ms  x8  {zero.seconds:6.2f} s  start-up "
                    f"{zero.start:4.2f} s  tail {zero.tail:4.2f} s  (no latency at all)"
                )
        floor = zeros[f"orders-{ORDERS}"]
        for latency in LATENCIES:
            fault = {"kind": "latency", "seconds": latency, "times": None}
            for which, sandbox in sandboxes.items():
                sandbox.set_faults(fault)
                for what in TAPS if which == "default" else (f"orders-{ORDERS}",):
                    for concurrent in (1, 8):
                        run = sync(
                            sandbox, what, latency, concurrent, work, max_requests_per_minute=0
                        )
                        runs.append(run)
                        report(
                            f"  {what:<13} {latency * 1000:4.0f} ms  x{concurrent}  "
                            f"{run.seconds:6.2f} s  {run.requests:4d} requests  "
                            f"peak {run.peak}  429s {run.status_429}"
                        )
        report()
        ok = _overlap_table(runs, report, zeros)
        limited: list[Run] = []
        report()
        report("with the contracts' rate limits on and the default budgets, 200 ms, x8:")
        for which, sandbox in sandboxes.items():
            sandbox.set_faults(
                {"kind": "latency", "seconds": 0.2, "times": None},
                *(_fault(spec) for spec in RATE_LIMITS),
            )
            for what in TAPS if which == "default" else (f"orders-{ORDERS}",):
                run = sync(sandbox, what, 0.2, 8, work)
                limited.append(run)
                report(
                    f"  {what:<13} {run.seconds:6.2f} s  {run.requests:4d} requests  "
                    f"{run.per_second:5.2f} a second  peak {run.peak}  429s {run.status_429}"
                )
        ok = _limited_verdicts(limited, report) and ok
    finally:
        for sandbox in sandboxes.values():
            sandbox.close()
    OUT.mkdir(parents=True, exist_ok=True)
    results = OUT / "overlap.json"
    results.write_text(
        json.dumps(
            {
                "runs": [asdict(r) for r in runs],
                "floor": asdict(floor),
                "zero": [asdict(r) for r in zeros.values()],
                "limited": [asdict(r) for r in limited],
            },
            indent=1,
        )
    )
    report()
    report(f"figures: {results.relative_to(ROOT)}")
    return ok


def _fault(spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if value == "none":
            out[key] = None
        elif value == "true":
            out[key] = True
        elif value.replace(".", "").isdigit():
            out[key] = float(value) if key == "window" else int(value)
        else:
            out[key] = value
    return out


def _overlap_table(runs: list[Run], report: Any, zeros: dict[str, Run]) -> bool:
    def pick(what: str, latency: float, concurrent: int) -> Run:
        return next(
            r for r in runs if (r.what, r.latency, r.concurrent) == (what, latency, concurrent)
        )

    header = f"{'':<13} {'latency':>7}  {'x1 s':>7}  {'x8 s':>7}  {'ratio':>6}  "
    header += f"{'floor s':>7}  {'best':>6}  {'requests':>8}  {'peak':>4}  {'429s':>4}"
    report(header)
    report("-" * len(header))
    names = [*TAPS, f"orders-{ORDERS}"]
    totals: dict[float, tuple[float, float, float]] = {}
    for latency in LATENCIES:
        one_total = eight_total = floor_total = 0.0
        for what in names:
            one, eight = pick(what, latency, 1), pick(what, latency, 8)
            floor = floor_seconds(zeros[what], eight.requests, latency)
            if what in TAPS:
                one_total += one.seconds
                eight_total += eight.seconds
                floor_total += floor
            report(
                f"{what:<13} {latency * 1000:5.0f}ms  {one.seconds:7.2f}  {eight.seconds:7.2f}  "
                f"{one.seconds / eight.seconds:6.2f}  {floor:7.2f}  {one.seconds / floor:6.2f}  "
                f"{eight.requests:8d}  {eight.peak:4d}  {one.status_429 + eight.status_429:4d}"
            )
        totals[latency] = (one_total, eight_total, floor_total)
        report(
            f"{'five taps':<13} {latency * 1000:5.0f}ms  {one_total:7.2f}  {eight_total:7.2f}  "
            f"{one_total / eight_total:6.2f}  {floor_total:7.2f}  {one_total / floor_total:6.2f}"
        )
    report()
    report(
        "floor: start-up + tail of the 0 ms run + ceil(requests / 8) x latency, the least "
        "a run can take with 8 in flight; best: x1 / floor, the most any overlap allows"
    )
    orders_name = f"orders-{ORDERS}"
    one_orders, eight_orders = pick(orders_name, 0.05, 1), pick(orders_name, 0.05, 8)
    orders_floor = floor_seconds(zeros[orders_name], eight_orders.requests, 0.05)
    targets = [
        (
            "five taps at 200 ms, x1 / x8",
            totals[0.2][0] / totals[0.2][1],
            totals[0.2][0] / totals[0.2][2],
            FIVE_TAPS_AT_200MS,
            f"{sum(zeros[w].start + zeros[w].tail for w in TAPS):.2f} s of start-up and tail "
            f"in all, paid both ways",
        ),
        (
            f"{ORDERS:,} orders at 50 ms, x1 / x8",
            one_orders.seconds / eight_orders.seconds,
            one_orders.seconds / orders_floor,
            ORDERS_AT_50MS,
            f"{eight_orders.requests} requests / 8 x 50 ms = "
            f"{math.ceil(eight_orders.requests / 8) * 0.05:.2f} s + "
            f"{zeros[orders_name].start + zeros[orders_name].tail:.2f} s start-up and tail",
        ),
    ]
    same = all(
        pick(w, lat, 1).requests == pick(w, lat, 8).requests for w in names for lat in LATENCIES
    )
    ok = True
    for label, value, best, bound, why in targets:
        passed = value >= bound
        ok = ok and passed
        report(f"{label}: {value:.2f}  target >= {bound:.1f}  {_word(passed)}")
        if not passed:
            reach = "within reach" if best >= bound else "OUT OF REACH under this design"
            report(f"  the floor allows at most {best:.2f}: {reach} ({why})")
    report(f"the same requests sent overlapped as sequential: {_word(same)}")
    return ok and same


def _limited_verdicts(limited: list[Run], report: Any) -> bool:
    refused = sum(r.status_429 for r in limited)
    orders = next(r for r in limited if r.what.startswith("orders"))
    share = orders.per_second / REWARDS_PER_SECOND
    no_429, fast = refused == 0, share >= REWARDS_SHARE_OF_BUDGET
    report()
    report(f"429s served with the rate limits on: {refused}  target 0  {_word(no_429)}")
    report(
        f"rewards orders at {orders.per_second:.2f} requests a second: {share:.0%} of "
        f"{REWARDS_PER_SECOND:.0f}  target >= {REWARDS_SHARE_OF_BUDGET:.0%}  {_word(fast)}"
    )
    return no_429 and fast


def _word(passed: bool) -> str:
    return "PASS" if passed else "FAIL"
