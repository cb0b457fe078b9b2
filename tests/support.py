"""Helpers the tests share: running a tap against the sandbox and reading what it wrote."""

from __future__ import annotations

import contextlib
import decimal
import fcntl
import io
import json
import os
import re
import subprocess
import sys
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from singer_sdk import Tap

from tap_bookings.tap import TapBookings
from tap_inventory.tap import TapInventory
from tap_invoicing.tap import TapInvoicing
from tap_reporting.tap import TapReporting
from tap_rewards.tap import TapRewards

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MELTANO = str(VENV_BIN / "meltano")
#: Fast retries in tests; the policy itself (factor 2) is tested with a fake clock. No
#: pacing either: the sandbox has no rate limit unless a test switches one on, and the
#: tests of the request budget set ``max_requests_per_minute`` themselves.
FAST_RETRIES = {"backoff_factor": 0.01, "max_retry_wait_seconds": 5, "max_requests_per_minute": 0}


@dataclass(frozen=True)
class Converted:
    """A top-level field a tap converts on purpose, in every stream that has it.

    ``schema`` is what the tap's schema adds to the API's (``format: date-time``);
    ``value`` turns the API's value into the one the tap must emit, written here
    apart from the tap's code, so that a wrong conversion cannot agree with itself.
    """

    schema: dict
    value: t.Callable[[t.Any], t.Any]


@dataclass(frozen=True)
class TapCase:
    """One tap of the collection, as the parametrised contract tests see it."""

    tap_class: type[Tap]
    api: str
    #: Properties the tap adds that the API does not send, per stream.
    derived: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Top-level fields the tap converts, by name.
    converted: dict[str, Converted] = field(default_factory=dict)
    #: Settings every test run of this tap gets (a start_date that reaches the data).
    settings: dict[str, t.Any] = field(default_factory=dict)
    #: What the tap does to every record besides ``converted`` (nested fields too).
    rewrite: t.Callable[[dict], dict] | None = None

    @property
    def name(self) -> str:
        return self.tap_class.name

    @property
    def executable(self) -> str:
        return str(VENV_BIN / self.name)

    def config(self, sandbox: t.Any, **overrides: t.Any) -> dict:
        return {
            "base_url": sandbox.base_url(self.api),
            **sandbox.credentials(self.api),
            **FAST_RETRIES,
            **self.settings,
            **overrides,
        }


def vendor_text_to_rfc3339(value: str | None) -> str | None:
    """``2024-01-31 12:00:00`` as RFC 3339 (``2024-01-31T12:00:00Z``); the zero date is null."""
    if value is None or value == "0000-00-00 00:00:00":
        return None
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")


_COLONLESS = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?[+-]\d{2})(\d{2})")


def colon_offsets(value: t.Any) -> t.Any:
    """Every ``...T04:03:52+0000`` below ``value`` as RFC 3339 (``+00:00``), in a copy."""
    if isinstance(value, dict):
        return {k: colon_offsets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [colon_offsets(v) for v in value]
    if isinstance(value, str):
        match = _COLONLESS.fullmatch(value)
        if match:
            return f"{match[1]}:{match[2]}"
    return value


def key_value(value: t.Any) -> t.Any:
    """A key value as a warehouse compares it: a timestamp, as the API's text
    (``2025-06-30T00:00:00+0000``) or as a loaded TIMESTAMP, becomes naive UTC."""
    if isinstance(value, str) and _TIMESTAMP_TEXT.fullmatch(value):
        value = datetime.fromisoformat(_COLONLESS.sub(r"\1:\2", value.replace("Z", "+00:00")))
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")


def offset_with_colon(value: str | None) -> str | None:
    """``2024-03-05T12:06:10+0530`` as RFC 3339 (``2024-03-05T12:06:10+05:30``): same instant."""
    if value is None:
        return None
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    return moment.isoformat()


#: Every tap, as each issue adds one.
TAPS = [
    TapCase(
        TapRewards, "rewards", derived={"balance_transactions": frozenset({"transaction_key"})}
    ),
    TapCase(
        TapInvoicing,
        "invoicing",
        converted={
            "LASTUPDATE": Converted(
                {"type": ["string", "null"], "format": "date-time"}, vendor_text_to_rfc3339
            )
        },
    ),
    TapCase(
        TapInventory,
        "inventory",
        converted={
            name: Converted({"type": ["string", "null"], "format": "date-time"}, offset_with_colon)
            for name in ("created_time", "last_modified_time")
        },
    ),
    TapCase(
        TapReporting,
        "reporting",
        derived={"transactions": frozenset({"transaction_id", "transaction_updated_date"})},
        # The sandbox's transactions begin 2023-07-01; 31-day windows keep syncs short.
        settings={"start_date": "2023-07-01T00:00:00Z", "window_days": 31},
        rewrite=colon_offsets,
    ),
]


_VENDOR_TICKS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}")


