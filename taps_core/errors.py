"""One error path for all taps: failures a user can act on, in one paragraph.

Every failure a tap reports on purpose is a :class:`TapError`. The command-line
entry point (:func:`taps_core.tap.CollectionTap.main`) prints its message, already
redacted, and exits non-zero without a traceback; the traceback is logged only at
DEBUG, for whoever asks for it with ``LOGLEVEL=DEBUG``.
"""

from __future__ import annotations

import typing as t
from http import HTTPStatus
from urllib.parse import urlsplit

import orjson

if t.TYPE_CHECKING:
    import requests

#: Where APIs put their own error text, in the order we trust them.
_ERROR_TEXT_KEYS = ("message", "error_description", "detail", "details", "name", "error", "ERRORS")
_MAX_ERROR_TEXT = 300


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


def api_error_text(body: bytes | str | None) -> str:
    """The API's own explanation from an error body, shortened to one line."""
    if not body:
        return ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return _one_line(text)
    found = _find_error_text(parsed)
    return _one_line(found if found is not None else orjson.dumps(parsed).decode())


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


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."
