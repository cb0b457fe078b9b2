"""Deterministic fake records driven by the JSON Schemas in ``fields/<api>.json``.

The field files list every field the real APIs return, so generating from them (rather than
from hand-written record templates) guarantees the sandbox serves every field a tap must
declare. Each stream's schema is compiled once into a tree of small closures; a record is
produced by re-seeding one ``random.Random`` from (seed, api, stream, index) and calling the
tree, so record ``i`` is the same bytes whatever else was generated before it. Records are
serialised once with orjson and kept as bytes: serving a page is then a slice and a join.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FIELDS_DIR = Path(__file__).resolve().parent / "fields"

#: Records are spread over two years ending at a fixed instant: a fixed anchor (not "now")
#: keeps the data byte-identical from one day to the next.
EPOCH_START = 1688169600  # 2023-07-01T00:00:00Z
EPOCH_END = 1751241600  # 2025-06-30T00:00:00Z

#: Share of nullable values that come out null. Low enough that most records show the
#: nested shapes, high enough that every page carries some nulls for the taps to cope with.
NULL_RATE = 0.12

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_BITS = 50
_ID_MASK = (1 << _ID_BITS) - 1
_GOLDEN = 0x9E3779B97F4A7C15
SEED_BLOCK = 64
#: Size of the pools that lists of sub-objects are drawn from (see ``_Compiler``).
POOL_SIZE = 256
#: Two id characters per 10 bits: ids are made millions of times, a lookup beats a loop.
_ID_PAIRS = tuple(a + b for b in _ID_ALPHABET for a in _ID_ALPHABET)

FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kara", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Becker", "Chen", "Diaz", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero",
    "Rossi", "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Yilmaz", "Zhang",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
    "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Aperture", "Massive", "Dynamic",
)  # fmt: skip
COMPANY_SUFFIXES = ("Inc", "LLC", "GmbH", "Ltd", "Group", "Labs", "Co")
LOREM = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed",
    "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna",
    "aliqua", "enim", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco",
)  # fmt: skip
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK")
COUNTRIES = ("US", "DE", "GB", "FR", "CA", "AU", "JP", "NL", "ES", "IT", "SE", "BR")
CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown", "Salem", "Madison")
STATES = ("CA", "NY", "TX", "WA", "IL", "MA", "CO", "OR")
STREETS = ("Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Park Blvd")

#: Plausible values for string fields by name, used when no stream override names the field.
NAMED_ENUMS: dict[str, tuple[str, ...]] = {
    "status": ("ACTIVE", "PENDING", "INACTIVE"),
    "method": ("BALANCE", "BANK_ACCOUNT", "CREDIT_CARD", "INVOICE", "EMAIL", "LINK"),
    "type": ("standard", "premium", "basic"),
    "role": ("ADMIN", "MEMBER", "VIEWER", "FINANCE"),
    "interval": ("weekly", "monthly", "quarterly"),
    "day_of_week": ("monday", "tuesday", "wednesday", "thursday", "friday"),
    "net": ("net_15", "net_30", "net_45"),
    "invoice_type": ("automatic", "manual"),
    "network": ("VISA", "MASTERCARD", "AMEX", "DISCOVER"),
    "account_type": ("checking", "savings"),
    "category": ("gift_card", "charity", "prepaid_card", "merchant_card"),
    "subcategory": ("retail", "dining", "travel", "entertainment", "groceries"),
    "content_type": ("image/png", "image/jpeg", "image/svg+xml"),
    "action": ("FUND", "ORDER", "REFUND", "ADJUSTMENT", "FEE"),
    "fee_charged_to": ("ORGANIZATION", "RECIPIENT"),
    "label": ("Department", "Employee ID", "Region", "Cost center", "Reason"),
    "return_code": ("R01", "R02", "R03", "R08", "R10"),
    "channel": ("API", "UI", "EMBED", "BULK_UPLOAD"),
    "usage_permissions": ("FUND", "ORDER", "REFUND"),
    "bank_name": ("First Bank", "City Credit Union", "Harbor Bank", "Summit Savings"),
}

Gen = Callable[["Ctx"], Any]
Modifier = Callable[[dict[str, Any], random.Random], None]


class Ctx:
    """What one record's generators may read: its RNG, position in time and identity."""

    __slots__ = ("id", "index", "rng", "ts")

    def __init__(self, rng: random.Random, index: int, ts: int, record_id: str | None) -> None:
        self.rng = rng
        self.index = index
        self.ts = ts
        self.id = record_id


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` that does not depend on ``PYTHONHASHSEED``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def make_id(namespace_seed: int, index: int, prefix: str = "") -> str:
    """A unique, random-looking id for ``index``: an odd multiplier modulo 2**50 is a bijection."""
    x = (index * _GOLDEN + namespace_seed) & _ID_MASK
    t = _ID_PAIRS
    return (
        prefix
        + t[x & 1023]
        + t[(x >> 10) & 1023]
        + t[(x >> 20) & 1023]
        + t[(x >> 30) & 1023]
        + t[x >> 40]
    )


_DAYS: dict[int, str] = {}
_HOURS_MINUTES = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECONDS = tuple(f"{sec:02d}Z" for sec in range(60))


def iso_date(ts: float) -> str:
    """``YYYY-MM-DD`` of ``ts`` in UTC, for ``format: date`` fields (cached per day)."""
    day = int(ts) // 86400
    text = _DAYS.get(day)
    if text is None:
        text = _DAYS[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
    return text


def iso(ts: float) -> str:
    """ISO 8601 UTC with a ``Z`` suffix and whole seconds, as the APIs write timestamps.

    Built from cached day and minute strings: strftime per value was the slowest step of
    generating a million records.
    """
    ts = int(ts)
    rem = ts % 86400
    return iso_date(ts) + "T" + _HOURS_MINUTES[rem // 60] + _SECONDS[rem % 60]


def money(rng: random.Random, low: float, high: float) -> float:
    """An amount with two decimals, as a JSON number."""
    return round(low + rng.random() * (high - low), 2)


def pick(rng: random.Random, values: Sequence[Any]) -> Any:
    """``rng.choice`` without its argument checks (it is called millions of times)."""
    return values[int(rng.random() * len(values))]


def person_name(rng: random.Random) -> str:
    """A first and last name."""
    return PERSON_NAMES[int(rng.random() * len(PERSON_NAMES))]


def email_for(name: str, rng: random.Random) -> str:
    """An address at a reserved example domain, derived from ``name``."""
    local = name.lower().replace(" ", ".")
    return f"{local}{int(rng.random() * 1000)}@example.com"


def company_name(rng: random.Random) -> str:
    """A fictional company name."""
    return f"{pick(rng, COMPANY_WORDS)} {pick(rng, COMPANY_SUFFIXES)}"


def _make_sentence(rng: random.Random, low: int, high: int) -> str:
    n = low + int(rng.random() * (high - low + 1))
    words = " ".join(pick(rng, LOREM) for _ in range(n))
    return words[:1].upper() + words[1:] + "."


#: Free text comes from fixed pools (built from a constant seed): one pick per value keeps
#: generation fast, and text content carries no meaning for the taps.
_SENTENCES = {
    (low, high): tuple(
        _make_sentence(random.Random(f"{low}-{high}-{i}"), low, high) for i in range(512)
    )
    for low, high in ((3, 8), (2, 5))
}
PERSON_NAMES = tuple(f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES)


def sentence(rng: random.Random, low: int = 3, high: int = 8) -> str:
    """A capitalised lorem-ipsum sentence of ``low``..``high`` words."""
    pool = _SENTENCES.get((low, high))
    if pool is None:
        return _make_sentence(rng, low, high)
    return pool[int(rng.random() * len(pool))]


def compact_dumps(value: Any) -> bytes:
    """``orjson.dumps`` copied to an exact-size bytes object.

    orjson hands back its whole output buffer (several KB for a 1 KB record); keeping a
    million of those would cost gigabytes, the copy costs a fraction of a microsecond.
    """
    return memoryview(orjson.dumps(value)).tobytes()


def load_fields(api: str) -> dict[str, Any]:
    """The stream schemas of ``api`` from ``fields/<api>.json``."""
    return orjson.loads((FIELDS_DIR / f"{api}.json").read_bytes())


# --------------------------------------------------------------------------- schema compiler


def _types(schema: Mapping[str, Any]) -> tuple[str, bool]:
    """The main JSON type of ``schema`` and whether it admits null."""
    raw = schema.get("type", "string")
    types = [raw] if isinstance(raw, str) else list(raw)
    nullable = "null" in types
    main = next((t for t in types if t != "null"), "null")
    if main == "null" and "properties" in schema:
        main = "object"
    return main, nullable


class _Compiler:
    """Turns a schema into the source of one Python function, then ``exec``s it.

    A record is one nested dict/list literal whose leaves are inline expressions on
    ``rnd = c.rng.random``: no call per field and no per-object loop, which makes generation
    several times faster than a tree of closures (a million records must stay practical).
    Evaluation order is the literal's left-to-right order, so output is deterministic.
    """

    def __init__(self, overrides: Mapping[str, Gen], pool_seed: int | None) -> None:
        self.overrides = overrides
        self.pool_seed = pool_seed
        self.namespace: dict[str, Any] = {
            "iso": iso,
            "iso_date": iso_date,
            "make_id": make_id,
            "PERSON_NAMES": PERSON_NAMES,
            "N_PERSON_NAMES": len(PERSON_NAMES),
        }
        self._counter = 0

    def const(self, value: Any) -> str:
        """Bind ``value`` to a fresh name in the function's globals and return the name."""
        self._counter += 1
        name = f"_k{self._counter}"
        self.namespace[name] = value
        return name

    def pick(self, values: Sequence[Any]) -> str:
        return f"{self.const(tuple(values))}[int(rnd() * {len(values)})]"

    def string(self, name: str, fmt: str | None) -> str:
        """An expression for a string field, chosen from its format and name."""
        if fmt == "date-time":
            return "iso(c.ts + int(rnd() * 7776000))"
        if fmt == "date":
            return "iso_date(c.ts + int(rnd() * 7776000))"
        if name in NAMED_ENUMS:
            return self.pick(NAMED_ENUMS[name])
        if "email" in name:
            return (
                "PERSON_NAMES[int(rnd() * N_PERSON_NAMES)].lower().replace(' ', '.')"
                " + str(int(rnd() * 1000)) + '@example.com'"
            )
        if name == "id" or name.endswith("_id"):
            return f"make_id(c.rng.getrandbits({_ID_BITS}), 0, {name[:2].upper()!r})"
        if "phone" in name:
            return "'+1-555-' + str(int(rnd() * 9000000) + 1000000)"
        if name.endswith(("url", "src", "website", "_pdf")):
            return f"'https://example.com/{name}/' + format(c.rng.getrandbits(32), '08x')"
        if "currenc" in name:
            return self.pick(CURRENCIES)
        if "color" in name:
            return "'#' + format(c.rng.getrandbits(24), '06x')"
        if "countr" in name or name == "abbr":
            return self.pick(COUNTRIES)
        if name == "city":
            return self.pick(CITIES)
        if name == "state":
            return self.pick(STATES)
        if name == "zip":
            return "str(int(rnd() * 90000) + 10000)"
        if name.startswith("address"):
            return f"str(int(rnd() * 9000) + 100) + ' ' + {self.pick(STREETS)}"
        if "mask" in name or name == "last4":
            return "format(int(rnd() * 10000), '04d')"
        if name == "year":
            return "str(2026 + int(rnd() * 5))"
        if name == "month":
            return "format(1 + int(rnd() * 12), '02d')"
        if name in ("company_name", "accountholder_name"):
            return self.pick([f"{w} {s}" for w in COMPANY_WORDS for s in COMPANY_SUFFIXES])
        if name == "name" or name.endswith("_name"):
            return "PERSON_NAMES[int(rnd() * N_PERSON_NAMES)]"
        if name in ("headline", "subject_line", "title"):
            return self.pick(_SENTENCES[(2, 5)])
        return self.pick(_SENTENCES[(3, 8)])

    def expr(self, schema: Mapping[str, Any], path: str, name: str) -> str:
        """The expression generating one value of ``schema`` at ``path``."""
        if path in self.overrides:
            return f"{self.const(self.overrides[path])}(c)"
        main, nullable = _types(schema)
        if main == "object":
            parts = []
            for key, sub in schema.get("properties", {}).items():
                sub_path = f"{path}.{key}" if path else key
                parts.append(f"{key!r}: {self.expr(sub, sub_path, key)}")
            code = "{" + ", ".join(parts) + "}"
        elif main == "array":
            items = schema.get("items", {})
            item = self.expr(items, f"{path}[]", name)
            low = 0 if nullable else 1
            code = f"[{item} for _ in range({low} + int(rnd() * {4 - low}))]"
            if self.pool_seed is not None and self._poolable(items, f"{path}[]"):
                code = self._pool(code, path)
        elif main == "string":
            code = self.string(name, schema.get("format"))
        elif main == "number":
            high = 100.0 if "percent" in name else 500.0
            code = f"round(rnd() * {high}, 2)"
        elif main == "integer":
            if name.endswith("_cents"):
                code = "int(rnd() * 5000000)"
            elif name.endswith("_px"):
                code = "24 + int(rnd() * 105)"
            else:
                code = "int(rnd() * 1000)"
        elif main == "boolean":
            code = "(rnd() < 0.5)"
        else:
            return "None"
        if nullable:
            return f"(None if rnd() < {NULL_RATE} else {code})"
        return code

    def _poolable(self, schema: Mapping[str, Any], path: str) -> bool:
        """Lists of sub-objects with no timestamps and no overrides inside can be pooled."""
        if _types(schema)[0] != "object":
            return False
        text = orjson.dumps(schema)
        if b'"format"' in text:
            return False
        return not any(key.startswith(path) for key in self.overrides)

    def _pool(self, code: str, path: str) -> str:
        """Draw the value from POOL_SIZE variants made once, instead of building it per record.

        Lists of sub-objects (custom fields, images) are the costliest part of a record and
        carry no identity; sharing variants keeps a million records quick to make. The pool
        is seeded from the stream seed and path, so it is as deterministic as the records.
        """
        sub = _Compiler({}, None)
        sub.namespace.update(self.namespace)
        source = f"def _gen(c):\n    rnd = c.rng.random\n    return {code}\n"
        exec(compile(source, "<api_sandbox.datagen>", "exec"), sub.namespace)
        rng = random.Random(stable_seed(self.pool_seed, path))
        ctx = Ctx(rng, 0, EPOCH_START, None)
        pool = tuple(sub.namespace["_gen"](ctx) for _ in range(POOL_SIZE))
        return self.pick(pool)

    def build(self, schema: Mapping[str, Any]) -> Gen:
        source = f"def _gen(c):\n    rnd = c.rng.random\n    return {self.expr(schema, '', '')}\n"
        exec(compile(source, "<api_sandbox.datagen>", "exec"), self.namespace)
        return self.namespace["_gen"]


def compile_schema(
    schema: Mapping[str, Any],
    overrides: Mapping[str, Gen] | None = None,
    pool_seed: int | None = None,
) -> Gen:
    """Compile ``schema`` into a generator of one value per call (given a ``Ctx``).

    ``overrides`` maps a dotted path (``payment.total``; array items add ``[]``, as in
    ``rewards[].id``; ``""`` is the whole value) to a generator that replaces the
    schema-driven one, null decision included. Every property of every object is generated,
    so records always carry the full field set the real API returns. With ``pool_seed``,
    lists of sub-objects are drawn from seeded pools (see ``_Compiler._pool``).
    """
    return _Compiler(overrides or {}, pool_seed).build(schema)


# --------------------------------------------------------------------------- streams


def default_modify(record: dict[str, Any], rng: random.Random) -> None:
    """Change one field the way an edit in the real system would: status first, else a name."""
    if "status" in record:
        values = NAMED_ENUMS["status"]
        current = record["status"]
        nxt = values.index(current) + 1 if current in values else 0
        record["status"] = values[nxt % len(values)]
    elif "name" in record:
        record["name"] = f"{record['name']} (renamed)"
    else:
        record["description"] = sentence(rng)


def cycle_field(path: str, values: Sequence[Any]) -> Modifier:
    """A modifier that moves the value at dotted ``path`` to the next of ``values``."""
    keys = path.split(".")

    def modify(record: dict[str, Any], rng: random.Random) -> None:
        target = record
        for key in keys[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        current = target.get(keys[-1])
        nxt = values.index(current) + 1 if current in values else 0
        target[keys[-1]] = values[nxt % len(values)]

    return modify


@dataclass(frozen=True)
class StreamSpec:
    """How one stream's records are made and served.

    ``dataset`` lets two stream names share one list (an API may expose the same endpoint
    under two names); ``time_field`` is the creation timestamp that orders the list newest
    first (None: the stream has none and keeps a stable order); ``duplicate_every`` makes
    every n-th record a byte-identical copy of the one before (a real API can return two
    identical rows); ``paginated`` says whether ``Sandbox(records=N)`` applies.
    """

    name: str
    schema: Mapping[str, Any]
    count: int
    paginated: bool = False
    dataset: str = ""
    id_prefix: str = ""
    overrides: Mapping[str, Gen] = field(default_factory=dict)
    modify: Modifier = default_modify
    duplicate_every: int = 0
    time_field: str | None = "created_at"
    #: The record's identifier, as ``mutate`` reports it (a dotted path for a nested one).
    id_field: str = "id"

    @property
    def key(self) -> str:
        """The dataset this stream reads (its own name unless shared)."""
        return self.dataset or self.name


@dataclass(frozen=True)
class StreamData:
    """An immutable snapshot of one stream: swapped whole on mutation, read without locks."""

    rows: list[bytes]  # serialised records, API order (newest first)
    times: list[int]  # creation epoch of each row, same order (non-increasing)
    next_index: int  # creation index the next new record gets
    last_ts: int  # newest creation time so far

    def count_since(self, ts: float) -> int:
        """How many leading rows were created at or after ``ts`` (newest first => a prefix)."""
        return bisect.bisect_right(self.times, -ts, key=operator.neg)


class StreamGenerator:
    """Generates, and later mutates, the records of one stream of one API."""

    def __init__(self, api: str, spec: StreamSpec, seed: int) -> None:
        self.api = api
        self.spec = spec
        self.seed = seed
        self._base = stable_seed(seed, api, spec.key)
        self._id_seed = stable_seed(seed, api, spec.key, "id") & _ID_MASK
        self._rng = random.Random()
        overrides = dict(spec.overrides)
        if spec.time_field and spec.time_field in spec.schema.get("properties", {}):
            fmt = spec.schema["properties"][spec.time_field].get("format")
            overrides.setdefault(
                spec.time_field,
                (lambda c: iso_date(c.ts)) if fmt == "date" else (lambda c: iso(c.ts)),
            )
        if spec.id_prefix and "id" in spec.schema.get("properties", {}):
            overrides.setdefault("id", lambda c: c.id)
        self._gen = compile_schema(spec.schema, overrides, self._base)
        self._lock = threading.RLock()
        self._data: StreamData | None = None
        self._drifts: list[Any] = []  # api_sandbox.drift.Drift, applied to the rows

    def record_id(self, index: int) -> str:
        """The id of the record created ``index``-th (0 = oldest), without generating it."""
        return make_id(self._id_seed, index, self.spec.id_prefix)

    def _seed_for(self, index: int) -> None:
        self._rng.seed(self._base ^ ((index * _GOLDEN) & 0xFFFFFFFFFFFFFFFF))

    def make(self, index: int, ts: int) -> dict[str, Any]:
        """Record ``index`` created at ``ts`` from its own seed (records created by ``mutate``;
        the initial list is generated in seeded blocks, see ``_build``)."""
        self._seed_for(index)
        ctx = Ctx(self._rng, index, ts, self.record_id(index))
        return self._gen(ctx)

    def data(self) -> StreamData:
        """The current snapshot, generated on first use."""
        data = self._data
        if data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._drifted(self._build(self.spec.count), self._drifts)
                data = self._data
        return data

    def add_drift(self, drift: Any) -> None:
        """New fields from ``drift.start`` on (an ``api_sandbox.drift.Drift``), in the
        stored rows: ground truth carries them too."""
        with self._lock:
            self._drifts.append(drift)
            if self._data is not None:
                self._data = self._drifted(self._data, [drift])

    @staticmethod
    def _drifted(data: StreamData, drifts: list[Any]) -> StreamData:
        if not drifts:
            return data
        rows = list(data.rows)
        before: bytes | None = None
        for position, row in enumerate(data.rows):
            if row == before:  # a byte-identical copy stays one
                rows[position] = rows[position - 1]
                continue
            before = row
            extra: dict[str, Any] = {}
            for drift in drifts:
                extra.update(drift.values(position))
            if extra:
                rows[position] = compact_dumps({**orjson.loads(row), **extra})
        return StreamData(rows, data.times, data.next_index, data.last_ts)

    def set_count(self, count: int) -> None:
        """Change how many records the stream starts with (before first use)."""
        self.spec = StreamSpec(**{**self.spec.__dict__, "count": count})

    def _build(self, n: int) -> StreamData:
        """Generate ``n`` records spread evenly over the two-year range, oldest first."""
        span = EPOCH_END - EPOCH_START
        step = max(span // max(n, 1), 1)
        rows: list[bytes] = []
        times: list[int] = []
        dup = self.spec.duplicate_every
        rng = self._rng
        for index in range(n):
            if dup and index % dup == dup - 1:
                rows.append(rows[-1])
                times.append(times[-1])
                continue
            if index % SEED_BLOCK == 0:
                # Re-seeding Mersenne Twister costs as much as generating a record, so the
                # initial list is seeded once per block of records: still a pure function of
                # (seed, api, stream, index) and of the count asked for.
                self._seed_for(index)
            ts = EPOCH_START + (index * span) // n + int(rng.random() * step)
            ctx = Ctx(rng, index, ts, self.record_id(index))
            rows.append(compact_dumps(self._gen(ctx)))
            times.append(ts)
        rows.reverse()
        times.reverse()
        return StreamData(rows, times, n, times[0] if times else EPOCH_END)

    def mutate(self, new: int, modified: int) -> list[str]:
        """Create ``new`` records after all existing ones and edit ``modified`` existing ones.

        New records go to the front (newest first). Edited records are spread evenly over
        the existing list so that they fall on different pages. Returns the ids of the
        affected records (``id_field``): new ones in API order (newest first), then edited
        ones; a stream without one returns their creation times instead.
        """
        with self._lock:
            data = self.data()
            rng = random.Random(stable_seed(self.seed, self.api, self.spec.key, "mutate"))
            rows = list(data.rows)
            times = list(data.times)
            changed: list[str] = []
            for j in range(min(modified, len(rows))):
                pos = (j * len(rows)) // min(modified, len(rows))
                rng.seed(stable_seed(self._base, "modify", data.next_index, pos))
                record = orjson.loads(rows[pos])
                self.spec.modify(record, rng)
                rows[pos] = compact_dumps(record)
                changed.append(self._ident(record))
            created: list[str] = []
            fresh_rows: list[bytes] = []
            fresh_times: list[int] = []
            ts = data.last_ts
            index = data.next_index
            for _ in range(new):
                self._seed_for(index)
                ts += 60 + int(self._rng.random() * 3540)
                record = self.make(index, ts)
                fresh_rows.append(compact_dumps(record))
                fresh_times.append(ts)
                created.append(self._ident(record))
                index += 1
            fresh_rows.reverse()
            fresh_times.reverse()
            created.reverse()
            self._data = StreamData(fresh_rows + rows, fresh_times + times, index, ts)
            return created + changed

    def _ident(self, record: Mapping[str, Any]) -> str:
        value: Any = record
        for step in self.spec.id_field.split("."):
            value = value.get(step) if isinstance(value, Mapping) else None
        if value is not None:
            return str(value)
        return str(record.get(self.spec.time_field or "", ""))
