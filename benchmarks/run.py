"""Benchmark harness of issue 7: tap-rewards against the raw floor and against dlt.

Run it through ``./benchmarks/run.sh`` (which makes both venvs first); see
``benchmarks/README.md``. This process only orchestrates: it starts the sandbox in a
process of its own, then each contender as fresh processes, and otherwise sleeps in
``os.wait4`` so that it takes no CPU from what it measures (the machine has 2 cores).

Every contender is timed by wall clock from the start of its first process to the exit
of its last, imports included, because that is what a scheduled sync costs. Peak RSS
is each process's ``ru_maxrss`` from ``os.wait4``; for a pipeline it is reported per
process and summed. Contenders run once a round, in alternating order (forward, then
reversed), so that a slow drift of the machine cancels out of the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
PROJECT_BIN = ROOT / ".venv" / "bin"
PROJECT_PYTHON = PROJECT_BIN / "python"
BENCH_PYTHON = BENCH / ".venv" / "bin" / "python"
TARGET_DUCKDB = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "target-duckdb"
API_KEY = "sandbox-rewards-key"  # the sandbox's published demo key, not a secret
SEED = 42

#: The issue's targets: (label, numerator, denominator, compare, bound).
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("tap / floor time", "tap", "floor", "<=", 2.0),
    ("dlt-extract / tap time", "dlt-extract", "tap", ">=", 1.5),
    ("dlt-run / tap|target-duckdb time", "dlt-run", "tap|target-duckdb", ">=", 1.5),
    # issue 18: a deselected field is pruned on the fast path, not a fall back to the SDK's
    ("tap-deselected / tap time", "tap-deselected", "tap", "<=", 1.10),
    # issue 19: schema_drift=evolve (the default, the tap contender) with no drift costs
    # nothing against drop, the record path as it was before drift was looked for
    ("tap / tap-drop time", "tap", "tap-drop", "<=", 1.05),
)
#: The field the tap-deselected contender leaves out (a nested one, the harder case).
DESELECTED = ("payment", "fees")
MEMORY_SIZES = (100_000, 1_000_000)
MEMORY_TOLERANCE = 1.10  # issue 7: peak RSS at 1M within 10% of that at 100k
#: A reply's delay in the second memory run: enough for the tap to fetch ahead (its
#: threshold is 10 ms on average), little enough that the run stays bound by the tap.
MEMORY_LATENCY = 0.015
MEMORY_MODES = ("replies at once", f"replies after {MEMORY_LATENCY * 1000:.0f} ms, overlapped")


class BenchError(RuntimeError):
    """A contender or the sandbox failed: the run stops, with the process's own words."""


# --------------------------------------------------------------------------- output


class Report:
    """Prints each line as it comes and keeps them all, to save the run to a file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(self.lines) + "\n")


def table(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """Plain-text columns, so the saved results diff cleanly between runs."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return out


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


# --------------------------------------------------------------------------- processes


@dataclass
class Part:
    """One process of a contender: its name in the report, its argv and extra env."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Measurement:
    """One timed run of a contender: wall seconds and each part's peak RSS (KiB)."""

    seconds: float
    rss_kib: dict[str, int]
    cpu_seconds: float = 0.0  # user + system of every part: below wall time = waiting
    stdout: str = ""
    server_cpu_seconds: float = 0.0  # the sandbox's CPU meanwhile, set by the caller
    other_cpu_seconds: float = 0.0  # everything else on the machine meanwhile, likewise

    @property
    def rss_total(self) -> int:
        return sum(self.rss_kib.values())


_LIVE: list[subprocess.Popen[bytes]] = []  # stopped on Ctrl-C / SIGTERM / error
#: Untimed helper commands (discover, warm-up, row counts): output read back, errors raised.
_QUIET: dict[str, Any] = {"check": True, "capture_output": True, "text": True, "cwd": ROOT}


