"""Schema drift: what a tap does with a property the API sends and its schema lacks.

A singer-sdk tap drops every such property, with one log line nobody reads, and the
data is gone before anyone notices. The ``schema_drift`` setting (every tap) decides:

- ``evolve`` (the default): the property is declared with a type inferred from its
  values (always nullable; nested objects get properties of their own) in an amended
  SCHEMA message, written before the first record that carries it, and the record
  keeps it. A later value that does not fit widens the type (another SCHEMA); no value
  is dropped. A property whose values so far are all null carries nothing and is left
  out until its first value arrives (a column of unknown type would only be in the way).
- ``drop``: the property is dropped, with one warning a property.
- ``fail``: the sync stops before writing that record, with one line naming the stream
  and the properties, exit status 1, and a last STATE from which the next sync resumes
  (:func:`taps_core.signals.stop_with_state`).

Each warning names the stream and the property, never a value. The catalog the user
discovered is left as it is, and ``--discover`` declares what the schema files do. A
property the catalog deselects never comes back: records are pruned before drift is
looked for.

Cost: drift is found by the compiled conformer's set comparison a nested object, which
the fast record path makes anyway (:class:`taps_core.records.Conformer` with
``keep_undeclared``), so a stream without drift pays one attribute test a record. A
stream that has drifted checks the values of its inferred properties a record, so that a
value that no longer fits is widened before it is written.
"""

from __future__ import annotations

import copy
import json
import typing as t
from decimal import Decimal

from taps_core.errors import one_line

if t.TYPE_CHECKING:
    import logging

EVOLVE, DROP, FAIL = "evolve", "drop", "fail"
POLICIES = (EVOLVE, DROP, FAIL)
DEFAULT_POLICY = EVOLVE

#: JSON Schema type names in the order a declared union lists them.
_ORDER = ("boolean", "integer", "number", "string", "object", "array", "null")
#: Python types a JSON parse gives (numbers as Decimal), by the JSON Schema type they fit.
_FITS: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "string": (str,),
    "object": (dict,),
    "array": (list, tuple),
    "null": (type(None),),
}


