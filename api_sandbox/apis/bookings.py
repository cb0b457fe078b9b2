"""The bookings API (seed 003), per the "bookings" section of api-contracts.md.

OAuth2 password grant at ``POST /connect/token``; every data request carries
``Authorization: Bearer <token>`` and the ``legal-entity`` header (403 when it is missing
or unknown, 401 when the token is unknown or expired). Five lists under ``/v1/``, paged by
``PageSize`` (at most 100) and ``PageNumber``; each reply names the next page as a full URL
(``nextPage``, null on the last page), and a client must request that URL as given: a page
request that is not an issued ``nextPage`` verbatim, or a page past ``totalPages``, is
logged in :attr:`BookingsApi.violations`. Every list takes ``ModifiedAfter`` (records
modified strictly after it). Ids are UUIDs; timestamps have no zone and seven fractional
digits (``2022-09-21T13:22:16.3881969``), as the vendor's .NET backend writes them, and
compare at that precision (100 ns ticks) here.

Edits made by ``mutate`` stamp ``modified`` with the API's clock: one tick after the newest
``modified`` so far, so an edit lands in the same second as the last bookmark, which is the
case a tap that compares or sends timestamps at a coarser precision gets wrong.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import orjson

from api_sandbox.datagen import (
    Ctx,
    StreamSpec,
    compile_schema,
    iso_date,
    load_fields,
    pick,
    sentence,
    stable_seed,
)
from api_sandbox.engine import Api, ApiError, Request, Response, Route, TokenIssuer

USERNAME = "sandbox-bookings-user"
PASSWORD = "sandbox-bookings-password"
CLIENT_ID = "apiclient"
LEGAL_ENTITY = "sandbox-legal-entity-01"
#: Legal entities the API knows; a request for any other gets 403.
LEGAL_ENTITIES = frozenset({LEGAL_ENTITY})
ALLOWED_SCOPES = frozenset({"openid", "api", "profile", "offline_access"})
TOKEN_PATH = "/connect/token"
TOKEN_LIFETIME = 3600
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 100

#: stream -> path, in the order the contract lists them.
PATHS = {
    "account": "/v1/accounts",
    "booking": "/v1/bookings",
    "invoice": "/v1/invoices",
    "product": "/v1/products",
    "subscription": "/v1/subscriptions",
}
#: Sizes that exercise paging: a short last page (account), an exact multiple of 100
#: (invoice: the last page names no nextPage, no empty page follows), an empty list.
COUNTS = {"account": 250, "booking": 120, "invoice": 200, "product": 0, "subscription": 37}

TICKS_PER_SECOND = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?"
)
_NINETY_DAYS = 90 * 86400 * TICKS_PER_SECOND


def ticks_text(ticks: int) -> str:
    """100 ns ticks since the epoch as the vendor writes them: no zone, seven digits."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:07d}"


