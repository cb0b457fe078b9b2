"""The project as the orchestrator sees it: taps from meltano.yml, stream groups, `meltano run`.

Nothing here imports Dagster or a tap: a run is ``.venv/bin/meltano run`` in a child
process, exactly what a user types, so that an asset behaves like the command line and
the taps never depend on the orchestrator (which lives in its own venv). Dagster's part
is in :mod:`orchestration.definitions`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: The repository root: meltano.yml, .venv and orchestration/ live here.
ROOT = Path(__file__).resolve().parent.parent
#: Where stream groups and backfills are declared; ORCHESTRATION_GROUPS names another file.
GROUPS_FILE = Path(__file__).resolve().parent / "groups.yml"
_NAME = re.compile(r"[a-z][a-z0-9-]*")


class ProjectError(ValueError):
    """meltano.yml or groups.yml says something the definitions cannot be built from."""


@dataclass(frozen=True)
class StreamGroup:
    """Some of a tap's streams, run as one ``meltano run`` with a bookmark of their own.

    ``select`` is a list of Meltano select patterns (``transactions.*``,
    ``!transactions.*``); None keeps the tap's own selection from meltano.yml.
    """

    tap: str
    name: str
    select: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Backfill:
    """A group read month by month from ``start_month``, each month a run of its own."""

    tap: str
    name: str
    start_month: str
    select: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Project:
    extractors: tuple[str, ...]
    loaders: tuple[str, ...]
    groups: tuple[StreamGroup, ...]
    backfills: tuple[Backfill, ...]


def load_project(root: Path = ROOT, groups_file: Path | None = None) -> Project:
    """The taps and loaders of meltano.yml, and the groups: declared ones, else one per tap."""
    meltano = yaml.safe_load((root / "meltano.yml").read_text())
    plugins = meltano.get("plugins", {})
    extractors = tuple(p["name"] for p in plugins.get("extractors", []))
    loaders = tuple(p["name"] for p in plugins.get("loaders", []))
    path = Path(groups_file or os.environ.get("ORCHESTRATION_GROUPS") or GROUPS_FILE)
    declared = yaml.safe_load(path.read_text()) or {}
    groups: list[StreamGroup] = []
    for tap in extractors:
        entries = (declared.get("groups") or {}).get(tap)
        if not entries:
            groups.append(StreamGroup(tap, tap))
            continue
        groups += [StreamGroup(tap, e["name"], _select(e, path)) for e in entries]
    unknown = set(declared.get("groups") or {}) - set(extractors)
    backfills = tuple(
        Backfill(b["tap"], b["name"], str(b["start_month"]), _select(b, path))
        for b in declared.get("backfills") or []
    )
    unknown |= {b.tap for b in backfills} - set(extractors)
    if unknown:
        raise ProjectError(
            f"{path} names {', '.join(sorted(unknown))}, which meltano.yml does not define as "
            f"an extractor (it has {', '.join(extractors)})."
        )
    names = [g.name for g in groups] + [b.name for b in backfills]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    bad = sorted(n for n in names if not _NAME.fullmatch(n))
    if repeated or bad:
        raise ProjectError(
            f"{path}: every group and backfill needs a name of its own, of lower-case letters, "
            f"digits and dashes (it becomes the state ID suffix); "
            f"{'repeated: ' + ', '.join(repeated) if repeated else 'invalid: ' + ', '.join(bad)}."
        )
    return Project(extractors, loaders, tuple(groups), backfills)


def _select(entry: dict, path: Path) -> tuple[str, ...] | None:
    select = entry.get("select")
    if select is None:
        return None
    if not isinstance(select, list) or not all(isinstance(s, str) for s in select):
        raise ProjectError(f"{path}: select of {entry.get('name')} must be a list of patterns.")
    return tuple(select)


def env_prefix(plugin: str) -> str:
    """``tap-reporting`` -> ``TAP_REPORTING``, as Meltano names a plugin's variables."""
    return plugin.upper().replace("-", "_")


@dataclass
class RunOutcome:
    """What one ``meltano run`` did, read from its JSON log lines."""

    state_id: str
    returncode: int
    duration_seconds: float
    #: record_count METRIC values of the tap, summed per stream.
    rows: dict[str, int] = field(default_factory=dict)
    #: ``<plugin>: <line>``: the failed plugin's first error line (else its last line,
    #: else Meltano's error); None on success.
    error: str | None = None


