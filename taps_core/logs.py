"""stderr for people: the level a user asks for, and no line that only a machine wants.

The SDK's defaults, at INFO, print a METRIC JSON line per stream and counter (and,
with ``log_each_request``, per request), "Skipping parse of env var settings...", a
line per deselected stream, "Stream is assumed to be unsorted" without saying which
stream, and, under ``--test``, an ERROR line for every stream that *passed* (the
test ends each stream by aborting it). Here:

- ``log_level`` (a setting, so Meltano users can set it like any other) sets the
  level; without it ``TAP_<NAME>_LOGLEVEL`` or ``LOGLEVEL`` does, as in the SDK;
- METRIC lines appear at DEBUG, or at any level with ``log_metrics: true``;
- deselected streams are named in one line; the unsorted warning is dropped for a
  stream that declares ``is_sorted = False`` (the tap knows, the user can do nothing)
  and names the stream otherwise;
- ``--test`` reads one record of each stream and prints one PASS or FAIL line a
  stream, then a verdict, exiting 1 if any stream failed.
"""

from __future__ import annotations

import logging
import typing as t

from singer_sdk import typing as th
from singer_sdk.exceptions import AbortedSyncFailedException, AbortedSyncPausedException
from singer_sdk.metrics import METRICS_LOGGER_NAME

from taps_core import progress
from taps_core.errors import TapError

if t.TYPE_CHECKING:
    from singer_sdk import Tap

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: Settings every tap gets with the SDK's own (see ``CollectionTap.append_builtin_config``).
LOG_SETTINGS = th.PropertiesList(
    th.Property(
        "log_level",
        th.StringType,
        description=(
            "Log level of the tap: DEBUG, INFO, WARNING, ERROR or CRITICAL. Without it, "
            "the TAP_<NAME>_LOGLEVEL or LOGLEVEL environment variable, else INFO."
        ),
    ),
    th.Property(
        "log_metrics",
        th.BooleanType,
        default=False,
        description=(
            "Log the SDK's METRIC lines (record and request counts, durations) at INFO; "
            "they are logged at DEBUG anyway."
        ),
    ),
    th.Property(
        "progress_interval_seconds",
        th.NumberType,
        default=30,
        description=(
            "Seconds between two progress lines of a running stream (records so far, "
            "rate, share done and time left where the API gives a total)."
        ),
    ),
)

#: The tap whose streams the filters below describe (one per process, the CLI's).
_tap: Tap | None = None


def apply(tap: Tap) -> list[str]:
    """Set the level from ``log_level`` and quiet METRIC lines; errors for the settings."""
    global _tap
    _tap = tap
    level = tap.config.get("log_level")
    errors = []
    if isinstance(level, str) and level.strip():
        if level.strip().upper() in LEVELS:
            logging.getLogger().setLevel(level.strip().upper())
        else:
            errors.append(f"log_level must be one of {', '.join(LEVELS)}")
    metrics = logging.getLogger(METRICS_LOGGER_NAME)
    if tap.config.get("log_metrics") or logging.getLogger().isEnabledFor(logging.DEBUG):
        metrics.setLevel(logging.NOTSET)
    else:
        metrics.setLevel(logging.WARNING)
    return errors


class _TapLines(logging.Filter):
    """On the tap's logger: no env-var line; the deselected streams in one line."""

    def __init__(self) -> None:
        super().__init__()
        self._deselected_told = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Skipping parse of env var settings"):
            return False
        if message.startswith("Skipping deselected stream"):
            if self._deselected_told or _tap is None:
                return False
            self._deselected_told = True
            names = [
                s.name
                for s in _tap.streams.values()
                if not s.selected and not s.has_selected_descendents
            ]
            record.msg, record.args = (
                "Not selected, not synced: %s (%d streams).",
                (
                    ", ".join(names),
                    len(names),
                ),
            )
        return True


class _SdkLines(logging.Filter):
    """On the ``singer_sdk`` logger: the unsorted warning, only where it tells something."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Stream is assumed to be unsorted"):
            return True
        stream = progress.current_stream()
        if stream is None:
            return True
        if declares_unsorted(type(stream)):
            return False
        record.msg, record.args = "Stream '%s': %s", (stream.name, message)
        return True


def declares_unsorted(stream_type: type) -> bool:
    """Whether a stream class says ``is_sorted = False`` itself (not the SDK's default)."""
    for klass in stream_type.__mro__:
        if klass.__module__.startswith("singer_sdk"):
            return False
        if "is_sorted" in vars(klass):
            return not vars(klass)["is_sorted"]
    return False


_installed: set[str] = set()


def install(tap_name: str) -> None:
    """Install the filters once per process, before the tap logs its first line."""
    if tap_name in _installed:
        return
    _installed.add(tap_name)
    logging.getLogger(tap_name).addFilter(_TapLines())
    logging.getLogger("singer_sdk").addFilter(_SdkLines())


class _QuietAborts(logging.Filter):
    """During ``--test``: the SDK's ERROR line for a stream ended by the record limit.

    The test stops each stream by aborting it, which the SDK logs as an unhandled
    error; its "Beginning sync" lines say nothing the PASS/FAIL line does not.
    """

    NOISE = (
        "An unhandled error occurred while syncing",
        "Beginning sync of",
        "Starting incremental sync of",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.NOISE)


def connection_test(tap: Tap) -> bool:
    """Read (at most) one record of each stream; one line a stream, then a verdict."""
    streams = [s for s in tap.streams.values() if not s.parent_stream_type]
    for stream in tap.streams.values():
        stream.ABORT_AT_RECORD_COUNT = 1
        stream.selected = True
    quiet = _QuietAborts()
    failed: list[str] = []
    for stream in streams:
        stream.logger.addFilter(quiet)
        try:
            stream.sync()
            outcome = (
                "PASS",
                "answered, a record read" if _read_one(stream) else "answered, no records",
            )
        except (AbortedSyncFailedException, AbortedSyncPausedException):
            outcome = "PASS", "answered, a record read"
        except TapError as error:
            outcome = "FAIL", str(error)
        except Exception as error:  # a bug, still one stream's failure, not the test's
            outcome = "FAIL", f"{type(error).__name__}: {error}"
        finally:
            stream.logger.removeFilter(quiet)
        # A child stream (one request per parent record) is read within its parent's
        # sync: it shares the parent's outcome, and says whether it got a record.
        children = [s for s in tap.streams.values() if s.parent_stream_type is type(stream)]
        for name, why in [(stream.name, outcome[1])] + [
            (child.name, _child_outcome(child, stream, outcome)) for child in children
        ]:
            if outcome[0] == "FAIL":
                failed.append(name)
                tap.logger.error("FAIL %s: %s", name, why)
            else:
                tap.logger.info("PASS %s (%s)", name, why)
    total = len(tap.streams)
    if failed:
        tap.logger.error(
            "Connection test FAILED: %d of %d streams failed (%s).",
            len(failed),
            total,
            ", ".join(failed),
        )
        return False
    tap.logger.info("Connection test passed: all %d streams answered.", total)
    return True


def _child_outcome(child: t.Any, parent: t.Any, outcome: tuple[str, str]) -> str:
    if outcome[0] == "FAIL":
        return f"not read: its parent stream {parent.name} failed"
    if _read_one(child):
        return f"answered, a record read, with {parent.name}"
    return f"not asked: {parent.name} gave no record to ask for"


def _read_one(stream: t.Any) -> bool:
    tracker = progress.tracker_of(stream)
    return bool(tracker and tracker.count)
