"""The retry policy of the seeds, written once for all five taps.

429 and 5xx statuses, connection resets, timeouts and truncated bodies are retried
with exponential backoff (factor 2, at most 3 retries, so 4 attempts). A
``Retry-After`` header, in seconds or as an HTTP date, replaces the computed wait,
because the server knows better than our formula when it will take us back; the
wait is capped so that a server asking for an hour cannot stall a sync silently.
"""

from __future__ import annotations

import email.utils
import logging
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests

from taps_core.errors import RetryableResponseError

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})

#: Transport failures worth another attempt: the request may not have reached the
#: server, or its answer was cut off (``ChunkedEncodingError`` is how requests
#: reports a body shorter than its Content-Length).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    RetryableResponseError,
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; one instance per stream, built from settings."""

    max_retries: int = 3
    backoff_factor: float = 2.0
    max_wait_seconds: float = 60.0
    statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)

    @classmethod
    def from_config(
        cls, config: t.Mapping[str, t.Any], statuses: frozenset[int] = RETRYABLE_STATUSES
    ) -> RetryPolicy:
        """The policy the tap's settings ask for, so data and token requests share it."""
        return cls(
            backoff_factor=float(config.get("backoff_factor", 2.0)),
            max_wait_seconds=float(config.get("max_retry_wait_seconds", 60.0)),
            statuses=statuses,
        )

    def computed_wait(self, retry_number: int) -> float:
        """Exponential backoff: factor, 2*factor, 4*factor... for retries 1, 2, 3..."""
        return self.backoff_factor * (2 ** (retry_number - 1))

    def wait_for(self, error: BaseException, retry_number: int) -> float:
        """The wait before retry ``retry_number``: Retry-After if given, capped."""
        wait = None
        if isinstance(error, RetryableResponseError):
            wait = parse_retry_after(error.response.headers.get("Retry-After"))
        if wait is None:
            wait = self.computed_wait(retry_number)
        return min(wait, self.max_wait_seconds)


R = t.TypeVar("R")


def call_with_retries(
    attempt: t.Callable[[], R],
    policy: RetryPolicy,
    *,
    logger: logging.Logger,
    what: str,
    sleep: t.Callable[[float], None] = time.sleep,
) -> R:
    """Call ``attempt`` until it succeeds or the policy's retries are spent.

    ``what`` names the request in log lines ("GET /v2/orders"): never a full URL,
    whose query string may carry a secret.
    """
    retry_number = 0
    while True:
        try:
            return attempt()
        except TRANSIENT_ERRORS as error:
            retry_number += 1
            if retry_number > policy.max_retries:
                raise
            wait = policy.wait_for(error, retry_number)
            logger.warning(
                "%s failed (%s); retry %d of %d in %.1f s",
                what,
                describe_transient(error),
                retry_number,
                policy.max_retries,
                wait,
            )
            sleep(wait)


def describe_transient(error: BaseException) -> str:
    """A short, secret-free description of a transient failure."""
    if isinstance(error, RetryableResponseError):
        return error.summary
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "response body cut off"
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(error, (requests.exceptions.ConnectionError, ConnectionResetError)):
        return "connection failed or reset"
    return type(error).__name__
