"""Keep secret values out of every log line and error message.

A secret rarely travels as itself: requests quotes it in ``repr`` form
(``Invalid header value b'Bearer key\\n'``), a JSON log formatter escapes it, a form
body URL-quotes it, HTTP Basic hides it inside base64. :func:`register_secret`
therefore registers every form a secret can take in a log line, and
:func:`redact` masks all of them.

Redaction holds at two places, because neither alone is enough:

- where a record's text is *written*: :meth:`logging.Handler.format`, the one call
  every handler makes to turn a record into text, whatever its formatter. The SDK's
  JSON formatter builds its line from the raw exception, traceback frames and
  ``extra`` fields, none of which a record factory sees or may rewrite; masking
  the finished text catches them all, for every formatter, handler and level.
- where a record is *made* (the log-record factory), for code that reads
  ``record.getMessage()`` without formatting (pytest's ``caplog.records``, a
  handler that ships records elsewhere). A record with nothing to hide is left
  exactly as made, so the SDK still recognises its METRIC records by their
  ``args``; a METRIC point that does carry a secret keeps its structure, masked.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import re
import threading
import typing as t
from urllib.parse import quote, quote_plus

from singer_sdk.metrics import Point

MASK = "****"
#: Shorter values are not redacted: masking every "ab" in every log line would make
#: the logs unreadable, and a two-character secret is no secret.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_installed = False
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def register_secret(value: object) -> None:
    """Mark a value, in every form it can take in a log line, as secret in this process.

    A number counts too: a secret setting given as one shows up in validation errors.
    """
    global _pattern
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    forms = secret_forms(value)
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    install()


def redact(text: str) -> str:
    """Return ``text`` with every registered secret, in every registered form, masked."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def secret_forms(secret: str) -> set[str]:
    """The secret as it can appear in a log line or an error.

    As itself and with its whitespace runs collapsed (one-line error text); escaped
    as Python ``repr`` writes it, of text and of its UTF-8 and Latin-1 bytes (the
    encoding requests gives headers), in either quoting; URL-quoted as paths,
    queries and form bodies carry it; the base64 characters that only it decides
    wherever it sits in a Basic credential (``user:secret``); and each of those
    once more as JSON strings escape them (``ensure_ascii`` or not).
    """
    encoded = [secret.encode("utf-8", "surrogatepass")]
    with contextlib.suppress(UnicodeEncodeError):  # how requests encodes headers and Basic
        encoded.append(secret.encode("latin-1"))
    plain = {secret, " ".join(secret.split())}
    for quote_char in ("'", '"'):
        plain.add(_repr_escape(secret, quote_char))
        plain.update(_bytes_repr_escape(data, quote_char) for data in encoded)
    for quoted in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        plain.update((quoted, _HEX_ESCAPE.sub(lambda m: m.group().lower(), quoted)))
    for data in encoded:
        plain.update(_base64_forms(data))
    forms = set(plain)
    for form in plain:
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _repr_escape(text: str, quote_char: str) -> str:
    """``text`` as it reads inside ``repr()`` of a string quoted with ``quote_char``."""
    return "".join(
        ("\\" + c if c == quote_char else c) if c in "'\"" else repr(c)[1:-1] for c in text
    )


def _bytes_repr_escape(data: bytes, quote_char: str) -> str:
    """``data`` as it reads inside ``repr()`` of bytes quoted with ``quote_char``."""
    out = []
    for byte in data:
        c = chr(byte)
        if c in "'\"":
            out.append("\\" + c if c == quote_char else c)
        else:
            out.append(repr(bytes([byte]))[2:-1])
    return "".join(out)


def _base64_forms(data: bytes) -> set[str]:
    """The base64 of ``data`` alone, and the characters only ``data`` decides when it
    sits at any offset inside longer base64 text (``Basic base64(user:secret)``)."""
    forms = {base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()}
    bits = 8 * len(data)
    for offset in range(3):
        padded = b"\0" * offset + data + b"\0\0"
        first = -(-8 * offset // 6)  # the first 6-bit group wholly inside ``data``
        last = (8 * offset + bits) // 6  # one past the last such group
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(padded).decode()[first:last])
    return forms


def _redacted_point(point: Point) -> Point:
    """A METRIC point with secrets masked in its tags, still a point for the SDK."""
    tags = json.loads(redact(json.dumps(point.tags, default=str)))
    return dataclasses.replace(point, tags=tags)


def _redact_record(record: logging.LogRecord) -> None:
    """Mask secrets in a record's message, leaving a record with none untouched."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the log line, nor leak
        record.msg, record.args = redact(f"{record.msg} {record.args!r}"), None
        return
    if redact(message) == message:
        return
    args = record.args
    if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], Point):
        record.args = (_redacted_point(args[0]),)
        if redact(record.getMessage()) == record.getMessage():
            return
    record.msg, record.args = redact(message), None


def install() -> None:
    """Redact every record this process makes and every line its handlers write, once."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        make_record = logging.getLogRecordFactory()
        handler_format = logging.Handler.format

    def redacting_factory(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if _pattern is not None:
            _redact_record(record)
        return record

    def redacting_format(self: logging.Handler, record: logging.LogRecord) -> str:
        return redact(handler_format(self, record))

    redacting_format.__doc__ = handler_format.__doc__
    logging.setLogRecordFactory(redacting_factory)
    logging.Handler.format = redacting_format  # type: ignore[method-assign]