def _kill(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def harness_rss() -> int:
    """This process's own peak RSS (KiB).

    Linux carries a process's peak RSS across ``exec`` into the program it runs, and a
    child starts from its parent's memory, so every ``ru_maxrss`` that ``os.wait4``
    reports is at least the harness's own peak at spawn time. The harness therefore
    imports no HTTP client, duckdb or pstats while it measures, and prints this figure as
    the floor under every RSS it reports.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (from /proc/stat).

    Less the contender's, the sandbox's and the harness's own, what remains over a run is
    other work on the machine (a test suite, another benchmark): a run with much of it was
    disturbed, and the report shows it beside the run rather than hiding it in a median.
    """
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _base_env() -> dict[str, str]:
    """The caller's environment, with 127.0.0.1 kept off any proxy the caller has set."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name, ""), "127.0.0.1", "localhost"]))
    return env


def run_parts(
    parts: Sequence[Part], logdir: Path, *, capture: bool = False, timeout: float = 3600
) -> Measurement:
    """Run ``parts`` as one shell-style pipeline and wait for every one of them.

    stdout of the last part goes to /dev/null (or to a file read back, with
    ``capture``); each part's stderr goes to a log file, shown only on failure. The
    parent closes its copies of the pipe ends at once, so that a reader sees EOF exactly
    when its writer exits.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    out_path = logdir / "stdout"
    logs = [logdir / f"{n}-{part.name.replace('|', '_')}.stderr" for n, part in enumerate(parts)]
    procs: list[subprocess.Popen[bytes]] = []
    files: list[IO[bytes]] = []
    base = _base_env()
    watchdog = threading.Timer(timeout, _kill, args=(procs,))
    watchdog.daemon = True
    start = time.perf_counter()
    try:
        upstream: IO[bytes] | None = None
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            err = open(logs[n], "wb")  # noqa: SIM115 - closed in finally
            files.append(err)
            if last:
                out: Any = open(out_path, "wb") if capture else subprocess.DEVNULL  # noqa: SIM115
                if capture:
                    files.append(out)
            else:
                out = subprocess.PIPE
            proc = subprocess.Popen(
                part.argv,
                stdin=upstream if upstream is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**base, **part.env},
                cwd=ROOT,
            )
            procs.append(proc)
            _LIVE.append(proc)
            if upstream is not None:
                upstream.close()
            upstream = proc.stdout
        watchdog.start()
        rss: dict[str, int] = {}
        cpu = 0.0
        codes: list[int] = []
        for part, proc in zip(parts, procs, strict=True):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            codes.append(proc.returncode)
            rss[part.name] = usage.ru_maxrss  # KiB on Linux
            cpu += usage.ru_utime + usage.ru_stime
        seconds = time.perf_counter() - start
    finally:
        watchdog.cancel()
        _kill(procs)
        for proc in procs:
            if proc in _LIVE:
                _LIVE.remove(proc)
        for f in files:
            f.close()
    for part, code, log in zip(parts, codes, logs, strict=True):
        if code != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise BenchError(f"{part.name} exited with {code}:\n{tail}")
    stdout = out_path.read_text() if capture else ""
    return Measurement(seconds, rss, cpu, stdout)


# --------------------------------------------------------------------------- sandbox


