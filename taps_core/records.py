"""The record path: from a parsed page to RECORD lines on stdout, with no wasted work.

The SDK's default path walks every value of every record to conform its type,
serialises with simplejson and flushes stdout once per message. Records parsed from
JSON need almost none of that: their values are already JSON types. What a schema
can still ask of them is compiled once per stream here, with the SDK's own predicates
deciding what the SDK would do (type conformance level RECURSIVE, the default; any
other level, or a schema the SDK itself could not conform, takes the SDK's path):

- drop properties the schema does not declare (the SDK does, and warns once), at
  every level, which only needs a set comparison per object;
- turn non-boolean values of boolean-only properties into booleans (the SDK's rule:
  numbers stay as they are, an ``anyOf`` of boolean and null is not boolean-only).

Everything else passes through untouched, in place. A record holding anything a JSON
parse does not give (a ``datetime`` a stream made, ``Decimal('NaN')``) is conformed and
serialised by the SDK's own functions instead, so that it is written exactly as the SDK
writes it (a naive ``datetime`` as UTC, ``+00:00``; NaN as null).

Lines are encoded with msgspec (``Decimal`` as a JSON number, so numbers keep every
digit) and gathered into writes of 64 KiB: with ``PYTHONUNBUFFERED`` set (Meltano and many
containers set it) stdout has no buffer of its own, and a write per record is a system
call per record. Every other message (SCHEMA, STATE) first pushes out the records
gathered before it, so a target never sees a state before the records it covers. The
gathered bytes are written from an offset that survives an interrupted write, so no
byte goes out twice (see :mod:`taps_core.signals` for SIGTERM and SIGINT).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import sys
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import msgspec
from singer_sdk.helpers._typing import (
    _conform_record_data_types,
    _is_exclusive_boolean_type,
    is_object_type,
    is_uniform_list,
)
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.encoding import GenericSingerWriter
from singer_sdk.singerlib.json import serialize_json

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.messages import Message


def _enc_hook(value: t.Any) -> t.Any:
    """What msgspec cannot encode by itself (dates and times), as the SDK would write it."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    msg = f"cannot serialise {type(value).__name__}"
    raise TypeError(msg)


encoder = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")

#: Records gathered up to this many bytes before one write to stdout.
WRITE_SIZE = 64 * 1024


class StopSync(SystemExit):
    """Ends the sync from wherever it is, with ``code`` as the exit status.

    A ``SystemExit`` so that no ``except Exception`` on the way up (the SDK's, a tap's)
    mistakes it for a failure to log or retry; :mod:`taps_core.signals` writes the last
    STATE once it has unwound.
    """


#: Exit status when the reader of stdout is gone (128 + SIGPIPE, as a shell reports it).
EXIT_STDOUT_CLOSED = 141


class _Stdout:
    """Gathers RECORD lines into large writes; :meth:`flush` before any other message.

    ``_written`` counts the bytes of ``_pending`` already on stdout, so a write cut short
    (a partial write, a signal) resumes where it stopped and no byte goes out twice.
    While :attr:`busy` a stop request only sets :attr:`stop_code`; the stop is raised
    once the bytes in hand are out, so the output always ends on a whole line.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._written = 0
        #: Inside a write to stdout: a signal must not interrupt it (see taps_core.signals).
        self.busy = False
        #: Set by a signal that arrived while busy: the exit status to stop with.
        self.stop_code: int | None = None
        #: The reader hung up (``| head``, a target that died): nothing more can be written.
        self.closed = False
        #: A SCHEMA or STATE went out: a sync is under way (a stop then owes a last STATE).
        self.started = False

    def write(self, line: bytes) -> None:
        self._pending += line
        if len(self._pending) >= WRITE_SIZE:
            self._write_pending()

    def flush(self) -> None:
        """Push out every gathered line, then stdout's own buffer."""
        self._write_pending(flush=True)

    def _write_pending(self, *, flush: bool = False) -> None:
        if self.closed:
            self._pending.clear()
            return
        self.busy = True
        try:
            out = sys.stdout.buffer
            while self._written < len(self._pending):  # an unbuffered stdout may take part
                with memoryview(self._pending) as view, view[self._written :] as rest:
                    self._written += out.write(rest) or 0
            self._pending.clear()
            self._written = 0
            if flush:
                out.flush()
        except BrokenPipeError:
            self._close()
            raise StopSync(EXIT_STDOUT_CLOSED) from None
        finally:
            self.busy = False
        if self.stop_code is not None:
            raise StopSync(self.stop_code)

    def _close(self) -> None:
        """Forget what cannot be written; point fd 1 at /dev/null for the interpreter's
        own flush at exit, which would otherwise print a BrokenPipeError."""
        self.closed = True
        self._pending.clear()
        self._written = 0
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass  # not a real file (a test's buffer): nothing will flush it at exit

    def flush_at_exit(self) -> None:
        """What the process still holds, out before it ends; a reader gone is no error."""
        self.stop_code = None
        with contextlib.suppress(StopSync):
            self.flush()