def run(
    *,
    tap: str,
    loader: str,
    environment: str,
    suffix: str,
    select: t.Sequence[str] | None = None,
    env: t.Mapping[str, str] | None = None,
    root: Path = ROOT,
    meltano: str | None = None,
    log: t.Callable[[str, str], None] = lambda level, line: None,
) -> RunOutcome:
    """``meltano run --state-id-suffix=<suffix> <tap> <loader>``, its lines passed to ``log``.

    The selection travels as ``<TAP>__SELECT`` (Meltano's override of the ``select``
    extra), so that a group needs no plugin of its own in meltano.yml. The tap logs its
    METRIC lines at INFO for the run (``log_metrics``): they are the rows per stream.
    Meltano gets a system directory of its own (:func:`_private_sys_dir`) and the
    project's system database, so runs of one tap at the same time share no catalog file.
    """
    prefix = env_prefix(tap)
    shared = Path(os.environ.get("MELTANO_SYS_DIR_ROOT") or root / ".meltano")
    private = _private_sys_dir(shared)
    environ = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        # The project's system database (state, runs), wherever the run directory is.
        "MELTANO_DATABASE_URI": os.environ.get(
            "MELTANO_DATABASE_URI", f"sqlite:///{shared / 'meltano.db'}"
        ),
        "MELTANO_SYS_DIR_ROOT": str(private),
        f"{prefix}_LOG_METRICS": "true",
        **({f"{prefix}__SELECT": json.dumps(list(select))} if select is not None else {}),
        **(env or {}),
    }
    command = [
        meltano or str(root / ".venv" / "bin" / "meltano"),
        "--log-format=json",
        f"--environment={environment}",
        "run",
        f"--state-id-suffix={suffix}",
        tap,
        loader,
    ]
    outcome = RunOutcome(f"{environment}:{tap}-to-{loader}:{suffix}", 0, 0.0)
    rows: Counter[str] = Counter()
    errors: dict[str, str] = {}
    last_line: dict[str, str] = {}
    failed = tap
    started = time.monotonic()
    try:
        with subprocess.Popen(
            command,
            cwd=root,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                try:
                    event = json.loads(line)
                except ValueError:
                    log("info", line.rstrip())
                    continue
                if not isinstance(event, dict):
                    continue
                metric = event.get("metric_info") or {}
                if metric.get("metric") == "record_count" and event.get("string_id") == tap:
                    stream = str(metric.get("tags", {}).get("stream"))
                    rows[stream] += int(metric.get("value", 0))
                    continue
                if event.get("event") == "METRIC":
                    continue
                if (event.get("exit_codes") or {}).get("loaders"):
                    failed = loader
                level = str(event.get("level", "info"))
                text = str(event.get("event", ""))
                source = str(event.get("string_id") or "meltano")
                line = f"{source}: {text}"
                if source != "meltano":
                    last_line[source] = line
                if level in ("error", "critical") and text:
                    errors.setdefault(source, line)  # the first: what went wrong, not its echo
                log(level, line if source != "meltano" else text)
            outcome.returncode = proc.wait()
    finally:
        shutil.rmtree(private, ignore_errors=True)
    outcome.duration_seconds = round(time.monotonic() - started, 3)
    outcome.rows = dict(sorted(rows.items()))
    if outcome.returncode:
        outcome.error = (
            errors.get(failed)
            or last_line.get(failed)
            or errors.get("meltano")
            or f"meltano: meltano run exited with {outcome.returncode}"
        )
    return outcome


def _private_sys_dir(shared: Path) -> Path:
    """A .meltano of this run's own: the installed plugins linked in, a run/ of its own.

    Meltano writes a tap's catalog and config to ``.meltano/run/<tap>/``, one path for
    every run of that tap: two groups (or two backfill months) of one tap at once would
    overwrite each other's catalog, selection included. Linking the plugins in costs no
    install and keeps one copy of each venv. The directory goes when the run ends, its
    Meltano log files with it: Dagster keeps every line.
    """
    base = shared / "orchestration"
    base.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    for entry in shared.iterdir():
        if entry.name in ("run", "orchestration") or entry.name.startswith("meltano.db"):
            continue
        (private / entry.name).symlink_to(entry)
    return private