def json_type(value: t.Any) -> str:
    """The JSON Schema type of a parsed value; anything else (a ``datetime`` a stream
    made) is written as text, so it is a string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, Decimal)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return "string"


def _types(schema: dict) -> list[str]:
    kinds = schema.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _ordered(kinds: t.Iterable[str]) -> list[str]:
    found = set(kinds) | {"null"}
    if "number" in found:
        found.discard("integer")  # every integer is a number
    return [k for k in _ORDER if k in found]


#: Levels of objects and lists below a record that drift declares; a value deeper down is
#: declared by its kind alone (an object with any properties, a list of any items) and
#: kept as it comes. A schema as deep as any value would exhaust Python's recursion in
#: the copies and walks a schema takes (the SDK's among them): a traceback, where
#: ``drop`` would have lost only the field.
MAX_DEPTH = 32


def _open(schema: dict, kind: str, part: str) -> bool:
    """Whether ``schema`` takes ``kind`` values of any content (no ``part`` declared)."""
    return kind in _types(schema) and part not in schema


def infer(value: t.Any, depth: int = 0) -> dict:
    """A nullable schema for ``value``: objects with properties, lists with items, down
    to :data:`MAX_DEPTH` levels below the record (``depth`` is the value's own level)."""
    kind = json_type(value)
    schema: dict[str, t.Any] = {"type": _ordered([kind])}
    if depth >= MAX_DEPTH:
        return schema
    if kind == "object":
        schema["properties"] = {k: infer(v, depth + 1) for k, v in value.items() if v is not None}
    elif kind == "array":
        items: dict | None = None
        for item in value:
            if item is not None:
                more = infer(item, depth + 1)
                items = more if items is None else widen(items, more)
        schema["items"] = items if items is not None else {"type": ["string", "null"]}
    return schema


def widen(schema: dict, other: dict) -> dict:
    """The least schema of the kinds :func:`infer` makes that both schemas' values fit."""
    out: dict[str, t.Any] = {"type": _ordered(_types(schema) + _types(other))}
    both = (schema, other)
    if "object" in out["type"] and not any(_open(s, "object", "properties") for s in both):
        properties = dict(schema.get("properties", {}))
        for name, sub in other.get("properties", {}).items():
            properties[name] = widen(properties[name], sub) if name in properties else sub
        out["properties"] = properties
    if "array" in out["type"] and not any(_open(s, "array", "items") for s in both):
        mine, theirs = schema.get("items"), other.get("items")
        if mine is not None and theirs is not None and "array" in _types(schema):
            out["items"] = widen(mine, theirs) if "array" in _types(other) else mine
        else:
            out["items"] = mine if mine is not None and "array" in _types(schema) else theirs
    return out


def fits(value: t.Any, schema: dict) -> bool:
    """Whether ``value`` is valid under an inferred ``schema`` (new nested keys do not)."""
    kinds = _types(schema)
    if not any(isinstance(value, _FITS[k]) for k in kinds if k in _FITS):
        return False
    if isinstance(value, bool) and "boolean" not in kinds:
        return False  # a bool is an int to Python, never to JSON Schema
    if isinstance(value, dict):
        if "properties" not in schema:
            return True  # an object of any content (MAX_DEPTH)
        properties = schema["properties"]
        return all(
            v is None or (k in properties and fits(v, properties[k])) for k, v in value.items()
        )
    if isinstance(value, (list, tuple)):
        if "items" not in schema:
            return True  # a list of any items (MAX_DEPTH)
        items = schema["items"]
        return all(v is None or fits(v, items) for v in value)
    return True


def _kind_text(schema: dict) -> str:
    return " or ".join(k for k in _types(schema) if k != "null") or "null"


class _Items:
    """The step into a list's items in a :data:`Path`. Not a string, so that no property
    name (an API may send ``"[]"``) is taken for it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ITEMS"


ITEMS = _Items()
Path = tuple[str | _Items, ...]  # property names; ITEMS steps into a list's items


def _shown(name: str) -> str:
    """A property name as a log line shows it: an API chooses its names, and one with a
    line break or a control character would otherwise forge or garble log lines."""
    return name if name.isprintable() else json.dumps(name, ensure_ascii=False)


def _name(path: Path) -> str:
    """The dotted name of the property at ``path`` (list steps left out), for a log line."""
    return _shown(".".join(p for p in path if isinstance(p, str)))


class SchemaDrift:
    """One stream's drift: its schema as amended so far, and the properties it inferred.

    ``schema`` starts as the stream's effective schema (the catalog's) and is copied
    before the first change, so the catalog the tap was given stays as it is.
    """

    def __init__(self, stream: str, schema: dict, policy: str, logger: logging.Logger) -> None:
        self.stream = stream
        self.policy = policy
        self.schema = schema
        self._logger = logger
        self._copied = False
        #: Inferred properties, top-most ones only (their nested ones are checked in them).
        self.inferred: dict[Path, dict] = {}
        self._dropped: set[str] = set()

    @property
    def keep_undeclared(self) -> bool:
        """Whether the conformer must leave undeclared keys for this class to see."""
        return self.policy != DROP

    def dropped(self, names: t.Iterable[str]) -> None:
        """``drop``: one warning for each property not dropped before."""
        for name in sorted(set(names) - self._dropped):
            self._dropped.add(name)
            self._logger.warning(
                "Stream %s: property %s is not in the schema; dropped (schema_drift is drop).",
                self.stream,
                _shown(name),
            )

    def new_properties(self, record: dict) -> list[str]:
        """The dotted names of the properties in ``record`` the schema lacks, null ones
        too: under ``fail`` a new field stops the sync whatever its value."""
        found: list[str] = []
        self._walk(record, self.schema, (), found, amend=False)
        return found

    def fail_message(self, tap: str, names: list[str]) -> str:
        listed = ", ".join(names)
        return one_line(
            f"{tap} stream '{self.stream}': the API sent properties the stream's schema "
            f"lacks: {listed}. The sync stopped before writing that record (schema_drift "
            "is fail); the last STATE resumes from there. Set schema_drift to evolve to "
            "load them, or to drop to leave them out.",
            limit=1000,
        )

    def needs_change(self, record: dict) -> bool:
        """Whether a value of an inferred property no longer fits its type."""
        for path, schema in self.inferred.items():
            for value in _values_at(record, path):
                if value is not None and not fits(value, schema):
                    return True
        return False

    def evolve(self, record: dict) -> bool:
        """Declare ``record``'s new properties, widen what no longer fits, drop new nulls.

        Returns whether the schema changed (a SCHEMA message is then owed).
        """
        return self._walk(record, self.schema, (), [], amend=True)

    # -- the walk -------------------------------------------------------------------------

    def _own(self) -> None:
        if not self._copied:
            self.schema = copy.deepcopy(self.schema)
            self._copied = True

    def _walk(self, obj: dict, schema: dict, path: Path, found: list[str], *, amend: bool) -> bool:
        properties = schema.get("properties")
        if not isinstance(properties, dict) or schema.get("additionalProperties"):
            return False  # an open object keeps any key: nothing has drifted
        changed = False
        nulls = []
        for key, value in obj.items():
            where = (*path, key)
            sub = properties.get(key)
            if sub is None:
                if value is None:
                    nulls.append(key)
                    continue
                found.append(_name(where))
                if amend:
                    changed = self._declare(where, value) or changed
                continue
            if where in self.inferred:
                if value is not None and not fits(value, sub):
                    if amend:
                        changed = self._widen(where, value) or changed
                    else:
                        found.append(_name(where))
                    sub = self._at(where)
                elif not amend:
                    continue
            if type(value) is dict:
                changed = self._walk(value, sub, where, found, amend=amend) or changed
            elif type(value) is list and isinstance(sub.get("items"), dict):
                for item in value:
                    if type(item) is dict:
                        changed = (
                            self._walk(item, sub["items"], (*where, ITEMS), found, amend=amend)
                            or changed
                        )
        if amend and self.policy == EVOLVE:
            for key in nulls:
                del obj[key]  # nothing is lost: null is what a target writes for it anyway
        elif nulls:
            found.extend(_name((*path, k)) for k in nulls)
        return changed

    def _container(self, path: Path) -> dict:
        """The ``properties`` dict that holds the property at ``path``."""
        schema = self.schema
        for step in path[:-1]:
            schema = schema["items"] if step is ITEMS else schema["properties"][step]
        if path[-1] is ITEMS:
            raise KeyError(path)
        return schema["properties"]

    def _at(self, path: Path) -> dict:
        return self._container(path)[path[-1]]

    def _declare(self, path: Path, value: t.Any) -> bool:
        self._own()
        schema = infer(value, len(path) - 1)
        self._container(path)[path[-1]] = schema
        inside = any(path[: len(p)] == p for p in self.inferred)
        if not inside:
            self.inferred[path] = schema
        else:
            self._refresh_inferred()
        self._warn_new(path, schema)
        return True

    def _warn_new(self, path: Path, schema: dict) -> None:
        self._logger.warning(
            "Stream %s: new property %s (not in the schema) is kept and declared as %s "
            "(schema_drift is evolve).",
            self.stream,
            _name(path),
            _kind_text(schema),
        )

    def _widen(self, path: Path, value: t.Any) -> bool:
        self._own()
        container = self._container(path)
        before = container[path[-1]]
        after = widen(before, infer(value, len(path) - 1))
        if after == before:
            return False
        container[path[-1]] = after
        self._refresh_inferred()
        for where, schema in _added(before, after, path):  # new keys of an inferred object
            self._warn_new(where, schema)
        self._logger.info(
            "Stream %s: property %s now declared as %s (a value did not fit %s).",
            self.stream,
            _name(path),
            _kind_text(after),
            _kind_text(before),
        )
        return True

    def _refresh_inferred(self) -> None:
        self.inferred = {path: self._at(path) for path in self.inferred}


def _added(before: dict, after: dict, path: Path) -> t.Iterator[tuple[Path, dict]]:
    """The properties ``after`` declares below ``path`` and ``before`` did not (top-most)."""
    old = before.get("properties", {})
    for name, sub in after.get("properties", {}).items():
        if name not in old:
            yield (*path, name), sub
        else:
            yield from _added(old[name], sub, (*path, name))
    if isinstance(after.get("items"), dict):
        yield from _added(before.get("items") or {}, after["items"], (*path, ITEMS))


def _values_at(obj: t.Any, path: Path) -> t.Iterator[t.Any]:
    """Every value at ``path`` below ``obj`` (all items of a list at an ITEMS step)."""
    if not path:
        yield obj
        return
    step, rest = path[0], path[1:]
    if step is ITEMS:
        if type(obj) is list:
            for item in obj:
                yield from _values_at(item, rest)
    elif type(obj) is dict and step in obj:
        yield from _values_at(obj[step], rest)