class Sandbox:
    """``api-sandbox serve`` in its own process, warmed up before anything is timed."""

    def __init__(self, records: int, logdir: Path) -> None:
        self.records = records
        self.logdir = logdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def __enter__(self) -> Sandbox:
        self.logdir.mkdir(parents=True, exist_ok=True)
        with open(self.logdir / "sandbox.stderr", "wb") as err:
            self.proc = subprocess.Popen(
                [
                    str(PROJECT_BIN / "api-sandbox"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--seed",
                    str(SEED),
                    "--records",
                    str(self.records),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=_base_env(),
            )
        _LIVE.append(self.proc)
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # "rewards http://127.0.0.1:PORT/rewards" first
            words = raw.decode().split()
            if len(words) == 2 and words[0] == "rewards":
                self.base_url = words[1]
                break
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.__exit__()
            log = (self.logdir / "sandbox.stderr").read_text(errors="replace")[-2000:]
            raise BenchError(f"the sandbox did not start:\n{log}")
        return self

    def delay_replies(self, seconds: float) -> None:
        """Every data reply from now on ``seconds`` late (the sandbox's latency fault).

        Sent by a child process: the harness imports no HTTP client, whose memory
        would be carried into every process it starts (see :func:`harness_rss`).
        """
        root = self.base_url.rsplit("/", 1)[0]
        fault = json.dumps({"kind": "latency", "seconds": seconds, "times": None})
        code = (
            "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request("
            "sys.argv[1], sys.argv[2].encode(), {'Content-Type': 'application/json'}, "
            "method='POST'), timeout=30).read()"
        )
        subprocess.run(
            [str(PROJECT_PYTHON), "-c", code, f"{root}/_sandbox/faults", fault], check=True
        )

    def warm_up(self) -> float:
        """Make the sandbox generate the orders (lazily, on first request); return seconds."""
        start = time.perf_counter()
        argv = [str(PROJECT_PYTHON), str(BENCH / "floor.py"), "--total", self.base_url, API_KEY]
        total = int(subprocess.run(argv, **_QUIET).stdout)
        if total != self.records:
            raise BenchError(f"the sandbox serves {total} orders, not {self.records}")
        return time.perf_counter() - start

    def cpu_seconds(self) -> float:
        """The sandbox's user + system CPU so far (from /proc; 0 where there is none).

        Near the wall time of a contender, the sandbox was the bottleneck of that run.
        """
        assert self.proc is not None
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()  # SIGTERM: the sandbox stops its server cleanly
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc in _LIVE:
            _LIVE.remove(proc)


# --------------------------------------------------------------------------- contenders


@dataclass
class Setup:
    """Files every round shares: the tap's config and its orders-only catalog."""

    work: Path
    base_url: str
    records: int
    tap_config: Path = field(init=False)
    tap_config_drop: Path = field(init=False)
    catalog: Path = field(init=False)
    catalog_deselected: Path = field(init=False)

    def __post_init__(self) -> None:
        self.tap_config = self.work / "tap-config.json"
        # No pacing: the sandbox has no rate limit, and this measures the tap.
        config = {"api_key": API_KEY, "base_url": self.base_url, "max_requests_per_minute": 0}
        self.tap_config.write_text(json.dumps(config))
        self.tap_config_drop = self.work / "tap-config-drop.json"
        self.tap_config_drop.write_text(json.dumps({**config, "schema_drift": "drop"}))
        self.catalog = self.work / "catalog.json"
        discovered = subprocess.run(
            [str(PROJECT_BIN / "tap-rewards"), "--config", str(self.tap_config), "--discover"],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env=_base_env(),
        ).stdout
        catalog = orders_only(json.loads(discovered))
        self.catalog.write_text(json.dumps(catalog))
        self.catalog_deselected = self.work / "catalog-deselected.json"
        self.catalog_deselected.write_text(json.dumps(deselecting(catalog, DESELECTED)))

    def tap_argv(self, catalog: Path | None = None, config: Path | None = None) -> list[str]:
        return [
            str(PROJECT_BIN / "tap-rewards"),
            "--config",
            str(config or self.tap_config),
            "--catalog",
            str(catalog or self.catalog),
        ]


def orders_only(catalog: dict[str, Any]) -> dict[str, Any]:
    """Select ``orders`` and deselect every other stream, on each stream's root metadata."""
    found = False
    for stream in catalog["streams"]:
        is_orders = stream["tap_stream_id"] == "orders"
        found = found or is_orders
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = is_orders
    if not found:
        raise BenchError("tap-rewards --discover has no orders stream")
    return catalog


def deselecting(catalog: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The catalog with the orders property at ``path`` marked ``selected: false``."""
    crumb = [part for name in path for part in ("properties", name)]
    for stream in catalog["streams"]:
        if stream["tap_stream_id"] != "orders":
            continue
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == crumb:
                entry["metadata"]["selected"] = False
                return catalog
    raise BenchError(f"tap-rewards --discover has no orders property {'.'.join(path)}")


@dataclass
class Contender:
    """A named way of moving the orders, run fresh each round; ``check`` verifies it."""

    name: str
    run: Callable[[Setup, Path], Measurement]
    check: Callable[[Setup, Path, Measurement], str | None] | None = None


def floor_run(setup: Setup, rundir: Path) -> Measurement:
    argv = [str(PROJECT_PYTHON), str(BENCH / "floor.py"), setup.base_url, API_KEY]
    return run_parts([Part("floor", argv)], rundir)


def tap_run(setup: Setup, rundir: Path) -> Measurement:
    return run_parts([Part("tap", setup.tap_argv())], rundir)


def tap_deselected_run(setup: Setup, rundir: Path) -> Measurement:
    return run_parts([Part("tap", setup.tap_argv(setup.catalog_deselected))], rundir)


def tap_drop_run(setup: Setup, rundir: Path) -> Measurement:
    return run_parts([Part("tap", setup.tap_argv(config=setup.tap_config_drop))], rundir)


def dlt_run(step: str) -> Callable[[Setup, Path], Measurement]:
    def run(setup: Setup, rundir: Path) -> Measurement:
        argv = [str(BENCH_PYTHON), str(BENCH / "dlt_rewards.py"), step, setup.base_url, API_KEY]
        argv.append(str(rundir / "dlt"))
        return run_parts([Part(f"dlt-{step}", argv)], rundir, capture=True)

    return run


def dlt_check(setup: Setup, rundir: Path, measured: Measurement) -> str | None:
    """dlt-extract: the rows dlt says it extracted; dlt-run: the rows in its DuckDB too."""
    extracted = json.loads(measured.stdout.strip().splitlines()[-1])["rows"]
    if extracted != setup.records:
        return f"dlt extracted {extracted} orders of {setup.records}"
    if (rundir / "dlt" / "dlt.duckdb").exists():
        argv = [str(BENCH_PYTHON), str(BENCH / "dlt_rewards.py"), "count", str(rundir / "dlt")]
        counted = subprocess.run(argv, **_QUIET).stdout
        found = json.loads(counted)
        if found != {"rows": setup.records, "distinct_ids": setup.records}:
            return f"dlt landed {found}, expected {setup.records} rows and ids"
    return None


def target_config(rundir: Path) -> Path:
    path = rundir / "target-config.json"
    path.write_text(
        json.dumps(
            {
                "filepath": str(rundir / "x.duckdb"),
                "default_target_schema": "tap_rewards",
                "batch_size_rows": 100000,
            }
        )
    )
    return path


def tap_target_run(setup: Setup, rundir: Path) -> Measurement:
    rundir.mkdir(parents=True, exist_ok=True)
    config = target_config(rundir)  # written before the clock starts
    target = [str(TARGET_DUCKDB), "--config", str(config)]
    return run_parts([Part("tap", setup.tap_argv()), Part("target-duckdb", target)], rundir)


_COUNT_TARGET = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
rows, ids = con.execute("select count(*), count(distinct id) from tap_rewards.orders").fetchone()
print(rows, ids)
"""


def tap_target_check(setup: Setup, rundir: Path, measured: Measurement) -> str | None:
    """Every order landed exactly once, read by the project venv's duckdb (1.0.0).

    In a child process, like every other check: the harness must not import duckdb, or
    its own RSS would show up in the contenders' figures (see ``harness_rss``).
    """
    argv = [str(PROJECT_PYTHON), "-c", _COUNT_TARGET, str(rundir / "x.duckdb")]
    rows, ids = (int(word) for word in subprocess.run(argv, **_QUIET).stdout.split())
    if rows != setup.records or ids != setup.records:
        return f"target-duckdb landed {rows} rows, {ids} distinct ids of {setup.records}"
    return None


CONTENDERS: tuple[Contender, ...] = (
    Contender("floor", floor_run),
    Contender("tap", tap_run),
    Contender("tap-deselected", tap_deselected_run),
    Contender("tap-drop", tap_drop_run),
    Contender("dlt-extract", dlt_run("extract"), dlt_check),
    Contender("dlt-run", dlt_run("run"), dlt_check),
    Contender("tap|target-duckdb", tap_target_run, tap_target_check),
)


# --------------------------------------------------------------------------- modes


def header(report: Report, title: str, records: Sequence[int], rounds: int | None) -> None:
    def version(python: Path, dist: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({dist!r}))"
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        return done.stdout.strip() or "?"

    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    target_python = TARGET_DUCKDB.parent / "python"
    report(f"# {title}")
    report(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC  git {git or '?'}  "
        f"{platform.python_implementation()} {platform.python_version()}  "
        f"{os.cpu_count()} CPUs"
    )
    versions = [f"singer-sdk {version(PROJECT_PYTHON, 'singer-sdk')}"]
    if BENCH_PYTHON.exists():
        versions.append(f"dlt {version(BENCH_PYTHON, 'dlt')}")
    versions.append(f"target-duckdb {version(target_python, 'target-duckdb')}")
    report("  ".join(versions))
    size = " and ".join(f"{n:,}" for n in records) + " orders, pages of 100"
    report(f"{size}, {rounds} rounds (order alternates), medians" if rounds else size)
    report()


def warm_imports() -> None:
    """Load each interpreter's imports once, so round 1 does not pay a cold page cache."""
    for python, module in (
        (PROJECT_PYTHON, "tap_rewards.tap"),
        (BENCH_PYTHON, "dlt.sources.rest_api"),
        (TARGET_DUCKDB.parent / "python", "target_duckdb"),
    ):
        if python.exists():  # benchmarks/.venv is made only by run.sh (dlt's contenders)
            subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, cwd=ROOT)


def _rss_note() -> str:
    return (
        f"(RSS floor: the harness's own peak, {mib(harness_rss())} MiB, which Linux carries "
        "into every child; see run.py)"
    )


def compare(value: float, op: str, bound: float) -> bool:
    return value <= bound if op == "<=" else value >= bound


def bench(args: argparse.Namespace, report: Report, work: Path) -> bool:
    """The default mode: every contender, ``rounds`` times, medians and the targets."""
    chosen = [c for c in CONTENDERS if not args.only or c.name in args.only]
    title = "issue 7 benchmark: tap-rewards vs the floor and dlt"
    header(report, title, [args.records], args.rounds)
    runs: dict[str, list[Measurement]] = {c.name: [] for c in chosen}
    problems: dict[str, list[str]] = {c.name: [] for c in chosen}
    with Sandbox(args.records, work / "sandbox") as sandbox:
        report(f"sandbox {sandbox.base_url}: orders generated in {sandbox.warm_up():.1f} s")
        setup = Setup(work, sandbox.base_url, args.records)
        warm_imports()
        warm = floor_run(setup, work / "warm-up")
        report(f"untimed warm-up pass (floor): {warm.seconds:.2f} s")
        report()
        for round_no in range(args.rounds):
            order = chosen if round_no % 2 == 0 else chosen[::-1]
            for contender in order:
                rundir = work / f"round{round_no + 1}" / contender.name.replace("|", "_")
                server_before = sandbox.cpu_seconds()
                busy_before, own_before = machine_busy_seconds(), _own_cpu_seconds()
                measured = contender.run(setup, rundir)
                measured.server_cpu_seconds = sandbox.cpu_seconds() - server_before
                measured.other_cpu_seconds = max(
                    0.0,
                    machine_busy_seconds()
                    - busy_before
                    - (_own_cpu_seconds() - own_before)
                    - measured.cpu_seconds
                    - measured.server_cpu_seconds,
                )
                problem = contender.check(setup, rundir, measured) if contender.check else None
                runs[contender.name].append(measured)
                if problem:
                    problems[contender.name].append(problem)
                parts = " + ".join(mib(kib) for kib in measured.rss_kib.values())
                failed = f"  FAIL: {problem}" if problem else ""
                report(
                    f"round {round_no + 1}/{args.rounds}  {contender.name:<18} "
                    f"{measured.seconds:7.2f} s  CPU {measured.cpu_seconds:6.2f} s  "
                    f"sandbox {measured.server_cpu_seconds:5.2f} s  "
                    f"other {measured.other_cpu_seconds:5.2f} s  peak RSS {parts} MiB{failed}"
                )
                shutil.rmtree(rundir, ignore_errors=True)  # keep /tmp small at 1M records
    report()
    medians = {name: statistics.median(m.seconds for m in ms) for name, ms in runs.items()}
    columns = ["contender", "median s", "records/s", "CPU s", "sandbox CPU s", "peak RSS MiB"]
    rows = [[*columns, "per process"]]
    for name, ms in runs.items():
        peak = max(ms, key=lambda m: m.rss_total)
        per_part = (
            " + ".join(f"{part} {mib(max(m.rss_kib[part] for m in ms))}" for part in peak.rss_kib)
            if len(peak.rss_kib) > 1
            else ""
        )
        rows.append(
            [
                name,
                f"{medians[name]:.2f}",
                f"{args.records / medians[name]:,.0f}",
                f"{statistics.median(m.cpu_seconds for m in ms):.2f}",
                f"{statistics.median(m.server_cpu_seconds for m in ms):.2f}",
                mib(peak.rss_total),
                per_part,
            ]
        )
    for line in table(rows, right=[False, True, True, True, True, True, False]):
        report(line)
    report("(CPU s: user+system of the contender's processes; sandbox CPU s: the sandbox's;")
    report(" 'other' in a run's line: the rest of the machine's meanwhile, where much = disturbed)")
    report(_rss_note())
    report()
    ok = True
    rows = [["ratio", "value", "target", "result"]]
    for label, top, bottom, op, bound in TARGETS:
        if top in medians and bottom in medians:
            value = medians[top] / medians[bottom]
            passed = compare(value, op, bound)
            ok = ok and passed
            rows.append([label, f"{value:.2f}", f"{op} {bound}", "PASS" if passed else "FAIL"])
    landed = [name for name in ("tap|target-duckdb", "dlt-run") if name in runs]
    for name in landed:
        passed = not problems[name]
        ok = ok and passed
        verdict = "PASS" if passed else "FAIL: " + "; ".join(problems[name])
        rows.append([f"{name}: every row landed", "", f"= {args.records:,}", verdict])
    for line in table(rows, right=[False, True, False, False]):
        report(line)
    return ok


def memory(args: argparse.Namespace, report: Report, work: Path) -> bool:
    """Peak RSS of the tap at 100k and 1M orders: flat memory means the ratio stays ~1.

    Twice: as the API answers the sandbox (at once: nothing is fetched ahead, see
    ``taps_core.prefetch.Pool.WORTH_FETCHING_AHEAD``), and with every reply delayed by
    :data:`MEMORY_LATENCY`, so that the workers fetch ahead (issue 20: what they buffer
    is bounded, whatever the sync's size).
    """
    header(report, "issue 7 memory: tap-rewards peak RSS against size", MEMORY_SIZES, None)
    rss: dict[tuple[str, int], int] = {}
    warm_imports()
    for size in MEMORY_SIZES:
        with Sandbox(size, work / f"sandbox-{size}") as sandbox:
            generated = sandbox.warm_up()
            mem_work = work / f"mem-{size}"
            mem_work.mkdir(parents=True, exist_ok=True)
            setup = Setup(mem_work, sandbox.base_url, size)
            floor_run(setup, mem_work / "warm-up")  # the sandbox's first pass is its slowest
            for how in MEMORY_MODES:
                if how != MEMORY_MODES[0]:
                    sandbox.delay_replies(MEMORY_LATENCY)
                measured = tap_run(setup, mem_work / f"run-{how.split()[0]}")
                rss[how, size] = measured.rss_kib["tap"]
                report(
                    f"{size:>9,} orders, {how}: tap {measured.seconds:7.2f} s "
                    f"({size / measured.seconds:,.0f} records/s), peak RSS "
                    f"{mib(rss[how, size])} MiB"
                )
            report(f"{'':>9} (the sandbox made the data in {generated:.1f} s)")
    small, large = MEMORY_SIZES
    report(_rss_note())
    report()
    ok = True
    for how in MEMORY_MODES:
        ratio = rss[how, large] / rss[how, small]
        passed = ratio <= MEMORY_TOLERANCE
        ok = ok and passed
        report(
            f"peak RSS {large:,} / {small:,}, {how}: {ratio:.3f}  "
            f"target <= {MEMORY_TOLERANCE:.2f}  " + ("PASS" if passed else "FAIL")
        )
    return ok


def profile(args: argparse.Namespace, report: Report, work: Path) -> bool:
    """The tap once under cProfile: where the remaining per-record time goes."""
    import pstats  # only here: the harness stays small while it measures (harness_rss)

    header(report, "issue 7 profile: tap-rewards under cProfile", [args.records], None)
    prof = RESULTS / "tap.prof"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with Sandbox(args.records, work / "sandbox") as sandbox:
        sandbox.warm_up()
        setup = Setup(work, sandbox.base_url, args.records)
        floor_run(setup, work / "warm-up")  # the sandbox's first pass is its slowest
        argv = [str(PROJECT_PYTHON), "-m", "cProfile", "-o", str(prof), "-m", "tap_rewards.tap"]
        measured = run_parts([Part("tap (cProfile)", argv + setup.tap_argv()[1:])], work / "prof")
    report(f"tap under cProfile: {measured.seconds:.2f} s (profiling slows it down); {prof}")
    report(f"top 25 by tottime; per record = tottime / {args.records:,} orders")
    report()
    stats = pstats.Stats(str(prof))
    rows = [["tottime s", "us/record", "cumtime s", "calls", "function"]]
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:25]  # type: ignore[attr-defined]
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in entries:
        where = func if filename == "~" else f"{_short(filename)}:{line}({func})"
        rows.append(
            [
                f"{tottime:.3f}",
                f"{tottime / args.records * 1e6:.2f}",
                f"{cumtime:.3f}",
                f"{ncalls}",
                where,
            ]
        )
    for line in table(rows, right=[True, True, True, True, False]):
        report(line)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    report()
    report(f"total tottime {total:.2f} s = {total / args.records * 1e6:.1f} us/record")
    return True


def overlap_mode(args: argparse.Namespace, report: Report, work: Path) -> bool:
    """Issue 20 (benchmarks/overlap.py), then its chart drawn in benchmarks/.venv."""
    sys.path.insert(0, str(BENCH))
    import overlap  # only here: the other modes keep the harness small (harness_rss)

    ok = overlap.overlap(args, report, work)
    chart = subprocess.run(
        [str(BENCH_PYTHON), str(BENCH / "chart.py"), str(overlap.OUT / "overlap.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if chart.returncode != 0:
        raise BenchError(f"benchmarks/chart.py failed:\n{chart.stderr[-2000:]}")
    report(chart.stdout.strip())
    return ok


def _short(filename: str) -> str:
    """Trim site-packages and the checkout from a path, to keep the table readable."""
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="orders (default 200000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--memory", action="store_true", help="only the tap at 100k and 1M orders: peak RSS"
    )
    parser.add_argument("--profile", action="store_true", help="only the tap, once, under cProfile")
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="issue 20: every tap sequential against overlapped at 50 and 200 ms latency",
    )
    parser.add_argument(
        "--only",
        type=lambda s: [name.strip() for name in s.split(",")],
        default=None,
        help="comma-separated contenders to run (floor,tap,dlt-extract,dlt-run,tap|target-duckdb)",
    )
    args = parser.parse_args(argv)
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be positive")
    names = {c.name for c in CONTENDERS}
    if args.only and not set(args.only) <= names:
        parser.error(f"--only takes {', '.join(sorted(names))}")
    return args


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A scratch directory for configs, DuckDB files and logs, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="tap-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    modes: list[tuple[str, Callable[[argparse.Namespace, Report, Path], bool]]] = []
    if args.memory:
        modes.append(("latest-memory.txt", memory))
    if args.profile:
        modes.append(("latest-profile.txt", profile))
    if args.overlap:
        modes.append(("latest-overlap.txt", overlap_mode))
    if not modes:
        modes.append(("latest.txt", bench))
    ok = True
    try:
        for filename, mode in modes:
            report = Report()
            with workdir() as work:
                ok = mode(args, report, work) and ok
            report.save(RESULTS / filename)
            print(f"(saved to {(RESULTS / filename).relative_to(ROOT)})")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the contenders and the sandbox", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        _kill(list(_LIVE))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
