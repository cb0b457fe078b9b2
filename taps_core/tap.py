"""The base tap: settings every tap shares, one authenticator, and the one error path."""

from __future__ import annotations

import logging
import sys
import typing as t
from datetime import datetime
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from taps_core.errors import ConfigError, TapError
from taps_core.records import FastWriter
from taps_core.records import stdout as gathered_records
from taps_core.redact import install as install_redaction
from taps_core.redact import redact, register_secret

if t.TYPE_CHECKING:
    from taps_core.client import CollectionStream

#: Settings of every tap: how hard to retry, how long to wait.
COMMON_SETTINGS = th.PropertiesList(
    th.Property(
        "max_retry_wait_seconds",
        th.NumberType,
        default=60,
        description=(
            "Longest wait before a retry, in seconds, even when the API's Retry-After asks "
            "for more."
        ),
    ),
    th.Property(
        "backoff_factor",
        th.NumberType,
        default=2,
        description=(
            "Exponential backoff factor: retries wait factor, 2*factor, 4*factor seconds "
            "(at most 3 retries) unless the API sends Retry-After."
        ),
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=300,
        description="Seconds to wait for the API to answer one request.",
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

    def discover_streams(self) -> list[CollectionStream]:
        return [stream_type(tap=self) for stream_type in self.stream_types]

    def sync_all(self) -> None:
        """The SDK's sync, then out with the RECORD lines still gathered.

        Gathered lines leave with the next SCHEMA or STATE message; a sync whose last
        state equals the one before writes no final STATE, and its last records would
        wait for the process to exit, or, run in-process, land in the next sync's output.
        """
        try:
            super().sync_all()
        finally:
            gathered_records.flush()

    @cached_property
    def authenticator(self) -> t.Any:
        """One authenticator for the whole sync, shared by every stream."""
        return self.build_authenticator()

    def build_authenticator(self) -> t.Any:
        """The tap's ``requests`` auth object, built from its settings."""
        raise NotImplementedError

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Register secrets before anything can log them, and word errors for users."""
        install_redaction()
        secret_names = {
            name
            for name, spec in self.config_jsonschema.get("properties", {}).items()
            if spec.get("secret") or spec.get("writeOnly")
        }
        for name in secret_names:
            register_secret(self._config.get(name))
        self._coerce_numeric_strings()
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as error:
            errors = list(error.errors) or [str(error)]
        errors += self._date_time_errors()
        if errors and raise_errors:
            problems = "; ".join(redact(e) for e in errors)
            msg = f"{self.name}: the settings are not valid: {problems}."
            raise ConfigError(msg)
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

    @classmethod
    def main(cls) -> None:
        """Console entry point: the SDK's CLI, with failures told in one paragraph.

        A :class:`TapError` is expected (bad settings, a refused request) and is told
        without a traceback; anything else is a bug, told the same way, with the
        traceback at DEBUG.
        """
        install_redaction()
        command = cls.cli
        try:
            command.main(prog_name=cls.name, standalone_mode=True)
        except TapError as error:
            cls._fail(str(error))
        except Exception as error:
            cls.logger.debug("Traceback of the failure below", exc_info=True)
            cls._fail(f"{cls.name} failed unexpectedly: {type(error).__name__}: {error}")

    @classmethod
    def _fail(cls, message: str) -> t.NoReturn:
        logging.getLogger(cls.name).error(message)
        sys.exit(1)
