"""The base tap: settings every tap shares, one authenticator, and the one error path."""

from __future__ import annotations

import atexit
import gc
import logging
import math
import sys
import typing as t
import unicodedata
from datetime import datetime
from functools import cached_property
from urllib.parse import urlsplit

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.configuration._dict_config import merge_missing_config_jsonschema
from singer_sdk.exceptions import ConfigValidationError

from taps_core import drift, inputs, logs, settings_check
from taps_core.budget import RequestBudget
from taps_core.errors import FAILED_STREAM_ATTRIBUTE, ConfigError, TapError, one_line
from taps_core.prefetch import Pool
from taps_core.records import FastWriter
from taps_core.records import stdout as gathered_records
from taps_core.redact import install as install_redaction
from taps_core.redact import redact, register_secret
from taps_core.retry import RetryPolicy
from taps_core.signals import handle_termination

if t.TYPE_CHECKING:
    from taps_core.client import CollectionStream


def request_budget_setting(per_minute: float) -> th.Property:
    """``max_requests_per_minute`` with the default a tap's contract names.

    Every tap has the setting (it is in :data:`COMMON_SETTINGS`, off by default); a tap
    whose API names a rate limit lists this after ``*COMMON_SETTINGS`` with that limit,
    and the later property takes the earlier one's place.
    """
    return th.Property(
        "max_requests_per_minute",
        th.NumberType(minimum=0),
        default=per_minute,
        description=(
            "Most data requests in any 60 seconds, spaced evenly (no bursts), shared by "
            "every stream of the sync; 0 turns pacing off."
        ),
    )


#: Settings of every tap: how hard to retry, how long to wait, how fast to ask.
COMMON_SETTINGS = th.PropertiesList(
    th.Property(
        "max_retry_wait_seconds",
        th.NumberType(minimum=0),
        default=60,
        description=(
            "Longest wait before a retry, in seconds, even when the API's Retry-After asks "
            "for more."
        ),
    ),
    th.Property(
        "backoff_factor",
        th.NumberType(minimum=0),
        default=2,
        description=(
            "Exponential backoff factor: retries wait factor, 2*factor, 4*factor seconds "
            "(at most 3 retries) unless the API sends Retry-After."
        ),
    ),
    th.Property(
        "request_timeout",
        th.IntegerType(minimum=1),
        default=300,
        description="Seconds to wait for the API to answer one request.",
    ),
    request_budget_setting(0),
    th.Property(
        "schema_drift",
        th.StringType,
        default=drift.DEFAULT_POLICY,
        allowed_values=list(drift.POLICIES),
        description=(
            "What a property the API sends and the stream's schema lacks does: evolve "
            "declares it in an amended SCHEMA message and keeps it (types inferred, widened "
            "when a value no longer fits), drop leaves it out, fail stops the sync before "
            "that record (exit 1, with a STATE to resume from). A warning names each."
        ),
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType(minimum=1, maximum=64),
        default=8,
        description=(
            "Most requests in flight at once: the pages a stream will certainly ask for "
            "next are fetched ahead, within max_requests_per_minute, and the output stays "
            "what a sequential sync writes; 1 sends one request at a time."
        ),
    ),
)


