"""Timestamps as APIs write them, made RFC 3339 for targets and comparable in bookmarks.

Two mixins: :class:`NaiveTimestampFields` for vendor text (``2024-01-31 12:00:00``,
named fields), :class:`Rfc3339Timestamps` for ISO 8601 with a colon-less offset or no
zone (every ``date-time`` property of the schema); :func:`utc_text` is the bookmark form.

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
from datetime import datetime, timedelta

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


class _UnreadableWarnings:
    """One warning per field whose value is no timestamp: the log says what became null."""

    name: str
    logger: logging.Logger

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


class NaiveTimestampFields(_UnreadableWarnings):
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


# -- timestamps with an offset, or none: RFC 3339 in records, UTC in bookmarks ----------

_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>[.,]\d+)?)?)?"
    r"\s*(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


#: The common case of :func:`utc_text`, a UTC instant to the second or finer, read
#: without the arithmetic (a year of four digits from 1000 on, as ``strftime`` writes).
_UTC_TIMESTAMP = re.compile(r"([1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(?:[Zz]|\+00:?00)")


def _parts(value: str) -> re.Match[str]:
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        msg = f"not a timestamp: {value!r}"
        raise ValueError(msg)
    return match


def _offset_minutes(zone: str | None) -> int:
    if not zone or zone in "Zz":
        return 0
    digits = zone[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return -minutes if zone[0] == "-" else minutes


def _rfc3339_zone(zone: str | None) -> str:
    """``+0530`` -> ``+05:30``, ``+05`` -> ``+05:00``, none -> ``+00:00`` (UTC)."""
    if not zone:
        return "+00:00"
    if zone in "Zz":
        return "Z"
    digits = zone[1:].replace(":", "")
    return f"{zone[0]}{digits[:2]}:{digits[2:4] or '00'}"


def to_rfc3339(value: str) -> str:
    """The API's spelling of an instant as RFC 3339, same digits, same offset.

    ``2024-01-31T12:00:00+0530`` -> ``...+05:30`` (inventory), ``+0000`` -> ``+00:00``
    (reporting), and a zone-less ``2022-09-21T13:22:16.3881969`` is read as UTC and
    gets ``+00:00`` with all seven fractional digits kept (bookings). Only the offset's
    spelling changes: the instant, the local time and the precision are the API's.
    Raises ValueError for text that is not a timestamp.
    """
    match = _parts(value)
    if match["hour"] is None:
        return value.strip()  # a date alone is a valid date, not ours to invent a time for
    second = match["second"] or "00"
    fraction = (match["fraction"] or "").replace(",", ".")
    clock = f"{match['hour']}:{match['minute']}:{second}{fraction}"
    datetime.fromisoformat(f"{match['date']}T{clock[:8]}")  # a real date and time
    return f"{match['date']}T{clock}{_rfc3339_zone(match['zone'])}"


def utc_text(value: str) -> str:
    """The same instant in UTC, ``YYYY-MM-DDTHH:MM:SS[.fraction]+00:00``.

    Text in this one form orders as the instants do (the fraction's digits are kept as
    given, however many, and compare digit by digit), which is what a bookmark needs:
    the SDK compares replication values as strings, and ``10:00+05:30`` sorts after
    ``05:00Z`` though it is the same instant. A zone-less value is UTC; a date alone is
    its midnight. Raises ValueError for text that is not a timestamp.
    """
    utc = _UTC_TIMESTAMP.fullmatch(value)
    if utc is not None:  # already UTC, as most APIs write it: only the zone's spelling
        datetime.fromisoformat(utc[1])  # a real date and time
        return f"{utc[1]}{utc[2] or ''}+00:00"
    match = _parts(value)
    clock = f"{match['hour'] or '00'}:{match['minute'] or '00'}:{match['second'] or '00'}"
    local = datetime.fromisoformat(f"{match['date']}T{clock}")
    moment = local - timedelta(minutes=_offset_minutes(match["zone"]))
    fraction = (match["fraction"] or "").replace(",", ".")
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}+00:00"


def _date_time_paths(schema: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths to every ``format: date-time`` property; ``"[]"`` steps into array items."""
    paths: list[tuple[str, ...]] = []
    for name, sub in schema.get("properties", {}).items():
        path = (*prefix, name)
        if sub.get("format") == "date-time" or any(
            option.get("format") == "date-time" for option in sub.get("anyOf", [])
        ):
            paths.append(path)
        if "properties" in sub:
            paths.extend(_date_time_paths(sub, path))
        items = sub.get("items")
        if isinstance(items, dict) and "properties" in items:
            paths.extend(_date_time_paths(items, (*path, "[]")))
    return paths


class Rfc3339Timestamps(_UnreadableWarnings):
    """Stream mixin: every ``date-time`` property of the schema, made RFC 3339.

    APIs write offsets without a colon (``+0530``, ``+0000``) or no zone at all; both
    are invalid RFC 3339, and a strict target refuses them or loads them as text. The
    schema already says which properties are timestamps (``format: date-time``, nested
    ones too), so a stream only adds this mixin before its base class: each such value
    gets :func:`to_rfc3339`. A value that is not a timestamp becomes null, with one
    warning per property, rather than failing a strict target's load.

    Bookmarks across offsets are the base stream's business: see
    :meth:`taps_core.client.CollectionStream._increment_stream_state`.
    """

    name: str
    logger: logging.Logger
    effective_schema: dict

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        row = super().post_process(row, context)  # type: ignore[misc]
        if row is None:
            return None
        for path in self._timestamp_paths:
            self._convert(row, path, 0)
        return row

    @property
    def _timestamp_paths(self) -> list[tuple[str, ...]]:
        paths = self.__dict__.get("_paths_cache")
        if paths is None:
            paths = self.__dict__["_paths_cache"] = _date_time_paths(self.effective_schema)
        return paths

    def _convert(self, node: t.Any, path: tuple[str, ...], depth: int) -> None:
        step = path[depth]
        if step == "[]":
            if isinstance(node, list):
                for item in node:
                    self._convert(item, path, depth + 1)
            return
        if not isinstance(node, dict) or step not in node:
            return
        if depth + 1 < len(path):
            self._convert(node[step], path, depth + 1)
            return
        value = node[step]
        if isinstance(value, str):
            try:
                node[step] = to_rfc3339(value)
            except ValueError:
                node[step] = None
                self._warn_unreadable(".".join(p for p in path if p != "[]"), value)