def vendor_ticks_to_rfc3339(value: t.Any) -> t.Any:
    """Every ``2022-09-21T13:22:16.3881969`` in ``value``, nested ones too, as RFC 3339.

    The bookings API writes instants with no zone (UTC) and seven fractional digits; the
    tap must emit them with ``+00:00`` and all seven digits. The oracle goes by the text,
    not by the tap's schema: only timestamps look like this in the sandbox's records.
    """
    if isinstance(value, str):
        return value + "+00:00" if _VENDOR_TICKS.fullmatch(value) else value
    if isinstance(value, list):
        return [vendor_ticks_to_rfc3339(v) for v in value]
    if isinstance(value, dict):
        return {k: vendor_ticks_to_rfc3339(v) for k, v in value.items()}
    return value


_BOOKINGS_FIELDS = json.loads((ROOT / "api_sandbox" / "fields" / "bookings.json").read_text())
TAPS.append(
    TapCase(
        TapBookings,
        "bookings",
        converted={
            name: Converted({}, vendor_ticks_to_rfc3339)
            for schema in _BOOKINGS_FIELDS.values()
            for name in schema["properties"]
        },
    )
)


def instant(text: str) -> datetime:
    """An RFC 3339 timestamp as the instant it names (``Z`` or any offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def tap_case(api: str) -> TapCase:
    """The tap of one API."""
    return next(case for case in TAPS if case.api == api)


def catalog_selecting(tap_class: type[Tap], config: dict, *streams: str) -> dict:
    """The tap's discovered catalog with only ``streams`` selected."""
    catalog = tap_class(config=config).catalog_dict
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


@dataclass
class SyncResult:
    """What one sync wrote to stdout, parsed."""

    messages: list[dict]
    #: The lines as written, for tests about the exact text.
    text: str = ""

    def records(self, stream: str) -> list[dict]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def streams(self) -> set[str]:
        return {m["stream"] for m in self.messages if m["type"] == "RECORD"}

    @property
    def schemas(self) -> dict[str, dict]:
        return {m["stream"]: m for m in self.messages if m["type"] == "SCHEMA"}

    @property
    def last_state(self) -> dict:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}


def parse_messages(text: str) -> SyncResult:
    return SyncResult(
        [
            json.loads(line, parse_float=decimal.Decimal)
            for line in text.splitlines()
            if line.strip()
        ],
        text,
    )


def sync_in_process(
    tap_class: type[Tap], config: dict, *, state: dict | None = None, catalog: dict | None = None
) -> SyncResult:
    """Run the Tap class in this process, capturing stdout as the bytes a target would read."""
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    tap = tap_class(config=config, state=state, catalog=catalog, validate_config=True)
    with contextlib.redirect_stdout(stdout):
        tap.sync_all()
        stdout.flush()
    return parse_messages(buffer.getvalue().decode())


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def sync(self) -> SyncResult:
        return parse_messages(self.stdout)