stdout = _Stdout()
atexit.register(stdout.flush_at_exit)


class FastWriter(GenericSingerWriter[bytes, "Message"]):
    """Writes SCHEMA and STATE messages with msgspec, flushing each (they are few).

    RECORD lines bypass message objects altogether (:class:`RecordLine`) and wait in
    :data:`stdout`; the flush here is what pushes them out before each other message.
    """

    def serialize_message(self, message: Message) -> bytes:
        """msgspec, or for what it refuses (``Decimal('NaN')``) the SDK's serialiser.

        A RECORD that took the SDK's path (stream maps, flattening) carries its
        ``time_extracted`` as a datetime; it is written as :class:`RecordLine` writes
        it, so the format does not depend on the path a stream took.
        """
        data = message.to_dict()
        extracted = data.get("time_extracted")
        if isinstance(extracted, datetime):
            data["time_extracted"] = extracted_text(extracted.timestamp())
        try:
            return encoder.encode(data)
        except (TypeError, ValueError, msgspec.EncodeError):
            return serialize_json(data).encode()

    def format_message(self, message: Message) -> bytes:
        return self.serialize_message(message) + b"\n"

    def write_message(self, message: Message) -> None:
        stdout.started = True
        stdout.write(self.format_message(message))
        stdout.flush()


def extracted_text(epoch: float) -> str:
    """``time_extracted`` as every record path writes it: UTC, to the second, ``+00:00``."""
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).isoformat()


class RecordLine:
    """Builds one stream's RECORD lines: a fixed prefix, the record, the time."""

    def __init__(self, stream_alias: str, version: int | None = None) -> None:
        head = {"type": "RECORD", "stream": stream_alias}
        self._prefix = encoder.encode(head)[:-1] + b',"record":'
        self._version = b"" if version is None else b',"version":' + encoder.encode(version)
        self._second = -1
        self._time_suffix = b""

    def _time(self) -> bytes:
        """``time_extracted``, rebuilt once a second rather than once a record."""
        now = time.time()
        second = int(now)
        if second != self._second:
            stamp = extracted_text(second)
            self._second = second
            self._time_suffix = self._version + b',"time_extracted":"' + stamp.encode() + b'"}\n'
        return self._time_suffix

    def write(self, body: bytes) -> None:
        """One line around ``body``, the record as JSON (:meth:`Conformer.encode`)."""
        stdout.write(self._prefix + body + self._time())


#: The types a JSON parse gives (numbers as ``Decimal``): all the compiled conformer meets.
_SCALARS = frozenset({str, int, bool, type(None), Decimal})


def is_plain(value: dict | list) -> bool:
    """Whether ``value`` holds, at any depth, only what a JSON parse gives.

    Anything else (a ``datetime`` a stream made, a float, bytes) is the SDK's to conform
    and write: the compiled conformer leaves values alone, and msgspec writes a naive
    ``datetime`` with no zone where the SDK writes ``+00:00``. One C-level pass a level;
    Python looks at single values only where a level holds containers.
    """
    values = value.values() if type(value) is dict else value
    if _SCALARS.issuperset(map(type, values)):
        return True
    for item in values:
        kind = type(item)
        if kind is dict or kind is list:
            if not is_plain(item):
                return False
        elif kind not in _SCALARS:
            return False
    return True


class Pruner:
    """Removes the properties the catalog deselects, as the SDK does, before conforming.

    The SDK's ``pop_deselected_record_properties`` walks every key of every record and
    nested dict through the selection mask; here the deselected paths are found once,
    from the mask, and each record costs one ``pop`` a path. Like the SDK, a path is
    followed through dict values only (not into lists), and a key the mask does not
    name inherits its parent's selection, so undeclared keys are left to the conformer.
    """

    def __init__(self, mask: t.Mapping[tuple[str, ...], bool]) -> None:
        deselected = sorted(
            crumb
            for crumb, selected in mask.items()
            if not selected
            and len(crumb) >= 2
            and len(crumb) % 2 == 0
            and all(part == "properties" for part in crumb[::2])
        )
        paths: list[tuple[str, ...]] = []
        for crumb in deselected:  # sorted: a parent comes before its children
            path = crumb[1::2]
            if not any(path[: len(p)] == p for p in paths):
                paths.append(path)
        #: Property paths to remove (``("payment", "card")``); none under another.
        self.paths: tuple[tuple[str, ...], ...] = tuple(paths)

    def __bool__(self) -> bool:
        return bool(self.paths)

    def __call__(self, record: dict) -> dict:
        for path in self.paths:
            obj: t.Any = record
            for name in path[:-1]:
                obj = obj.get(name)
                if type(obj) is not dict:
                    break
            else:
                obj.pop(path[-1], None)
        return record


