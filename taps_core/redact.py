"""Keep secret values out of every log line and error message.

Redaction happens where a log record is *made* (a log-record factory), not in one
handler's filter, so that no handler, formatter or log level can print a secret:
not the SDK's console handler, not pytest's capture, not a user's logging config.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "****"
#: Shorter values are not redacted: masking every "ab" in every log line would make
#: the logs unreadable, and a two-character secret is no secret.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_installed = False


def register_secret(value: object) -> None:
    """Mark a value as secret from now on, in this process."""
    global _pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    install()


def redact(text: str) -> str:
    """Return ``text`` with every registered secret masked."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def install() -> None:
    """Wrap the process's log-record factory once, so every record is redacted."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if _pattern is None:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the log line
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_factory)
