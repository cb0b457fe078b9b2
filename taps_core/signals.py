"""SIGTERM and SIGINT: stop within moments, leaving output a target can load and resume from.

Meltano and orchestrators cancel a sync with SIGTERM; a person presses Ctrl-C. The SDK's
own handler writes a STATE from inside the signal handler and exits 0. Run in the middle
of a write to a slow target, that second write lands inside the first (a ``BufferError``,
or half a line), and the exit flush then writes the interrupted bytes again; the exit
status says the cut sync succeeded. Here instead:

- outside a write to stdout, the handler raises :class:`~taps_core.records.StopSync`
  at once, so a sync waiting minutes for an API reply stops now;
- inside one, it only marks the stop: the write finishes (no byte twice, no half line)
  and the writer raises as it returns;
- once the stack has unwound, at exit, the records in hand go out, then one STATE of the
  tap's state as it stands. Its bookmarks cover only records written (a record is
  handed to stdout before the state moves past it), and progress markers are left
  unfinalised, so the next sync resumes from a point that loses nothing;
- the exit status is 128 + the signal (143 for SIGTERM, 130 for SIGINT).

A reader that stopped reading cannot be waited for: :data:`GRACE_SECONDS` after the
signal, or at a second signal, the process ends at once, without more output.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import typing as t

from singer_sdk.singerlib.messages import StateMessage

from taps_core.records import EXIT_STDOUT_CLOSED, StopSync, stdout

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk import Tap

#: How long a stop may wait for the reader of stdout to take what is in hand.
GRACE_SECONDS = 5.0

_stopping: dict[str, t.Any] = {}


def handle_termination(tap: Tap, signum: int, frame: FrameType | None) -> None:
    """The tap's handler for SIGTERM and SIGINT (installed by the SDK as the tap starts)."""
    code = 128 + signum
    if _stopping:
        os._exit(_stopping["code"])  # asked twice: the first stop is stuck writing
    _stopping.update(tap=tap, code=code, signal=signal.Signals(signum).name)
    signal.signal(signal.SIGALRM, _give_up)
    signal.setitimer(signal.ITIMER_REAL, GRACE_SECONDS)
    if stdout.busy:
        stdout.stop_code = code  # the writer raises once the bytes in hand are out
        return
    raise StopSync(code)


def stop_with_state(tap: Tap, message: str, code: int = 1) -> t.NoReturn:
    """End the sync now, at a safe point, as a signal does: the records in hand and a
    last STATE go out at exit, and the process exits with ``code``.

    For a stop the tap decides itself (``schema_drift`` is ``fail``), called between two
    records: ``message`` is logged as the stop's one ERROR line, and no stop warning
    follows it.
    """
    _stopping.update(tap=tap, code=code, signal=None)
    tap.logger.error(message)
    raise StopSync(code)


def _give_up(signum: int, frame: FrameType | None) -> None:
    """The reader has not taken the last lines in :data:`GRACE_SECONDS`: end now."""
    os.write(2, b"stdout's reader took nothing more after the stop signal: ending now\n")
    os._exit(_stopping["code"])


def _finish() -> None:
    """At exit: after a signal, the records in hand and then the tap's state, once."""
    if stdout.closed:
        logging.getLogger("taps_core").info(
            "stdout was closed by its reader; the sync stopped (exit status %d)",
            EXIT_STDOUT_CLOSED,
        )
        return
    if not _stopping or not stdout.started:
        return  # no sync had begun (discovery, settings): no state to tell
    tap = _stopping["tap"]
    stdout.stop_code = None
    try:
        stdout.flush()
        tap.write_message(StateMessage(value=tap.state))
    except StopSync:
        return  # the reader hung up meanwhile: nothing more can reach it
    if _stopping["signal"] is None:
        return  # the stop told its reason already (stop_with_state)
    tap.logger.warning(
        "Stopped by %s. The last STATE covers only records written: a sync started "
        "from it loses nothing (exit status %d)",
        _stopping["signal"],
        _stopping["code"],
    )


atexit.register(_finish)
