"""Checks of the settings a user is likely to get wrong, before any request is sent.

JSON Schema validation accepts all of these, and each costs a user a confusing sync:

- a misspelt setting (``startdate``) is ignored, so the sync quietly reads everything:
  warned once, with the closest known name;
- a ``base_url`` without a scheme, with a misspelt one (``htp://``), or ending in a
  path the streams add again (``.../v2`` when every path begins ``/v2/``) fails on the
  first request with a message about a URL the user never wrote: refused here, with
  what to write instead;
- a ``start_date`` in the future reads nothing and says nothing: warned.
"""

from __future__ import annotations

import difflib
import typing as t
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

if t.TYPE_CHECKING:
    from singer_sdk import Tap

SCHEMES = ("https", "http")


def problems(tap: Tap, *, warn: bool = True) -> list[str]:
    """Errors that stop the tap (worded for the settings message); warnings are logged."""
    properties = tap.config_jsonschema.get("properties", {})
    if warn:
        _warn_unknown(tap, properties)
        _warn_future_start(tap, properties)
    return _base_url_errors(tap) if "base_url" in properties else []


def _warn_unknown(tap: Tap, properties: dict) -> None:
    for name in sorted(set(tap.config) - set(properties)):
        close = difflib.get_close_matches(name, list(properties), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        tap.logger.warning(
            "Setting '%s' is not a setting of %s and is ignored%s (`%s --about` lists them.)",
            name,
            tap.name,
            hint,
            tap.name,
        )


def _warn_future_start(tap: Tap, properties: dict) -> None:
    value = tap.config.get("start_date")
    if "start_date" not in properties or not isinstance(value, str):
        return
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return  # the settings check names it
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment > datetime.now(timezone.utc):
        tap.logger.warning(
            "start_date %s is in the future: the streams that use it will read nothing.",
            value,
        )


def _stream_paths(tap: Tap) -> list[str]:
    """The declared paths of the tap's streams, up to their first placeholder."""
    paths = []
    for stream_type in getattr(tap, "stream_types", []):
        path = getattr(stream_type, "path", None)
        if isinstance(path, str) and path.startswith("/"):
            paths.append(path.split("{", 1)[0])
    return paths


def _base_url_errors(tap: Tap) -> list[str]:
    value = tap.config.get("base_url")
    if not isinstance(value, str):
        return []
    parts = urlsplit(value.strip())
    if not parts.scheme or not parts.netloc:
        # "api.example.com/x" has no scheme; "localhost:8765/x" reads as scheme "localhost"
        guess = value.strip().lstrip("/")
        return [
            f"base_url {value!r} has no scheme: write https://{guess} "
            "(or http:// for a local server)"
        ]
    if parts.scheme.lower() not in SCHEMES:
        fixed = urlunsplit(("https", parts.netloc, parts.path, parts.query, parts.fragment))
        return [f"base_url {value!r} has scheme '{parts.scheme}': write {fixed} (or http://)"]
    base_path = parts.path.rstrip("/")
    for path in _stream_paths(tap):
        segments = [s for s in path.split("/") if s]
        for n in range(len(segments), 0, -1):
            prefix = "/" + "/".join(segments[:n])
            if base_path == prefix or base_path.endswith(prefix):
                fixed = urlunsplit((parts.scheme, parts.netloc, base_path[: -len(prefix)], "", ""))
                return [
                    f"base_url {value!r} ends in {prefix}, which the streams add to it "
                    f"themselves (they request {path}...): write {fixed}"
                ]
    return []
