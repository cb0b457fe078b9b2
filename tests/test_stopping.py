"""Stopping a sync from outside: SIGTERM or Ctrl-C while the target reads slowly, a closed pipe.

What Meltano and orchestrators send on cancel is SIGTERM; a person sends SIGINT. Either
way the output a target has read must stay loadable: whole lines, no line twice, a STATE
last from which the next sync reads whatever this one did not, and an exit status that
no scheduler takes for success.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from api_sandbox import Fault, Sandbox
from taps_core.signals import GRACE_SECONDS
from tests.support import catalog_selecting, parse_messages, run_cli, tap_case

REWARDS = tap_case("rewards")
ORDERS = 3000  # a few MB of lines: the slow reader below needs seconds for all of them


def _start(config: dict, catalog: dict, tmp_path: Path, env: dict) -> subprocess.Popen:
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    command = [
        REWARDS.executable,
        "--config",
        str(tmp_path / "config.json"),
        "--catalog",
        str(tmp_path / "catalog.json"),
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.txt").open("wb"),
        env={**os.environ, **env},
    )


def _read_slowly(proc: subprocess.Popen, signum: int, signal_after: int) -> bytes:
    """Read like a slow target; send ``signum`` once ``signal_after`` bytes have arrived."""
    assert proc.stdout is not None
    out = bytearray()
    signalled = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        out += chunk
        if not signalled and len(out) >= signal_after:
            proc.send_signal(signum)
            signalled = True
        time.sleep(0.004)
    assert signalled, "the tap ended before it could be signalled"
    proc.wait(timeout=30)
    return bytes(out)


def _stderr(tmp_path: Path) -> str:
    return (tmp_path / "stderr.txt").read_text(errors="replace")


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGINT"],
)
@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered-stdout", "buffered-stdout"])
def test_a_signal_during_a_slow_read_ends_with_whole_lines_a_resumable_state_and_its_code(
    tmp_path, signum, code, unbuffered
):
    with Sandbox(seed=42, counts={"rewards": {"orders": ORDERS}}) as sandbox:
        config = REWARDS.config(sandbox)
        catalog = catalog_selecting(REWARDS.tap_class, config, "orders")
        proc = _start(config, catalog, tmp_path, {"PYTHONUNBUFFERED": unbuffered})
        raw = _read_slowly(proc, signum, signal_after=300_000)
        stderr = _stderr(tmp_path)
        assert proc.returncode == code, stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]

        assert raw.endswith(b"\n"), raw[-200:]
        lines = raw.splitlines()
        messages = [json.loads(line) for line in lines]  # every line whole JSON
        records = [line for line in lines if line.startswith(b'{"type":"RECORD"')]
        repeated = [line[:80] for line, n in Counter(records).items() if n > 1]
        assert not repeated, f"{len(repeated)} record lines written twice: {repeated[:3]}"
        assert messages[-1]["type"] == "STATE", messages[-1]
        first = parse_messages(raw.decode())
        got = {r["id"] for r in first.records("orders")}
        truth = {r["id"] for r in sandbox.records("rewards", "orders")}
        assert got < truth, "the tap did not stop: it wrote every order"

        resumed = run_cli(
            REWARDS.executable,
            config,
            tmp_path,
            "--catalog",
            str(tmp_path / "catalog.json"),
            state=messages[-1]["value"],
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert got | {r["id"] for r in resumed.sync.records("orders")} == truth


@pytest.mark.parametrize("concurrent", [1, 8], ids=["sequential", "overlapped"])
def test_a_signal_while_waiting_for_the_api_stops_the_sync_at_once(tmp_path, concurrent):
    """A slow reply must not hold a cancelled sync until it comes.

    The third request to arrive takes 6 s (the sandbox waits that out when it stops, so
    no more); the tap must have ended before the sandbox sent it. Overlapped, the pages
    after it are answered meanwhile, and the main thread waits for the slow one.
    """
    slow_third_page = Fault("latency", api="rewards", path="/v2/orders", seconds=6, skip=2)
    with Sandbox(seed=42, counts={"rewards": {"orders": ORDERS}}, faults=[slow_third_page]) as sb:
        config = REWARDS.config(sb, max_concurrent_requests=concurrent)
        catalog = catalog_selecting(REWARDS.tap_class, config, "orders")
        proc = _start(config, catalog, tmp_path, {})
        assert proc.stdout is not None
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        answered = lambda: [r for r in sb.requests if r.path == "/v2/orders"]  # noqa: E731
        deadline = time.monotonic() + 30
        seen = -1
        while (len(answered()) < 2 or len(answered()) != seen) and time.monotonic() < deadline:
            seen = len(answered())
            time.sleep(0.5)  # until the answers stop: the slow one is out and waiting
        assert len(answered()) >= 2, _stderr(tmp_path)[-3000:]
        if concurrent == 1:
            assert len(answered()) == 2
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(timeout=5)
        assert not [r for r in answered() if r.fault == "latency"], "the tap waited for it"
        assert proc.returncode == 143, _stderr(tmp_path)[-3000:]
        last = json.loads(out[0].splitlines()[-1])
        assert last["type"] == "STATE", last


def test_a_signal_ends_the_sync_even_when_its_reader_stopped_reading(tmp_path):
    """A target that hangs must not hang the tap: the stop waits GRACE_SECONDS at most."""
    with Sandbox(seed=42, counts={"rewards": {"orders": ORDERS}}) as sandbox:
        config = REWARDS.config(sandbox)
        catalog = catalog_selecting(REWARDS.tap_class, config, "orders")
        proc = _start(config, catalog, tmp_path, {})
        time.sleep(1.5)  # stdout's pipe is full: the tap is stuck writing
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE_SECONDS + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the tap still waited for its reader long after SIGTERM")
        assert proc.returncode == 143, _stderr(tmp_path)[-3000:]


def test_a_closed_stdout_ends_the_sync_quietly(shared, tmp_path):
    """``tap-rewards ... | head -c 100``: the reader is gone; no traceback, no success."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(REWARDS.config(shared)))
    err = tmp_path / "stderr.txt"
    script = (
        f"{REWARDS.executable} --config {config_file} 2>{err} | head -c 100 >/dev/null; "
        'echo "${PIPESTATUS[0]}"'
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stderr = err.read_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "Exception ignored" not in stderr, stderr[-3000:]
    assert "Broken pipe" not in stderr and "BrokenPipe" not in stderr, stderr[-3000:]
    assert int(proc.stdout.strip()) != 0, "a sync cut short by its reader is no success"