def run_cli(
    executable: str,
    config: dict,
    tmp_path: Path,
    *args: str,
    state: dict | None = None,
    env: dict | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run the tap's console script, as Meltano or a shell pipe would."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    command = [executable, "--config", str(config_file), *args]
    if state is not None:
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(state))
        command += ["--state", str(state_file)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_matches_ground_truth(
    case: TapCase, stream: str, emitted: list[dict], truth: list[dict]
) -> None:
    """Every row of the sandbox, exactly once, with equal values."""
    derived = case.derived.get(stream, frozenset())
    stripped = [{k: v for k, v in r.items() if k not in derived} for r in emitted]
    expected = [
        json.loads(json.dumps(converted_truth(case, r)), parse_float=decimal.Decimal) for r in truth
    ]
    assert len(emitted) == len(truth), (
        f"{stream}: {len(emitted)} records emitted, sandbox has {len(truth)}"
    )
    key_props = (
        case.tap_class(config=_dummy_config(case), validate_config=False)
        .streams[stream]
        .primary_keys
    )
    keys = [tuple(r.get(k) for k in key_props) for r in emitted]
    assert all(all(part is not None for part in key) for key in keys), f"{stream}: null key"
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    assert not duplicates, f"{stream}: duplicate keys {duplicates[:5]}"
    canon = lambda r: json.dumps(r, sort_keys=True, default=str)  # noqa: E731
    assert Counter(map(canon, stripped)) == Counter(map(canon, expected)), (
        f"{stream}: values differ"
    )


def converted_truth(case: TapCase, record: dict) -> dict:
    """A sandbox record as the tap must emit it: the case's conversions applied."""
    out = dict(record)
    for name, conversion in case.converted.items():
        if name in out:
            out[name] = conversion.value(out[name])
    return case.rewrite(out) if case.rewrite else out


def _dummy_config(case: TapCase) -> dict:
    props = case.tap_class.config_jsonschema.get("properties", {})
    return {
        name: "x" for name in case.tap_class.config_jsonschema.get("required", []) if name in props
    }


_shared: t.Any = None


def shared_sandbox() -> t.Any:
    """One sandbox for the read-only tests (never given faults or mutations)."""
    global _shared
    if _shared is None:
        import atexit

        from api_sandbox import Sandbox

        _shared = Sandbox(seed=42)
        _shared.__enter__()
        atexit.register(_shared.__exit__, None, None, None)
    return _shared


@contextlib.contextmanager
def meltano_lock(tap: str) -> t.Iterator[None]:
    """Hold the project's Meltano files of ``tap`` for one Meltano command.

    Meltano writes a tap's catalog and run files to one path per tap under ``.meltano/run``,
    so two commands of one tap at once (two pytest workers, ``scripts/test.sh``) break each
    other ("catalog file is not valid JSON"); commands of two taps run side by side.
    """
    path = ROOT / ".meltano" / f".test-lock-{tap}"
    path.parent.mkdir(exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def meltano_run(
    case: TapCase, sandbox: t.Any, tmp_path: Path, loader: str, *args: str, **env: str
) -> subprocess.CompletedProcess:
    """``meltano run`` of the tap into ``loader`` in the sandbox environment.

    The tap is pointed at ``sandbox`` through its ``TAP_<NAME>_*`` variables, as a user
    overrides a setting; state lives under ``tmp_path`` and is not updated unless
    ``args`` says otherwise (``--state-id-suffix``...).
    """
    prefix = case.name.upper().replace("-", "_")
    environment = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "MELTANO_STATE_BACKEND_URI": f"file://{tmp_path}/state",
        f"{prefix}_BASE_URL": sandbox.base_url(case.api),
        # From the environment a number arrives as text: the tap must take it.
        f"{prefix}_BACKOFF_FACTOR": "0.01",
        f"{prefix}_MAX_REQUESTS_PER_MINUTE": "0",
        **{f"{prefix}_{k.upper()}": str(v) for k, v in sandbox.credentials(case.api).items()},
        **env,
    }
    with meltano_lock(case.name):
        return subprocess.run(
            [
                MELTANO,
                "--environment=sandbox",
                "run",
                *(args or ("--no-state-update",)),
                case.name,
                loader,
            ],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def assert_duckdb_holds_the_sandbox(
    database: Path, case: TapCase, sandbox: t.Any, where: str = ""
) -> None:
    """Every stream of ``case`` in the DuckDB file ``database``: as many rows as the
    sandbox holds, no key twice, and the sandbox's own keys where its records carry them
    (target-duckdb writes a tap's tables in a schema named after the tap)."""
    import duckdb

    tap = case.tap_class(config=case.config(sandbox))
    schema = case.name.replace("-", "_")
    with duckdb.connect(str(database), read_only=True) as con:
        tables = {
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                [schema],
            ).fetchall()
        }
        for stream in sandbox.streams(case.api):
            label = f"{where}{stream}"
            truth = sandbox.records(case.api, stream)
            if not truth and stream not in tables:
                continue  # target-duckdb creates a table on the first record
            keys = tap.streams[stream].primary_keys
            key_list = ", ".join(f'"{k}"' for k in keys)
            rows = con.execute(f'select {key_list} from "{schema}"."{stream}"').fetchall()
            assert len(rows) == len(truth), f"{label}: {len(rows)} rows, sandbox has {len(truth)}"
            assert len(set(rows)) == len(rows), f"{label}: duplicate keys"
            if set(keys) <= {k for r in truth for k in r}:
                landed = {tuple(key_value(v) for v in row) for row in rows}
                assert landed == {tuple(key_value(r[k]) for k in keys) for r in truth}, label


def missing_properties(schema: dict, value: t.Any, where: str) -> list[str]:
    """Every property ``schema`` names that ``value`` lacks, recursively into non-null values.

    For the sandbox tests: the sandbox must serve every field of ``api-fields/<api>.json``.
    """
    missing: list[str] = []
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value:
                missing.append(f"{where}.{key}")
            else:
                missing += missing_properties(sub, value[key], f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            missing += missing_properties(schema["items"], item, f"{where}[{i}]")
    return missing
