"""Timestamps an API writes as text without a zone, made RFC 3339 for targets.

Some APIs write ``2024-01-31 12:00:00``: a space for the ``T`` and no offset, and
``0000-00-00 00:00:00`` for a time that was never set. Declared as text, a target
loads it as text and nobody can compare it with a date; declared ``date-time`` as it
comes, it is not a valid RFC 3339 date-time and strict targets refuse it. A stream
names such fields (:attr:`NaiveTimestampFields.naive_timestamp_fields`), declares them
``format: date-time`` in its schema, and every record gets them converted here: the
same digits with a ``T`` and the API's offset (``Z`` unless declared), the zero date
as null, which is what it means.
"""

from __future__ import annotations

import re
import typing as t
from datetime import datetime

if t.TYPE_CHECKING:
    import logging

    from singer_sdk.helpers.types import Context

_NAIVE = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)")
_ZERO_DATE = "0000-00-00"


def naive_to_rfc3339(value: str, offset: str = "Z") -> str | None:
    """``2024-01-31 12:00:00`` -> ``2024-01-31T12:00:00Z``; the zero date -> None.

    Raises ValueError for text that is neither (the caller decides what to do with it).
    """
    if value.startswith(_ZERO_DATE):
        return None
    match = _NAIVE.fullmatch(value.strip())
    if match is None:
        msg = f"not a timestamp: {value!r}"
        raise ValueError(msg)
    day, clock = match.groups()
    if len(clock) == 5:
        clock += ":00"
    datetime.fromisoformat(f"{day}T{clock[:8]}")  # a real date and time, or ValueError
    return f"{day}T{clock}{offset}"


class NaiveTimestampFields:
    """Stream mixin: convert the declared top-level fields in every record.

    Put it before the stream base class (``class S(NaiveTimestampFields, Base)``).
    A value that is not a timestamp at all becomes null with one warning per field, so
    a target that checks formats keeps loading, and the log says what was dropped.
    """

    #: Top-level fields written ``YYYY-MM-DD HH:MM:SS`` with no zone.
    naive_timestamp_fields: t.ClassVar[tuple[str, ...]] = ()
    #: The API's UTC offset for those fields, as RFC 3339 writes it.
    naive_timestamp_offset: t.ClassVar[str] = "Z"

    name: str
    logger: logging.Logger

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        row = super().post_process(row, context)  # type: ignore[misc]
        if row is None:
            return None
        for field in self.naive_timestamp_fields:
            value = row.get(field)
            if not isinstance(value, str):
                continue
            try:
                row[field] = naive_to_rfc3339(value, self.naive_timestamp_offset)
            except ValueError:
                row[field] = None
                self._warn_unreadable(field, value)
        return row

    def _warn_unreadable(self, field: str, value: str) -> None:
        warned: set[str] = self.__dict__.setdefault("_unreadable_warned", set())
        if field not in warned:
            warned.add(field)
            self.logger.warning(
                "Stream %s: %s %r is not a timestamp; emitted as null (further ones too)",
                self.name,
                field,
                value,
            )
