"""One error path for all taps: failures a user can act on, in one paragraph.

Every failure a tap reports on purpose is a :class:`TapError`. The command-line
entry point (:func:`taps_core.tap.CollectionTap.main`) prints its message, already
redacted, and exits non-zero without a traceback; the traceback is logged only at
DEBUG, for whoever asks for it with ``LOGLEVEL=DEBUG``.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

import orjson
import requests

from taps_core.redact import redact

#: Where APIs put their own error text, in the order we trust them.
_ERROR_TEXT_KEYS = ("message", "error_description", "detail", "details", "name", "error", "ERRORS")
_MAX_ERROR_TEXT = 300
#: Where :meth:`taps_core.client.CollectionStream.log` leaves the name of the stream an
#: exception broke, for the entry point's one line about it.
FAILED_STREAM_ATTRIBUTE = "_taps_core_stream"


class TapError(Exception):
    """A failure with a message fit for the user; raising it ends the sync."""


class ConfigError(TapError):
    """Settings are missing or wrong; raised before any request is sent."""


class APIError(TapError):
    """The API refused a request for good (a non-retryable status, or retries spent)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    #: The API's name for a permanent cause (``RESULTSET_TOO_LARGE``), when it gave one
    #: the stream declares: see ``CollectionStream.permanent_error_names``.
    cause: str | None = None


class RetryableResponseError(Exception):
    """A response worth retrying (429, 5xx, a truncated or unparsable body)."""

    def __init__(self, response: requests.Response, summary: str) -> None:
        super().__init__(summary)
        self.response = response
        self.summary = summary


def request_label(method: str | None, url: str | None) -> str:
    """``GET /v2/orders``: the method and path, never the query string or host credentials."""
    return f"{method or 'GET'} {urlsplit(url or '').path or '/'}"


def status_text(status: int) -> str:
    """``401 Unauthorized``."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def attempts_text(attempts: int) -> str:
    """``after 4 attempts``, or nothing for a request tried once: no retry is claimed
    that did not happen."""
    return f"after {attempts} attempts" if attempts > 1 else ""


def describe_request_error(error: Exception) -> str:
    """What made a request fail in a way no retry mends (a redirect loop, a bad URL).

    requests' own text names the URL (redacted here, with its query string), and a
    URL without a scheme or a host can only come from the settings.
    """
    text = one_line(str(error)) or type(error).__name__
    detail = f"{type(error).__name__}: {text}".rstrip(".")
    url_errors = (
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidURL,
    )
    hint = " Check the base_url setting." if isinstance(error, url_errors) else ""
    return f"{detail}.{hint}"


def api_error_text(body: bytes | str | None) -> str:
    """The API's own explanation from an error body, shortened to one line."""
    if not body:
        return ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return one_line(text)
    found = _find_error_text(parsed)
    return one_line(found if found is not None else orjson.dumps(parsed).decode())


def _find_error_text(value: object, depth: int = 0) -> str | None:
    if depth > 4:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p for p in (_find_error_text(v, depth + 1) for v in value) if p]
        return "; ".join(parts) or None
    if isinstance(value, dict):
        for key in _ERROR_TEXT_KEYS:
            if value.get(key):
                found = _find_error_text(value[key], depth + 1)
                if found:
                    return found
        for nested in value.values():
            if isinstance(nested, (dict, list)):
                found = _find_error_text(nested, depth + 1)
                if found:
                    return found
    return None


def one_line(text: str, limit: int = _MAX_ERROR_TEXT) -> str:
    """``text`` redacted, on one line, at most ``limit`` characters.

    Redacted before it is cut, or a secret across the cut would keep the half
    before it; and again once its whitespace is collapsed, for a secret with a
    run of spaces in it.
    """
    text = redact(" ".join(redact(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The earlier, private name, for code written against it.
_one_line = one_line