class CollectionTap(Tap):
    """Base for the five taps. A tap declares ``name``, settings and ``stream_types``."""

    #: The tap's stream classes.
    stream_types: t.ClassVar[list[type[CollectionStream]]] = []
    #: msgspec for SCHEMA and STATE; RECORD lines take the fast path in taps_core.records.
    message_writer_class = FastWriter
    #: The distribution all five taps ship in, for the version the SDK reports.
    package_name = "singer-tap-collection"
    #: SIGTERM and SIGINT stop at a safe point with a last STATE (taps_core.signals).
    _handle_termination = handle_termination

    def discover_streams(self) -> list[CollectionStream]:
        return [stream_type(tap=self) for stream_type in self.stream_types]

    def sync_all(self) -> None:
        """The SDK's sync, then out with the RECORD lines still gathered; workers end.

        Gathered lines leave with the next SCHEMA or STATE message; a sync whose last
        state equals the one before writes no final STATE, and its last records would
        wait for the process to exit, or, run in-process, land in the next sync's output.
        The workers that fetch ahead end too (:meth:`taps_core.prefetch.Pool.close`).
        """
        try:
            super().sync_all()
        finally:
            gathered_records.flush()
            pool = self.__dict__.get("prefetch_pool")
            if pool is not None:
                pool.close()

    @cached_property
    def budget(self) -> RequestBudget:
        """One request budget for the whole sync: every stream spends the API's limit."""
        return RequestBudget(float(self.config.get("max_requests_per_minute") or 0))

    @cached_property
    def prefetch_pool(self) -> Pool | None:
        """The workers that fetch ahead (taps_core.prefetch); None for one at a time."""
        workers = int(self.config.get("max_concurrent_requests") or 1)
        return Pool(workers) if workers > 1 else None

    def prefetch_upcoming(self, stream: CollectionStream) -> None:
        """Once ``stream``'s first reply is in, fetch ahead the first pages of the next ones.

        The SDK syncs the selected top-level streams in order; a stream whose next
        pages need the reply before them (next-page URLs, cursors) overlaps only this
        way. Every stream still to come is offered: walked from its first page up to
        :attr:`UPCOMING_AHEAD` pages ahead (:meth:`taps_core.prefetch.Lane.chain`), or,
        for one read by date window, the first pages of its windows
        (:meth:`CollectionStream.plan_ahead`). Workers take the nearest stream's work
        first, the stream being read before all; what the streams to come fetch waits
        in their share of the pool's buffer (two thirds of it) until their read begins.
        """
        pool = self.prefetch_pool
        if pool is None:
            return
        order = [
            s
            for s in self.streams.values()
            if (s.selected or s.has_selected_descendents) and s.parent_stream_type is None
        ]
        if stream not in order:
            return
        start = order.index(stream) + 1
        for place, upcoming in enumerate(order[start:], start=1):
            lane = getattr(upcoming, "_prefetch_lane", None)
            if lane is None or upcoming.name in self._offered_ahead:
                continue
            self._offered_ahead.add(upcoming.name)
            lane.priority = place
            lane.depth = pool.workers  # its replies wait until its read begins
            prepared = upcoming.first_request_ahead()
            if prepared is not None:
                lane.chain(
                    self,
                    None,
                    upcoming.get_new_paginator(),
                    first=prepared,
                    prepare=upcoming.request_ahead,
                    ahead=self.UPCOMING_AHEAD,
                )
                continue
            planned = upcoming.plan_ahead()
            if planned is not None:
                lane.plan(
                    self, planned, cap=lane.depth, front=False, prepare=upcoming.request_ahead
                )
                pool.idle_fillers.append(lane)

    #: How many pages of a stream still to come may wait fetched, at most.
    UPCOMING_AHEAD: t.ClassVar[int] = 3

    @cached_property
    def _offered_ahead(self) -> set[str]:
        return set()

    @cached_property
    def authenticator(self) -> t.Any:
        """One authenticator for the whole sync, shared by every stream.

        An authenticator that makes requests of its own (an OAuth2 token request)
        gets the tap's retry settings and ``request_timeout`` here, once for all taps.
        """
        auth = self.build_authenticator()
        use_tap_settings = getattr(auth, "use_tap_settings", None)
        if use_tap_settings is not None:
            use_tap_settings(
                policy=RetryPolicy.from_config(self.config),
                timeout=float(self.config.get("request_timeout", 300)),
                logger=self.logger,
            )
        return auth

    def build_authenticator(self) -> t.Any:
        """The tap's ``requests`` auth object, built from its settings."""
        raise NotImplementedError

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Register secrets before anything can log them, and word errors for users."""
        install_redaction()
        errors = self._clean_secrets()
        self._coerce_numeric_strings()
        try:
            errors += super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as error:
            errors += list(error.errors) or [str(error)]
        errors += self._date_time_errors()
        errors += self._finite_number_errors()
        errors += self._url_errors()
        errors += self._user_checks(warn=raise_errors)
        if errors and raise_errors:
            problems = "; ".join(redact(e) for e in errors)
            msg = f"{self.name}: the settings are not valid: {problems}."
            raise ConfigError(msg)
        return errors

    def _clean_secrets(self) -> list[str]:
        """Register every secret setting, strip it, and refuse control characters in it.

        Secrets pasted or read from a file often end in a newline; sent in a header,
        it makes requests raise with the value in its message. Whitespace around a
        secret is never part of it, so it goes (said at INFO, by name only); a control
        character inside one cannot be meant and cannot travel in a header, so it is
        refused. Both the value as given and as used are registered first.
        """
        errors = []
        for name, spec in self.config_jsonschema.get("properties", {}).items():
            if not (spec.get("secret") or spec.get("writeOnly")):
                continue
            value = self._config.get(name)
            register_secret(value)
            if not isinstance(value, str):
                continue
            stripped = value.strip()
            if stripped != value:
                register_secret(stripped)
                self._config[name] = stripped
                self.logger.info("Setting %s: removed whitespace around its value.", name)
            if any(unicodedata.category(c) == "Cc" for c in stripped):
                errors.append(
                    f"{name} contains a control character (a line break, tab or similar) "
                    "inside its value; secrets never do"
                )
        return errors

    def _url_errors(self) -> list[str]:
        """Any ``*_url`` setting (a token URL) must be an http(s) URL with a host.

        Without this, a URL missing its scheme fails inside requests, with requests'
        words, once per stream. ``base_url`` gets a fuller check, with the fix written
        out, in :mod:`taps_core.settings_check`.
        """
        errors = []
        for name in self.config_jsonschema.get("properties", {}):
            value = self._config.get(name)
            if name == "base_url" or not name.endswith("_url") or not isinstance(value, str):
                continue
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.netloc:
                errors.append(f"{name} must be an http:// or https:// URL with a host name")
        return errors

    def _coerce_numeric_strings(self) -> None:
        """Accept "0.5" for a number setting: environment variables only carry text.

        Meltano hands a setting from an environment variable over as a string unless
        its kind converts it (and its ``decimal`` kind then fails to serialise).
        """
        for name, spec in self.config_jsonschema.get("properties", {}).items():
            value = self._config.get(name)
            kinds = spec.get("type", [])
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if not isinstance(value, str) or "string" in kinds:
                continue
            try:
                if "integer" in kinds and value.strip().lstrip("-").isdigit():
                    self._config[name] = int(value)
                elif "number" in kinds:
                    self._config[name] = float(value)
            except ValueError:
                pass  # left as it is: validation names the setting

    def _finite_number_errors(self) -> list[str]:
        """NaN and infinity pass JSON Schema's ``minimum`` (every comparison is false).

        They reach a config as ``"nan"`` through :meth:`_coerce_numeric_strings`, or as
        ``NaN`` in a JSON file, and would crash the first retry's wait.
        """
        errors = []
        for name in self.config_jsonschema.get("properties", {}):
            value = self._config.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                errors.append(f"{name} must be a finite number, not {value}")
        return errors

    def _date_time_errors(self) -> list[str]:
        """JSON Schema validation does not assert formats: check date-time settings here."""
        errors = []
        for name, spec in self.config_jsonschema.get("properties", {}).items():
            value = self._config.get(name)
            if spec.get("format") == "date-time" and isinstance(value, str):
                try:
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    errors.append(
                        f"{name} must be an ISO 8601 date-time such as 2024-01-31T00:00:00Z"
                    )
        return errors

    #: The longest failure line: room for the tap's words and an API's 300 characters.
    max_failure_line: t.ClassVar[int] = 1000

    def _user_checks(self, *, warn: bool) -> list[str]:
        """The tap's log level first, then the settings users get wrong (settings_check).

        Warnings only when the settings are for a sync: discovery (which Meltano runs
        before every sync) would tell them a second time.
        """
        return logs.apply(self) + settings_check.problems(self, warn=warn)

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's own settings, and the log settings of every tap (taps_core.logs)."""
        super().append_builtin_config(config_jsonschema)
        merge_missing_config_jsonschema(logs.LOG_SETTINGS.to_dict(), config_jsonschema)

    @classmethod
    def cb_config(cls, ctx: t.Any, param: t.Any, value: tuple[str, ...]) -> t.Any:
        """Quiet the SDK's machine lines, and refuse a config file that is not an object.

        Click runs this first, before any tap is built, so it is where the log filters
        go in (taps_core.logs).
        """
        logs.install(cls.name)
        inputs.check_config_files(cls.name, value)
        return super().cb_config(ctx, param, value)

    @classmethod
    def invoke(  # type: ignore[override]
        cls, *, state: t.IO[str] | None = None, catalog: t.IO[str] | None = None, **kwargs: t.Any
    ) -> None:
        """The SDK's sync, with the state and catalog files checked first (taps_core.inputs)."""
        super().invoke(
            state=inputs.checked_state_file(cls.name, state),
            catalog=inputs.checked_catalog(cls.name, catalog),
            **kwargs,
        )

    def load_state(self, state: dict[str, t.Any]) -> None:
        """Only bookmarks this tap can use, unwrapped from Meltano's wrapper if need be."""
        super().load_state(inputs.checked_state(self, state))

    @classmethod
    def cb_test(cls, ctx: t.Any, param: t.Any, value: str) -> None:
        """``--test``: one PASS or FAIL line a stream and a verdict (taps_core.logs)."""
        if value != "all":
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        tap = cls(config=config.config, parse_env_config=config.parse_env, validate_config=True)
        ctx.exit(0 if logs.connection_test(tap) else 1)

    @classmethod
    def main(cls) -> None:
        """Console entry point: the SDK's CLI, with every failure told in one line.

        A :class:`TapError` is expected (bad settings, a refused request) and is told
        as it is; anything else is a bug, told with its type, the stream it broke and
        its message on one line, redacted and bounded, with the traceback at DEBUG.

        At exit, every object left is frozen out of the garbage collector's last pass:
        the interpreter's shutdown collection would otherwise walk every object the SDK
        and its imports made, some 0.15 s a run (a fifth of a small sync's start-up),
        to free memory the exiting process gives back anyway. Nothing written depends
        on it: the records and STATE leave by atexit handlers and explicit flushes.
        """
        atexit.register(gc.freeze)
        install_redaction()
        command = cls.cli
        try:
            command.main(prog_name=cls.name, standalone_mode=True)
        except TapError as error:
            cls._fail(str(error))
        except Exception as error:
            cls.logger.debug("Traceback of the failure below", exc_info=True)
            stream = getattr(error, FAILED_STREAM_ATTRIBUTE, None)
            where = f" stream '{stream}'" if stream else ""
            text = one_line(str(error))
            cls._fail(
                f"{cls.name}{where} failed unexpectedly: {type(error).__name__}"
                f"{': ' + text if text else ''}"
            )

    @classmethod
    def _fail(cls, message: str) -> t.NoReturn:
        """Log the one ERROR line of a failure, redacted and on one line, and exit 1."""
        logging.getLogger(cls.name).error(one_line(message, limit=cls.max_failure_line))
        sys.exit(1)
