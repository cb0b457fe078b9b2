"""The files a user hands the tap (config, catalog, state), read as a user would want.

The SDK reads them with ``json.loads`` and trusts their shape: a stray comma gives a
bare ``JSONDecodeError`` traceback, ``{"streams": "x"}`` a ``TypeError`` deep in the
catalog code, and a state file in Meltano's wrapper (``{"singer_state": {...}}``, what
``meltano state get`` prints) is read as a state with no bookmarks, so the sync starts
from scratch without a word. Here each file is parsed once up front and either
normalised or refused with one line naming the file, the line and the column.

Bookmarks are checked against the tap once its streams are known
(:func:`checked_state`): one for a stream the tap does not have, or kept under another
replication key, is dropped with one warning (carrying it on would write it into
every later STATE message); one whose value cannot be read fails, naming the state
file and the stream, before any request is sent.
"""

from __future__ import annotations

import io
import json
import logging
import typing as t
from datetime import datetime
from pathlib import Path

from taps_core.errors import ConfigError

if t.TYPE_CHECKING:
    from singer_sdk import Tap

#: Meltano's state backend wraps the tap's state under this key.
MELTANO_WRAPPER = "singer_state"

#: Where the state being loaded came from, for the messages about its bookmarks.
_state_source: str | None = None


def read_input(tap_name: str, kind: str, name: str, text: str) -> t.Any:
    """Parse one input file, or fail with where it stops being JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        msg = (
            f"{tap_name}: {kind} file {name} is not valid JSON (line {error.lineno}, "
            f"column {error.colno}: {error.msg})."
        )
        raise ConfigError(msg) from None


_JSON_KINDS = {
    "list": "list",
    "str": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
}


def _not_an_object(tap_name: str, kind: str, name: str, value: t.Any) -> ConfigError:
    found = _JSON_KINDS.get(type(value).__name__, "value")
    return ConfigError(f"{tap_name}: {kind} file {name} holds a JSON {found}, not an object.")


def check_config_files(tap_name: str, paths: t.Iterable[str]) -> None:
    """Each ``--config`` file exists and holds one JSON object."""
    for path in paths:
        if path == "ENV":
            continue
        file = Path(path)
        if not file.is_file():
            msg = f"{tap_name}: config file {path} does not exist."
            raise ConfigError(msg)
        value = read_input(tap_name, "config", path, file.read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise _not_an_object(tap_name, "config", path, value)


def checked_catalog(tap_name: str, file: t.IO[str] | None) -> t.IO[str] | None:
    """The ``--catalog`` file, refused unless it has a list of stream entries."""
    if file is None:
        return None
    name = getattr(file, "name", "(stdin)")
    text = file.read()
    value = read_input(tap_name, "catalog", name, text)
    streams = value.get("streams") if isinstance(value, dict) else None
    if not isinstance(streams, list) or not all(isinstance(s, dict) for s in streams):
        msg = (
            f"{tap_name}: catalog file {name} has no list of streams: expected "
            '{"streams": [{"tap_stream_id": ..., "schema": ..., "metadata": ...}, ...]}, '
            f"as `{tap_name} --discover` writes."
        )
        raise ConfigError(msg)
    missing = [i for i, s in enumerate(streams) if not isinstance(s.get("tap_stream_id"), str)]
    if missing:
        msg = (
            f"{tap_name}: catalog file {name}: stream entry {missing[0] + 1} has no tap_stream_id."
        )
        raise ConfigError(msg)
    return io.StringIO(text)  # as written: the SDK reads its numbers as decimals


def checked_state_file(tap_name: str, file: t.IO[str] | None) -> t.IO[str] | None:
    """The ``--state`` file as a Singer state, unwrapped from Meltano's wrapper."""
    global _state_source
    if file is None:
        return None
    name = getattr(file, "name", "(stdin)")
    _state_source = f"state file {name}"
    text = file.read()
    if not text.strip():
        return io.StringIO("{}")  # an empty file: no state yet, as on a first sync
    value = read_input(tap_name, "state", name, text)
    if isinstance(value, dict) and set(value) == {MELTANO_WRAPPER}:
        value = value[MELTANO_WRAPPER]
        text = json.dumps(value)
        logging.getLogger(tap_name).info(
            "State file %s is in Meltano's wrapper (%s): reading the state inside it.",
            name,
            MELTANO_WRAPPER,
        )
    if not isinstance(value, dict):
        raise _not_an_object(tap_name, "state", name, value)
    bookmarks = value.get("bookmarks", {})
    if not isinstance(bookmarks, dict) or not all(isinstance(b, dict) for b in bookmarks.values()):
        msg = (
            f"{tap_name}: state file {name} has no object of bookmarks: expected "
            '{"bookmarks": {"<stream>": {"replication_key": ..., '
            '"replication_key_value": ...}}}.'
        )
        raise ConfigError(msg)
    return io.StringIO(text)


def checked_state(tap: Tap, state: dict) -> dict:
    """The bookmarks the tap can use; the rest warned about once each, and dropped."""
    if set(state) == {MELTANO_WRAPPER} and isinstance(state[MELTANO_WRAPPER], dict):
        state = state[MELTANO_WRAPPER]  # a state handed over as a dict, not a file
    bookmarks = state.get("bookmarks")
    if not isinstance(bookmarks, dict) or not bookmarks:
        return state
    source = _state_source or "the state"
    kept: dict[str, t.Any] = {}
    for stream_name, bookmark in bookmarks.items():
        stream = tap.streams.get(stream_name)
        if stream is None:
            known = ", ".join(sorted(tap.streams))
            tap.logger.warning(
                "Bookmark for '%s' in %s ignored: %s has no such stream (it has %s).",
                stream_name,
                source,
                tap.name,
                known,
            )
            continue
        if not isinstance(bookmark, dict):
            continue
        their_key = bookmark.get("replication_key")
        if their_key is not None and their_key != stream.replication_key:
            tap.logger.warning(
                "Bookmark for '%s' in %s ignored: it is kept on '%s', but the stream's "
                "replication key is %s; the stream is read from the start.",
                stream_name,
                source,
                their_key,
                f"'{stream.replication_key}'" if stream.replication_key else "none",
            )
            continue
        _check_bookmark_values(tap, stream, bookmark, source)
        kept[stream_name] = bookmark
    return {**state, "bookmarks": kept}


def _check_bookmark_values(tap: Tap, stream: t.Any, bookmark: dict, source: str) -> None:
    """A timestamp bookmark that does not parse fails now, not mid-sync as a traceback."""
    if not stream.replication_key or not stream.is_timestamp_replication_key:
        return
    entries = [bookmark, *[p for p in bookmark.get("partitions", []) if isinstance(p, dict)]]
    for entry in entries:
        value = entry.get("replication_key_value")
        if value is None:
            continue
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            msg = (
                f"{tap.name}: bookmark for stream '{stream.name}' in {source} is not a "
                f"date-time: replication_key_value {str(value)[:60]!r} (expected e.g. "
                "2024-01-31T00:00:00Z). Fix or delete it to read the stream from the start."
            )
            raise ConfigError(msg) from None