class UnsupportedSchemaError(Exception):
    """A schema the compiled conformer cannot treat as the SDK does: the SDK's path then."""


@dataclass
class _ListPlan:
    """A uniform list (``items`` one schema): the SDK conforms each item."""

    objects: _ObjectPlan | None = None  # items are objects: each dict item conformed
    booleans: bool = False  # items boolean-only: each non-boolean item made one


@dataclass
class _ObjectPlan:
    """What conforming one object of a schema takes; empty parts cost nothing."""

    allowed: frozenset[str]
    open: bool  # additionalProperties: keep undeclared keys
    path: str  # "payment.refund." - for the warning about undeclared properties
    names: tuple[str, ...] = ()  # the declared properties in schema order
    lists: dict[str, _ListPlan] = field(default_factory=dict)
    objects: dict[str, _ObjectPlan] = field(default_factory=dict)
    booleans: tuple[str, ...] = ()


def _plan(schema: dict, path: str = "") -> _ObjectPlan:
    """The SDK's decisions (``_conform_record_data_types``), made once per property.

    Its own predicates decide, so that the two paths cannot read a schema differently:
    a list value is conformed where ``is_uniform_list``, a dict value where
    ``is_object_type`` and the schema lists ``properties`` (both may hold for one
    property), and only ``_is_exclusive_boolean_type`` makes booleans (an ``anyOf`` of
    boolean and null does not). Where the SDK would fail on a value, so that no answer
    of ours could be the SDK's, the schema is unsupported.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        raise UnsupportedSchemaError(f"{path or 'the record'}: no properties")
    plan = _ObjectPlan(
        frozenset(properties), bool(schema.get("additionalProperties")), path, tuple(properties)
    )
    booleans = []
    for name, sub in properties.items():
        where = f"{path}{name}"
        try:
            uniform = is_uniform_list(sub)
            is_object = is_object_type(sub)
            is_boolean = _is_exclusive_boolean_type(sub)
            items_object = uniform and is_object_type(sub["items"])
            items_boolean = uniform and _is_exclusive_boolean_type(sub["items"])
        except Exception as error:  # the SDK raises on such a schema as soon as a list comes
            msg = f"{where}: {type(error).__name__}: {error}"
            raise UnsupportedSchemaError(msg) from None
        if uniform:
            if items_object:
                if "properties" not in sub["items"]:
                    raise UnsupportedSchemaError(f"{where}: object items without properties")
                plan.lists[name] = _ListPlan(objects=_plan(sub["items"], f"{where}."))
            elif items_boolean:
                plan.lists[name] = _ListPlan(booleans=True)
        if is_object and "properties" in sub:
            plan.objects[name] = _plan(sub, f"{where}.")
        if is_boolean:
            booleans.append(name)
    plan.booleans = tuple(booleans)
    return plan


#: Indentation of generated code past which an object is conformed by a function of its
#: own: Python refuses 100 levels of indentation and 20 nested loops in one function.
_MAX_DEPTH = 8


class Conformer:
    """Conforms records to one stream's schema as the SDK's rules say (type conformance
    level RECURSIVE, the default), in place.

    The schema is compiled into straight-line Python, so the work per record is a set
    comparison per nested object and nothing else: no recursion, no per-value type
    dispatch. ``check_values`` first makes sure a record holds only JSON types (see
    :func:`is_plain`), for streams whose code adds values of its own; a record that does
    not is conformed by the SDK's own function.
    """

    def __init__(
        self, schema: dict, *, check_values: bool = True, keep_undeclared: bool = False
    ) -> None:
        #: Undeclared properties seen, for one warning (as the SDK gives).
        self.unmapped: set[str] = set()
        #: Set when a record held an undeclared property that ``keep_undeclared`` kept:
        #: the caller decides what drift means (taps_core.drift) and clears it.
        self.found = False
        self.check_values = check_values
        self.keep_undeclared = keep_undeclared
        self._schema = schema
        self._plans: list[_ObjectPlan] = []
        self._functions: list[t.Callable[[dict], dict]] = []
        self._conform = self._compile(_plan(schema))

    def __call__(self, record: dict) -> dict:
        """The compiled conformance, for records of JSON values (:func:`is_plain`)."""
        return self._conform(record)

    def encode(self, record: dict) -> bytes:
        """``record`` conformed and serialised, as the SDK would, as JSON bytes.

        Records of JSON values take the compiled conformance and msgspec; any other
        (a value :func:`is_plain` refuses, a ``Decimal('NaN')`` msgspec refuses) takes
        the SDK's conformance and the SDK's serialiser, so it is written as the SDK
        writes it, down to values in places the SDK does not conform.
        """
        if not self.check_values or is_plain(record):
            conformed = self._conform(record)
            try:
                return encoder.encode(conformed)
            except (TypeError, ValueError, msgspec.EncodeError):
                record = conformed  # the SDK's conformance of it is the same, NaN aside
        return serialize_json(self.sdk(record)).encode()

    def sdk(self, record: dict) -> dict:
        """The SDK's own conformance of ``record``."""
        out, unmapped = _conform_record_data_types(
            record, self._schema, TypeConformanceLevel.RECURSIVE, None
        )
        if unmapped and self.keep_undeclared:
            self.found = True  # the caller amends the schema and conforms the record again
        else:
            self.unmapped.update(unmapped)
        return out

    def _compile(self, plan: _ObjectPlan) -> t.Callable[[dict], dict]:
        lines = ["def conform(o0):"]
        self._emit(plan, "o0", "o0", lines, depth=1)
        lines.append("    return o0")
        namespace = {
            "ALLOWED": [p.allowed for p in self._plans],
            "FUNCTIONS": self._functions,
            "Decimal": Decimal,
            "drop": self._drop_undeclared,
        }
        source = "\n".join(lines)
        exec(compile(source, f"<conformer {plan.path or 'record'}>", "exec"), namespace)
        return namespace["conform"]

    def _drop_undeclared(self, obj: dict, index: int) -> dict:
        if self.keep_undeclared:
            self.found = True
            return obj
        plan = self._plans[index]
        self.unmapped.update(plan.path + k for k in obj if k not in plan.allowed)
        return {k: v for k, v in obj.items() if k in plan.allowed}

    def _emit_block(
        self, plan: _ObjectPlan, var: str, slot: str, lines: list[str], depth: int
    ) -> None:
        """:meth:`_emit` as the body of an ``if``: an open object may need no lines."""
        before = len(lines)
        if depth > _MAX_DEPTH:  # deep: a function of its own, called here
            self._functions.append(self._compile(plan))  # after any deeper ones it made
            index = len(self._functions) - 1
            lines.append(f"{'    ' * depth}{slot} = FUNCTIONS[{index}]({var})")
        else:
            self._emit(plan, var, slot, lines, depth)
        if len(lines) == before:
            lines.append("    " * depth + "pass")

    def _emit(self, plan: _ObjectPlan, var: str, slot: str, lines: list[str], depth: int) -> None:
        """Lines conforming the dict in ``var``, which lives at ``slot`` in its parent.

        Only when keys are dropped is there a new dict to store back, so the store
        sits in that branch and costs nothing on a record the schema fits. Per property
        the branches follow the SDK's order: a list, then a dict, then the value itself.
        """
        pad = "    " * depth
        index = len(self._plans)
        self._plans.append(plan)
        if not plan.open:
            target = var if slot == var else f"{var} = {slot}"
            lines.append(f"{pad}if not ALLOWED[{index}].issuperset({var}):")
            lines.append(f"{pad}    {target} = drop({var}, {index})")
        child = f"o{depth}"
        for name in plan.names:
            lists, obj = plan.lists.get(name), plan.objects.get(name)
            boolean = name in plan.booleans
            if lists is None and obj is None and not boolean:
                continue
            lines.append(f"{pad}{child} = {var}.get({name!r})")
            keyword = "if"
            if lists is not None:
                self._emit_list(lists, f"{var}[{name!r}]", child, lines, depth)
                keyword = "elif"
            if obj is not None:
                lines.append(f"{pad}{keyword} type({child}) is dict:")
                self._emit_block(obj, child, f"{var}[{name!r}]", lines, depth + 1)
                keyword = "elif"
            if boolean:  # the SDK keeps numbers with a fraction; None stays None
                lines.append(
                    f"{pad}{keyword} {child} is not None and type({child}) is not bool "
                    f"and type({child}) is not Decimal:"
                )
                lines.append(f"{pad}    {var}[{name!r}] = {child} != 0")

    def _emit_list(
        self, plan: _ListPlan, slot: str, var: str, lines: list[str], depth: int
    ) -> None:
        pad = "    " * depth
        lines.append(f"{pad}if type({var}) is list:")
        if plan.booleans:
            lines.append(
                f"{pad}    {slot} = [v if v is None or type(v) is bool or type(v) is Decimal "
                f"else v != 0 for v in {var}]"
            )
        elif plan.objects is not None:
            items, position, child = f"l{depth}", f"i{depth}", var  # the list is in items
            lines.append(f"{pad}    {items} = {var}")
            lines.append(f"{pad}    for {position}, {child} in enumerate({items}):")
            lines.append(f"{pad}        if type({child}) is dict:")
            self._emit_block(plan.objects, child, f"{items}[{position}]", lines, depth + 3)
        else:
            lines.append(f"{pad}    pass")
