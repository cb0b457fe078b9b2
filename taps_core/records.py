"""The record path: from a parsed page to RECORD lines on stdout, with no wasted work.

The SDK's default path walks every value of every record to conform its type,
serialises with simplejson and flushes stdout once per message. Records parsed from
JSON need almost none of that: their values are already JSON types. What a schema
can still ask of them is compiled once per stream here:

- drop properties the schema does not declare (the SDK does, and warns once), at
  every level, which only needs a set comparison per object;
- turn non-boolean values of boolean-only properties into booleans (the SDK's rule).

Everything else passes through untouched, in place. Lines are encoded with msgspec
(``Decimal`` as a JSON number, so numbers keep every digit) and gathered into writes of
64 KiB: with ``PYTHONUNBUFFERED`` set (Meltano and many containers set it) stdout has no
buffer of its own, and a write per record is a system call per record. Every other
message (SCHEMA, STATE) first pushes out the records gathered before it, so a target
never sees a state before the records it covers.
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

import msgspec
from singer_sdk.singerlib.encoding import GenericSingerWriter

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

    ``written`` counts the bytes of ``pending`` already on stdout, so a write cut short
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
        return encoder.encode(message.to_dict())

    def format_message(self, message: Message) -> bytes:
        return self.serialize_message(message) + b"\n"

    def write_message(self, message: Message) -> None:
        stdout.started = True
        stdout.write(self.format_message(message))
        stdout.flush()


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
            stamp = datetime.fromtimestamp(second, tz=timezone.utc).isoformat()
            self._second = second
            self._time_suffix = self._version + b',"time_extracted":"' + stamp.encode() + b'"}\n'
        return self._time_suffix

    def write(self, record: dict) -> None:
        stdout.write(self._prefix + encoder.encode(record) + self._time())


@dataclass
class _ObjectPlan:
    """What conforming one object of a schema takes; empty parts cost nothing."""

    allowed: frozenset[str]
    open: bool  # additionalProperties: keep undeclared keys
    path: str  # "payment.refund." - for the warning about undeclared properties
    objects: dict[str, _ObjectPlan] = field(default_factory=dict)
    object_lists: dict[str, _ObjectPlan] = field(default_factory=dict)
    booleans: tuple[str, ...] = ()
    boolean_lists: tuple[str, ...] = ()


def _types(schema: dict) -> set[str]:
    kinds = schema.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    for option in schema.get("anyOf", []):
        kinds |= _types(option)
    return kinds


def _is_boolean_only(schema: dict) -> bool:
    return _types(schema) - {"null"} == {"boolean"}


def _plan(schema: dict, path: str = "") -> _ObjectPlan:
    properties = schema.get("properties", {})
    plan = _ObjectPlan(frozenset(properties), bool(schema.get("additionalProperties")), path)
    booleans, boolean_lists = [], []
    for name, sub in properties.items():
        kinds = _types(sub)
        if "object" in kinds and "properties" in sub:
            plan.objects[name] = _plan(sub, f"{path}{name}.")
        elif "array" in kinds and isinstance(sub.get("items"), dict):
            items = sub["items"]
            if "object" in _types(items) and "properties" in items:
                plan.object_lists[name] = _plan(items, f"{path}{name}.")
            elif _is_boolean_only(items):
                boolean_lists.append(name)
        elif _is_boolean_only(sub):
            booleans.append(name)
    plan.booleans, plan.boolean_lists = tuple(booleans), tuple(boolean_lists)
    return plan


class Conformer:
    """Conforms records to one stream's schema, in place, as the SDK's rules say.

    The schema is compiled into one straight-line Python function, so the work per
    record is a set comparison per nested object and nothing else: no recursion, no
    per-value type dispatch.
    """

    def __init__(self, schema: dict) -> None:
        #: Undeclared properties seen, for one warning (as the SDK gives).
        self.unmapped: set[str] = set()
        self._plans: list[_ObjectPlan] = []
        lines = ["def conform(o0):"]
        self._emit(_plan(schema), "o0", "o0", lines, depth=1)
        lines.append("    return o0")
        namespace = {
            "ALLOWED": [p.allowed for p in self._plans],
            "drop": self._drop_undeclared,
        }
        exec(
            compile("\n".join(lines), f"<conformer {len(self._plans)} objects>", "exec"), namespace
        )
        self._conform: t.Callable[[dict], dict] = namespace["conform"]

    def __call__(self, record: dict) -> dict:
        return self._conform(record)

    def _drop_undeclared(self, obj: dict, index: int) -> dict:
        plan = self._plans[index]
        self.unmapped.update(plan.path + k for k in obj if k not in plan.allowed)
        return {k: v for k, v in obj.items() if k in plan.allowed}

    def _emit_block(
        self, plan: _ObjectPlan, var: str, slot: str, lines: list[str], depth: int
    ) -> None:
        """:meth:`_emit` as the body of an ``if``: an open object may need no lines."""
        before = len(lines)
        self._emit(plan, var, slot, lines, depth)
        if len(lines) == before:
            lines.append("    " * depth + "pass")

    def _emit(self, plan: _ObjectPlan, var: str, slot: str, lines: list[str], depth: int) -> None:
        """Lines conforming the dict in ``var``, which lives at ``slot`` in its parent.

        Only when keys are dropped is there a new dict to store back, so the store
        sits in that branch and costs nothing on a record the schema fits.
        """
        pad = "    " * depth
        index = len(self._plans)
        self._plans.append(plan)
        if not plan.open:
            target = var if slot == var else f"{var} = {slot}"
            lines.append(f"{pad}if not ALLOWED[{index}].issuperset({var}):")
            lines.append(f"{pad}    {target} = drop({var}, {index})")
        child = f"o{depth}"
        for name, sub in plan.objects.items():
            lines.append(f"{pad}{child} = {var}.get({name!r})")
            lines.append(f"{pad}if type({child}) is dict:")
            self._emit_block(sub, child, f"{var}[{name!r}]", lines, depth + 1)
        for name, sub in plan.object_lists.items():
            items, position = f"l{depth}", f"i{depth}"
            lines.append(f"{pad}{items} = {var}.get({name!r})")
            lines.append(f"{pad}if type({items}) is list:")
            lines.append(f"{pad}    for {position}, {child} in enumerate({items}):")
            lines.append(f"{pad}        if type({child}) is dict:")
            self._emit_block(sub, child, f"{items}[{position}]", lines, depth + 3)
        for name in plan.booleans:
            lines.append(f"{pad}{child} = {var}.get({name!r})")
            lines.append(f"{pad}if {child} is not None and type({child}) is not bool:")
            lines.append(f"{pad}    {var}[{name!r}] = {child} != 0")
        for name in plan.boolean_lists:
            lines.append(f"{pad}{child} = {var}.get({name!r})")
            lines.append(f"{pad}if type({child}) is list:")
            lines.append(
                f"{pad}    {var}[{name!r}] = "
                f"[v if v is None or type(v) is bool else v != 0 for v in {child}]"
            )