def parse_ticks(text: str) -> int:
    """An ISO 8601 date or date-time as 100 ns ticks; no zone means UTC (ValueError if bad)."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        tzinfo=timezone.utc,
    )  # fmt: skip
    ticks = int((moment - _EPOCH).total_seconds()) * TICKS_PER_SECOND
    ticks += int((fraction or "").ljust(7, "0"))
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        ticks -= sign * offset * TICKS_PER_SECOND
    return ticks


@dataclass(frozen=True)
class Served:
    """One page the API served: the target as requested, the header, the nextPage it named."""

    stream: str
    target: str
    legal_entity: str
    next_page: str | None


class BookingsApi(Api):
    """The bookings API: password grant, ``legal-entity`` header, next-page URLs."""

    name = "bookings"

    def __init__(self, seed: int, *args: Any, **kwargs: Any) -> None:
        #: Requests that broke the paging contract, for tests to read.
        self.violations: list[str] = []
        #: Every page served, oldest first (tests check the header and the nextPage chain).
        self.served: list[Served] = []
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._clock: dict[str, int] = {}
        self._modified_cache: dict[str, tuple[Any, list[int]]] = {}
        self._filtered_cache: dict[str, tuple[Any, int, list[bytes]]] = {}
        #: Tokens expire after ``token_issuer.lifetime`` seconds; tests may shorten it.
        self.token_issuer = TokenIssuer(self.name, seed, TOKEN_LIFETIME)
        super().__init__(seed, *args, **kwargs)

    # -- data ------------------------------------------------------------------------------

    def stream_specs(self) -> list[StreamSpec]:
        fields = load_fields(self.name)
        return [
            StreamSpec(
                stream,
                fields[stream],
                COUNTS[stream],
                paginated=True,
                overrides={"": self._record_maker(stream, fields[stream])},
                modify=self._modifier(stream),
                time_field="created",
            )
            for stream in PATHS
        ]

    def _record_maker(self, stream: str, schema: dict[str, Any]) -> Callable[[Ctx], Any]:
        """Records with UUID ids, vendor timestamps, and ``modified`` never before ``created``."""
        overrides: dict[str, Callable[[Ctx], Any]] = {}
        for path, sub, key in _walk(schema):
            kinds = sub.get("type", [])
            if key == "customFields":
                overrides[path] = _custom_fields
                continue
            if "string" not in kinds:
                continue
            if sub.get("format") == "date-time":
                overrides[path] = _nearby_timestamp
            elif key == "id" or key.endswith("Id"):
                overrides[path] = _random_uuid
            elif key.endswith("Number"):
                overrides[path] = lambda c: str(10000 + int(c.rng.random() * 90000))
            elif key.endswith("Date"):
                overrides[path] = lambda c: iso_date(c.ts + int(c.rng.random() * 7776000))
        if stream in ("invoice", "subscription"):
            overrides["account.id"] = self._account_id
        body = compile_schema(schema, overrides, stable_seed(self.seed, self.name, stream, "pool"))

        def record(c: Ctx) -> dict[str, Any]:
            row = body(c)
            row["id"] = self._uuid(stream, c.index)
            created = c.ts * TICKS_PER_SECOND + int(c.rng.random() * TICKS_PER_SECOND)
            if c.index >= self.generator(stream).spec.count:  # made by mutate: new just now
                modified = max(created, self._tick(stream))
            elif c.rng.random() < 0.25:  # never edited
                modified = created
            else:
                modified = created + int(c.rng.random() * _NINETY_DAYS)
            row["created"] = ticks_text(created)
            row["modified"] = ticks_text(modified)
            return row

        return record

    def _uuid(self, stream: str, index: int) -> str:
        digest = hashlib.sha256(f"{self.seed}:{self.name}:{stream}:{index}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def _account_id(self, c: Ctx) -> str | None:
        """An existing account's id: invoices and subscriptions belong to one."""
        count = self.generator("account").spec.count
        if count == 0 or c.rng.random() < 0.05:
            return None
        return self._uuid("account", int(c.rng.random() * count))

    def _modifier(self, stream: str) -> Callable[[dict[str, Any], Any], None]:
        def modify(record: dict[str, Any], rng: Any) -> None:
            if "status" in record:
                record["status"] = pick(rng, ("Active", "Draft", "Cancelled", "Expired"))
            elif "name" in record:
                record["name"] = f"{record['name'] or 'Unnamed'} (renamed)"
            else:
                record["notes"] = sentence(rng)
            record["modified"] = ticks_text(self._tick(stream))

        return modify

    def _tick(self, stream: str) -> int:
        """The API's clock for ``stream``: one tick (100 ns) after the newest ``modified``."""
        with self._lock:
            now = self._clock.get(stream)
        if now is None:
            now = max(self._modified_ticks(stream, self.data(stream)), default=0)
        with self._lock:
            now = max(now, self._clock.get(stream, 0)) + 1
            self._clock[stream] = now
        return now

    def _modified_ticks(self, stream: str, data: Any) -> list[int]:
        """Each row's ``modified`` in ticks, parsed once per snapshot of the list."""
        cached = self._modified_cache.get(stream)
        if cached is not None and cached[0] is data:
            return cached[1]
        ticks = [parse_ticks(orjson.loads(row)["modified"]) for row in data.rows]
        self._modified_cache[stream] = (data, ticks)
        return ticks

    def _rows_after(self, stream: str, after: int) -> list[bytes]:
        """The rows modified strictly after ``after``, in list order (cached per snapshot)."""
        data = self.data(stream)
        cached = self._filtered_cache.get(stream)
        if cached is not None and cached[0] is data and cached[1] == after:
            return cached[2]
        ticks = self._modified_ticks(stream, data)
        rows = [row for row, tick in zip(data.rows, ticks, strict=True) if tick > after]
        self._filtered_cache[stream] = (data, after, rows)
        return rows

    # -- API surface -----------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"username": USERNAME, "password": PASSWORD, "legal_entity": LEGAL_ENTITY}

    def authenticate(self, request: Request) -> Response | None:
        assert self.token_issuer is not None
        if not self.token_issuer.valid(request.bearer()):
            reply = self.error(401, "The access token is missing, expired or not known")
            reply.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            return reply
        entity = request.headers.get("legal-entity")
        if not entity:
            return self.error(403, "The legal-entity header is required")
        if entity not in LEGAL_ENTITIES:
            return self.error(403, "The legal entity is not known or not permitted for this user")
        return None

    def error_body(self, status: int, message: str) -> bytes:
        """RFC 7807 problem details, as the vendor's ASP.NET backend answers."""
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
        return orjson.dumps(
            {
                "type": f"https://httpstatuses.io/{status}",
                "title": titles.get(status, "Error"),
                "status": status,
                "detail": message,
            }
        )

    def routes(self) -> list[Route]:
        routes = [Route("POST", TOKEN_PATH, self._token, data=False)]
        for stream, path in PATHS.items():
            routes.append(Route("GET", path, self._list_handler(stream, path)))
        return routes

    def _token(self, request: Request) -> Response:
        form = request.form()

        def refuse(error: str, description: str) -> Response:
            body = {"error": error, "error_description": description}
            return Response(400, orjson.dumps(body))

        if form.get("grant_type") != "password":
            return refuse("unsupported_grant_type", "grant_type must be password")
        if form.get("client_id") != CLIENT_ID:
            return refuse("invalid_client", "unknown client")
        scope = form.get("scope")
        if scope is not None and (not scope.split() or set(scope.split()) - ALLOWED_SCOPES):
            return refuse("invalid_scope", "the scope asked for is not allowed")
        if form.get("username") != USERNAME or form.get("password") != PASSWORD:
            return refuse("invalid_grant", "invalid_username_or_password")
        assert self.token_issuer is not None
        return Response(200, orjson.dumps(self.token_issuer.issue()))

    def _list_handler(self, stream: str, path: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            size = min(_int_arg(request, "PageSize", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
            number = _int_arg(request, "PageNumber", 1)
            after_text = request.arg("ModifiedAfter")
            if after_text:
                try:
                    after = parse_ticks(after_text)
                except ValueError:
                    raise ApiError(
                        400, f"ModifiedAfter is not a valid date-time: {after_text!r}"
                    ) from None
                rows = self._rows_after(stream, after)
            else:
                rows = self.data(stream).rows
            total = len(rows)
            pages = math.ceil(total / size)
            if number > 1 and request.target not in self._issued:
                self._violation(f"{request.target}: not a nextPage URL as the API gave it")
            if number > max(pages, 1):
                self._violation(f"{request.target}: page {number} is past totalPages {pages}")
            start = (number - 1) * size
            page = rows[start : start + size]
            next_page = None
            if number < pages:
                next_page = self._next_page(request, path, number + 1, size, after_text)
            entity = request.headers.get("legal-entity") or ""
            with self._lock:
                self.served.append(Served(stream, request.target, entity, next_page))
            head = orjson.dumps(
                {
                    "pageNumber": number,
                    "pageSize": size,
                    "totalPages": pages,
                    "totalCount": total,
                    "nextPage": next_page,
                }
            )
            return Response(200, head[:-1] + b',"data":[' + b",".join(page) + b"]}")

        return handler

    def _next_page(
        self, request: Request, path: str, number: int, size: int, after: str | None
    ) -> str:
        """The next page as a full URL. Its query is not in the order of the first request's
        (``PageSize`` first, per the contract), so a client that rebuilds it is caught."""
        pairs: list[tuple[str, Any]] = [("PageNumber", number), ("PageSize", size)]
        if after:
            pairs.append(("ModifiedAfter", after))
        target = f"/{self.name}{path}?{urlencode(pairs)}"
        with self._lock:
            self._issued.add(target)
        host = request.headers.get("Host") or "127.0.0.1"
        return f"http://{host}{target}"

    def _violation(self, note: str) -> None:
        with self._lock:
            self.violations.append(note)
        print(f"api_sandbox: bookings: {note}", file=sys.stderr)


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < 1:
        raise ApiError(400, f"{name} must be at least 1")
    return value


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any], str]]:
    """Every nested property as (compile_schema path, schema, key)."""
    for key, sub in schema.get("properties", {}).items():
        sub_path = f"{path}.{key}" if path else key
        yield sub_path, sub, key
        yield from _walk(sub, sub_path)
        if "items" in sub:
            items = sub["items"]
            yield from _walk(items, f"{sub_path}[]")


def _nearby_timestamp(c: Ctx) -> str:
    """A vendor timestamp within three months either side of the record's creation."""
    offset = int((c.rng.random() - 0.33) * 2 * _NINETY_DAYS)
    return ticks_text(c.ts * TICKS_PER_SECOND + offset)


#: Custom fields a tenant might define: their keys are the tenant's, not the API's schema.
_CUSTOM_FIELDS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("region", lambda rng: pick(rng, ("EMEA", "APAC", "AMER"))),
    ("priority", lambda rng: int(rng.random() * 5)),
    ("approved", lambda rng: rng.random() < 0.5),
    ("costCenter", lambda rng: f"CC-{int(rng.random() * 900) + 100}"),
)


def _custom_fields(c: Ctx) -> dict[str, Any] | None:
    """Free-form tenant fields: some records have none, others a few of these."""
    roll = c.rng.random()
    if roll < 0.1:
        return None
    return {key: make(c.rng) for key, make in _CUSTOM_FIELDS if c.rng.random() < 0.6}


def _random_uuid(c: Ctx) -> str:
    return str(uuid.UUID(int=c.rng.getrandbits(128), version=4))
