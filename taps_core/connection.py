"""A refused connection, told as one: nobody listens at the address the tap was given.

requests reports a closed port as ``ConnectionError(MaxRetryError(NewConnectionError(
... [Errno 111] Connection refused)))``, which the retry policy would take for a
reset, retry three times and then report as "failed after 4 attempts: connection
failed or reset". A refusal is an answer, not a fault on the way: the same address
refuses again a second later. So it ends the sync at once, naming the host and port,
and claims no retries it did not need.
"""

from __future__ import annotations

import contextlib
import errno
import typing as t
from urllib.parse import urlsplit

import requests

from taps_core.errors import APIError, request_label

if t.TYPE_CHECKING:
    from collections.abc import Iterator

_DEFAULT_PORTS = {"https": 443, "http": 80}


def is_refused(error: BaseException) -> bool:
    """Whether a connection error is, somewhere in its chain, a refused connection."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
    return False


def address(url: str | None) -> str:
    """``HOST:PORT`` of a URL, the port filled in from the scheme."""
    parts = urlsplit(url or "")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, "")
    return f"{parts.hostname or '?'}:{port}"


@contextlib.contextmanager
def refusal_is_final(
    tap_name: str, stream_name: str, prepared: requests.PreparedRequest
) -> Iterator[None]:
    """Turn a refused connection into the one failure line, past the retry policy."""
    try:
        yield
    except requests.exceptions.ConnectionError as error:
        if not is_refused(error):
            raise
        label = request_label(prepared.method, prepared.url)
        msg = (
            f"{tap_name} stream '{stream_name}': {label}: connection refused by "
            f"{address(prepared.url)}. Nothing listens there: check base_url (host and "
            "port) and that the API is reachable from here."
        )
        raise APIError(msg) from None
