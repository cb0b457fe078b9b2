"""The reporting API (seed 001), per the "reporting" section of api-contracts.md.

OAuth2 client credentials (HTTP Basic ``client_id:client_secret``, form
``grant_type=client_credentials``) at ``/v1/oauth2/token``; every data request carries
``Authorization: Bearer <token>`` and gets 401 once the token is unknown or expired
(``token_issuer.lifetime`` sets the lifetime, the ``token_expiry`` fault revokes one).

Seven lists, each with the paging the vendor gives it:

- transactions: required ``start_date`` and ``end_date`` at most 31 days apart, read as
  the window ``start <= transaction_updated_date < end`` (half-open, so adjacent windows
  never share a row); ``page``/``page_size`` (at most 500) with ``total_pages`` and
  ``total_items``; ``fields=all`` for the whole record (without it only
  ``transaction_info``); a window matching more than ``row_limit`` rows (10,000) answers
  400 ``RESULTSET_TOO_LARGE``.
- balances: one reply that is itself the record.
- list_products (``page``/``page_size`` at most 20, totals with ``total_required=true``)
  and ``/v1/catalogs/products/{id}``, the details of one product.
- list_disputes: ``page_size`` at most 50 and an opaque ``next_page_token`` given in a
  ``links`` entry with ``rel: next``; ``update_time_after`` keeps disputes updated at or
  after that time.
- search_invoices: POST with a JSON search body, ``page``/``page_size`` (at most 100),
  totals with ``total_required=true``.
- list_payments: ``count`` (at most 20) and ``start_id``; ``next_id`` names the first
  payment of the next page and is absent on the last.

Errors are the vendor's ``{"name","message","debug_id","details"}``; a plain 400 (an
injected fault) names no cause, the API's own refusals do (``INVALID_REQUEST``,
``RESULTSET_TOO_LARGE``). Timestamps of the reporting lists (transactions, balances,
disputes, products) are written with a colon-less offset (``2024-01-31T12:00:00+0000``),
those of the invoicing and payments lists with ``Z``. Amounts are
``{"currency_code","value"}`` with the value a decimal string.

Requests that break the contract are answered as the vendor would and also noted in
``violations`` for tests: a window over 31 days, a page past ``total_pages``, a dispute
token the API never gave, and a window refused as ``RESULTSET_TOO_LARGE`` asked again
unchanged.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from api_sandbox.datagen import (
    CURRENCIES,
    EPOCH_END,
    EPOCH_START,
    Ctx,
    StreamData,
    StreamSpec,
    compact_dumps,
    compile_schema,
    cycle_field,
    load_fields,
    pick,
    sentence,
    stable_seed,
)
from api_sandbox.engine import Api, Request, Response, Route, TokenIssuer

CLIENT_ID = "sandbox-reporting-client"
CLIENT_SECRET = "sandbox-reporting-secret"
TOKEN_PATH = "/v1/oauth2/token"
TRANSACTIONS = "/v1/reporting/transactions"
BALANCES = "/v1/reporting/balances"
PRODUCTS = "/v1/catalogs/products"
DISPUTES = "/v1/customer/disputes"
INVOICES = "/v2/invoicing/search-invoices"
PAYMENTS = "/v1/payments/payment"

#: Longest window ``start_date``..``end_date`` the transactions list accepts.
MAX_WINDOW_SECONDS = 31 * 86400
#: Rows a transactions window may match before the API refuses it.
ROW_LIMIT = 10_000
#: (default, maximum) page size of each paged list.
PAGE_SIZES = {
    "transactions": (100, 500),
    "list_products": (10, 20),
    "list_disputes": (10, 50),
    "search_invoices": (20, 100),
    "list_payments": (10, 20),
}
COUNTS = {
    "transactions": 600,
    "balances": 1,
    "list_products": 40,  # two full pages of 20: no empty third page may be asked for
    "list_disputes": 120,  # pages of 50, 50 and 20
    "search_invoices": 200,  # two full pages of 100
    "list_payments": 45,  # pages of 20, 20 and 5
}
ID_PREFIX = {
    "transactions": "TX",
    "list_products": "PROD-",
    "list_disputes": "PP-D-",
    "search_invoices": "INV2-",
    "list_payments": "PAYID-",
}
#: Where each list's records keep their id (``mutate`` reports it).
ID_FIELDS = {
    "transactions": "transaction_info.transaction_id",
    "balances": "as_of_time",
    "list_disputes": "dispute_id",
}
#: Where an edit writes its time, for the lists read incrementally.
UPDATED_AT = {
    "transactions": "transaction_info.transaction_updated_date",
    "list_disputes": "update_time",
}
#: Fields the tap lifts out of ``transaction_info``: the API never sends them at the top.
LIFTED = ("transaction_id", "transaction_updated_date")

TX_STATUSES = ("S", "S", "S", "P", "V", "D")
TX_EVENT_CODES = ("T0006", "T0007", "T0400", "T1107", "T0000")
DISPUTE_REASONS = ("MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "UNAUTHORISED", "CREDIT_NOT_PROCESSED")
DISPUTE_STATUSES = ("OPEN", "WAITING_FOR_SELLER_RESPONSE", "UNDER_REVIEW", "RESOLVED")
INVOICE_STATUSES = ("DRAFT", "SENT", "PAID", "CANCELLED", "PARTIALLY_PAID")
PAYMENT_STATES = ("created", "approved", "failed")
PRODUCT_TYPES = ("PHYSICAL", "DIGITAL", "SERVICE")
#: Amount values with a digit count that floats would not keep.
EXACT_VALUES = ("0.10", "1234567.89", "0.01", "99999999999.99", "19.90")

#: Objects the vendor always sends, though the field lists allow null.
ALWAYS_PRESENT = {
    "transactions": ("transaction_info",),
    "search_invoices": ("detail", "detail.metadata"),
}

_OFFSET = re.compile(r"([+-]\d{2}):?(\d{2})$")


class Refusal(Exception):
    """A handler's refusal with the vendor's error name (``INVALID_REQUEST``...)."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message


def colonless(ts: float) -> str:
    """``2024-01-31T12:00:00+0000``: how the reporting lists write a time."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(int(ts)))


def zulu(ts: float) -> str:
    """``2024-01-31T12:00:00Z``: how the invoicing and payments lists write a time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def parse_time(value: str | None, name: str) -> float:
    """Epoch seconds of an RFC 3339 time, with ``Z``, ``+00:00`` or ``+0000``."""
    if not value:
        raise Refusal(400, "INVALID_REQUEST", f"{name} is required")
    text = value.strip().replace(" ", "+")  # a '+' sent unescaped arrives as a space
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET.sub(r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refusal(
            400, "INVALID_REQUEST", f"{name} is not an RFC 3339 time: {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise Refusal(400, "INVALID_REQUEST", f"{name} needs a time zone: {value!r}")
    return moment.timestamp()


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refusal(400, "INVALID_REQUEST", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Refusal(400, "INVALID_REQUEST", f"{name} must be between {low} and {high}")
    return value


def _walk_times(value: Any, schema: dict[str, Any], write: Callable[[float], str]) -> None:
    """Rewrite every ``date-time`` string below ``value`` in the list's own style."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            item = value.get(key)
            if isinstance(item, str) and sub.get("format") == "date-time":
                value[key] = write(parse_time(item, key))
            elif isinstance(item, (dict, list)):
                _walk_times(item, sub, write)
    elif isinstance(value, list):
        for item in value:
            _walk_times(item, schema.get("items", {}), write)


def _amounts(value: Any, c: Ctx, currency: str) -> None:
    """Every ``{"currency_code","value"}`` below ``value``: one currency, decimal text."""
    if isinstance(value, dict):
        if set(value) == {"currency_code", "value"}:
            value["currency_code"] = currency
            if c.rng.random() < 0.1 and currency != "JPY":
                value["value"] = pick(c.rng, EXACT_VALUES)
            else:
                decimals = 0 if currency == "JPY" else 2
                value["value"] = f"{c.rng.random() * 900 + 0.5:.{decimals}f}"
            return
        for item in value.values():
            _amounts(item, c, currency)
    elif isinstance(value, list):
        for item in value:
            _amounts(item, c, currency)


class ReportingApi(Api):
    """The reporting API: client-credentials tokens and seven differently paged lists."""

    name = "reporting"

    def __init__(self, seed: int, *args: Any, **kwargs: Any) -> None:
        #: Requests that broke the contract, for tests to read.
        self.violations: list[str] = []
        #: Rows a transactions window may match before RESULTSET_TOO_LARGE.
        self.row_limit = ROW_LIMIT
        self.token_issuer = TokenIssuer(self.name, seed, lifetime=32400)
        self._lock = threading.Lock()
        self._refused_windows: set[tuple[float, float]] = set()
        self._dispute_tokens: dict[str, int] = {}
        self._indexes: dict[str, tuple[StreamData, Any]] = {}
        #: Where transactions sit in time: the two-year default range, or elsewhere
        #: (:meth:`place_transactions`).
        self._tx_start, self._tx_end = float(EPOCH_START), float(EPOCH_END)
        super().__init__(seed, *args, **kwargs)

    @property
    def issued_dispute_tokens(self) -> list[str]:
        """Every ``next_page_token`` handed out so far, oldest first (tests compare)."""
        with self._lock:
            return list(self._dispute_tokens)

    # -- data ------------------------------------------------------------------------------

    def place_transactions(self, start: float, end: float) -> None:
        """Spread the transactions over ``start``..``end`` (epoch seconds) instead.

        Tests of date windows need rows in the last few weeks, which the fixed two-year
        range of the other lists does not reach. Call it before the first request.
        """
        if self.generator("transactions")._data is not None:
            raise RuntimeError("transactions were already generated: place them first")
        self._tx_start, self._tx_end = float(start), float(end)

    def _tx_time(self, ts: float) -> float:
        scale = (self._tx_end - self._tx_start) / (EPOCH_END - EPOCH_START)
        return self._tx_start + (ts - EPOCH_START) * scale

    def stream_specs(self) -> list[StreamSpec]:
        fields = load_fields(self.name)
        sent = dict(fields["transactions"])
        sent["properties"] = {k: v for k, v in sent["properties"].items() if k not in LIFTED}
        return [
            self._spec(
                "transactions", sent, self._transaction, "transaction_info.transaction_status"
            ),
            self._spec("balances", fields["balances"], self._balances, None),
            # One catalogue: both are made from the details (see ``data``).
            self._spec("list_products", fields["show_product_details"], self._product, "name"),
            self._spec(
                "show_product_details", fields["show_product_details"], self._product, "name"
            ),
            self._spec("list_disputes", fields["list_disputes"], self._dispute, "status"),
            self._spec("search_invoices", fields["search_invoices"], self._invoice, "status"),
            self._spec("list_payments", fields["list_payments"], self._payment, "state"),
        ]

    def _spec(
        self,
        name: str,
        schema: dict[str, Any],
        finish: Callable[[dict[str, Any], Ctx], dict[str, Any]],
        modified: str | None,
    ) -> StreamSpec:
        """A stream whose schema-driven record is then made consistent by ``finish``."""
        key = "list_products" if name == "show_product_details" else name
        always = _never_null(schema, ALWAYS_PRESENT.get(name, ()))
        base = compile_schema(always, {}, stable_seed(self.seed, self.name, name, "pool"))
        cycles = {
            "transaction_info.transaction_status": TX_STATUSES,
            "status": DISPUTE_STATUSES if name == "list_disputes" else INVOICE_STATUSES,
            "state": PAYMENT_STATES,
            "name": ("Renamed product", "Product"),
        }
        return StreamSpec(
            name,
            schema,
            COUNTS[key],
            paginated=name not in ("balances", "show_product_details"),
            dataset=key,
            id_prefix=ID_PREFIX.get(key, ""),
            overrides={"": lambda c: finish(base(c), c)},
            modify=self._modifier(name, cycle_field(modified, cycles[modified]))
            if modified
            else cycle_field("x", (1,)),
            time_field=None,
            id_field=ID_FIELDS.get(key, "id"),
        )

    @staticmethod
    def _modifier(name: str, change: Callable[[dict[str, Any], Any], None]) -> Any:
        """An edit. Edited transactions and disputes are updated now, as in the real
        system: the next incremental sync (its last window, ``update_time_after``) has them.
        """
        path = UPDATED_AT.get(name)
        if path is None:
            return change
        *parents, leaf = path.split(".")

        def modify(record: dict[str, Any], rng: Any) -> None:
            change(record, rng)
            node = record
            for key in parents:
                node = node[key]
            node[leaf] = colonless(time.time())

        return modify

    def _is_new(self, stream: str, c: Ctx) -> bool:
        """Whether ``mutate`` made this record between two syncs (not the initial list)."""
        return c.index >= self.generator(stream).spec.count

    def _transaction(self, record: dict[str, Any], c: Ctx) -> dict[str, Any]:
        info = record["transaction_info"]
        if self._is_new("transactions", c):
            # Made by ``mutate`` between two syncs: a transaction of this moment, which
            # the next sync's last window (bookmark..now) holds.
            initiated = updated = float(int(time.time()))
        else:
            initiated = self._tx_time(c.ts)
            # Updated within six hours, never after the end of the range (tests place
            # that end in the past, and a sync reads up to now).
            updated = min(initiated + int(c.rng.random() * 6 * 3600), self._tx_end)
        info["transaction_id"] = c.id
        info["transaction_initiation_date"] = colonless(initiated)
        info["transaction_updated_date"] = colonless(updated)
        info["transaction_status"] = pick(c.rng, TX_STATUSES)
        info["transaction_event_code"] = pick(c.rng, TX_EVENT_CODES)
        _amounts(record, c, pick(c.rng, (*CURRENCIES[:3], "JPY")))
        auction = record.get("auction_info")
        if isinstance(auction, dict) and auction.get("auction_closing_date"):
            auction["auction_closing_date"] = colonless(initiated + 86400)
        return record

    def _balances(self, record: dict[str, Any], c: Ctx) -> dict[str, Any]:
        balances = []
        for i, currency in enumerate(("USD", "EUR", "JPY")):
            entry: dict[str, Any] = {"currency": currency, "primary": i == 0}
            for name in ("total_balance", "available_balance", "withheld_balance"):
                entry[name] = {"currency_code": currency, "value": "0"}
            _amounts(entry, c, currency)
            balances.append(entry)
        record["balances"] = balances
        record["account_id"] = "SANDBOX" + format(stable_seed(self.seed, "acct") % 10**9, "09d")
        record["as_of_time"] = colonless(EPOCH_END)
        record["last_refresh_time"] = colonless(EPOCH_END - 3 * 3600)
        return record

    def _product(self, record: dict[str, Any], c: Ctx) -> dict[str, Any]:
        record["id"] = c.id
        record["name"] = f"{sentence(c.rng, 2, 5).rstrip('.')} {c.index + 1}"
        record["type"] = pick(c.rng, PRODUCT_TYPES)
        record["create_time"] = colonless(c.ts)
        record["update_time"] = colonless(c.ts + int(c.rng.random() * 30 * 86400))
        record["links"] = [{"href": f"{PRODUCTS}/{c.id}", "rel": "self", "method": "GET"}]
        return record

    def _dispute(self, record: dict[str, Any], c: Ctx) -> dict[str, Any]:
        record["dispute_id"] = c.id
        if self._is_new("list_disputes", c):  # opened now, between two syncs
            record["create_time"] = record["update_time"] = colonless(time.time())
        else:
            record["create_time"] = colonless(c.ts)
            record["update_time"] = colonless(c.ts + int(c.rng.random() * 20 * 86400))
        record["reason"] = pick(c.rng, DISPUTE_REASONS)
        record["status"] = pick(c.rng, DISPUTE_STATUSES)
        _amounts(record, c, pick(c.rng, CURRENCIES[:3]))
        _walk_times(record, self._schema("list_disputes"), colonless)
        record["links"] = [{"href": f"{DISPUTES}/{c.id}", "rel": "self", "method": "GET"}]
        return record

    def _invoice(self, record: dict[str, Any], c: Ctx) -> dict[str, Any]:
        record["id"] = c.id
        record["status"] = pick(c.rng, INVOICE_STATUSES)
        record["detail"]["invoice_number"] = f"{c.index + 1:06d}"
        record["detail"]["metadata"]["create_time"] = zulu(c.ts)
        _amounts(record, c, pick(c.rng, CURRENCIES[:3]))
        _walk_times(record, self._schema("search_invoices"), zulu)
        record["links"] = [{"href": f"/v2/invoicing/invoices/{c.id}", "rel": "self"}]
        return record

    def _payment(self, record: dict[str, Any], c: Ctx) -> dict[str, Any]:
        record["id"] = c.id
        record["state"] = pick(c.rng, PAYMENT_STATES)
        record["create_time"] = zulu(c.ts)
        record["update_time"] = zulu(c.ts + int(c.rng.random() * 3600))
        _amounts(record, c, pick(c.rng, CURRENCIES[:3]))
        _walk_times(record, self._schema("list_payments"), zulu)
        return record

    def _schema(self, stream: str) -> dict[str, Any]:
        return self.specs[stream].schema  # type: ignore[return-value]

    def data(self, stream: str) -> StreamData:
        """list_products and show_product_details are one catalogue, seen two ways: the
        list shows the first fields of each product's details, with the same values."""
        data = super().data(stream)
        if stream == "list_products":
            return self._index("list_products", data, _list_entries)
        return data

    # -- per-snapshot lookups --------------------------------------------------------------

    def _index(self, name: str, data: StreamData, build: Callable[[StreamData], Any]) -> Any:
        """``build(data)``, computed once per snapshot of the data (mutations swap it)."""
        with self._lock:
            cached = self._indexes.get(name)
            if cached is None or cached[0] is not data:
                cached = (data, build(data))
                self._indexes[name] = cached
            return cached[1]

    @staticmethod
    def _by_updated(data: StreamData) -> tuple[list[float], list[bytes]]:
        """Transactions in ``transaction_updated_date`` order, for window look-ups."""
        pairs = []
        for row in data.rows:
            info = orjson.loads(row)["transaction_info"]
            pairs.append((parse_time(info["transaction_updated_date"], "updated"), row))
        pairs.sort(key=lambda p: p[0])
        return [p[0] for p in pairs], [p[1] for p in pairs]

    @staticmethod
    def _times_of(field: str) -> Callable[[StreamData], list[float]]:
        def build(data: StreamData) -> list[float]:
            return [parse_time(orjson.loads(row)[field], field) for row in data.rows]

        return build

    @staticmethod
    def _positions(data: StreamData) -> dict[str, int]:
        return {orjson.loads(row)["id"]: i for i, row in enumerate(data.rows)}

    # -- API surface -----------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    def authenticate(self, request: Request) -> Response | None:
        assert self.token_issuer is not None
        if self.token_issuer.valid(request.bearer()):
            return None
        body = {
            "error": "invalid_token",
            "error_description": "Token signature verification failed",
        }
        return Response(401, orjson.dumps(body))

    def error_body(self, status: int, message: str) -> bytes:
        """The vendor's error shape; a status with no cause of its own names none."""
        names = {
            401: "AUTHENTICATION_FAILURE",
            403: "NOT_AUTHORIZED",
            404: "RESOURCE_NOT_FOUND",
            405: "METHOD_NOT_SUPPORTED",
            429: "RATE_LIMIT_REACHED",
            500: "INTERNAL_SERVER_ERROR",
            503: "SERVICE_UNAVAILABLE",
        }
        body: dict[str, Any] = {"message": message, "debug_id": _debug_id(message)}
        if status in names:
            body = {"name": names[status], **body}
        return orjson.dumps(body)

    def routes(self) -> list[Route]:
        return [
            Route("POST", TOKEN_PATH, self._token, data=False),
            Route("GET", TRANSACTIONS, self._guarded(self._transactions)),
            Route("GET", BALANCES, self._guarded(self._balances_reply)),
            Route("GET", PRODUCTS, self._guarded(self._products)),
            Route("GET", PRODUCTS + "/{id}", self._guarded(self._product_details_reply)),
            Route("GET", DISPUTES, self._guarded(self._disputes)),
            Route("POST", INVOICES, self._guarded(self._invoices)),
            Route("GET", PAYMENTS, self._guarded(self._payments)),
        ]

    def match(self, method: str, path: str) -> Route | None:
        """Exact paths, and ``/v1/catalogs/products/<id>`` for any one id."""
        if path.startswith(PRODUCTS + "/") and path.count("/") == 4:
            path = PRODUCTS + "/{id}"
        return super().match(method, path)

    def knows_path(self, path: str) -> bool:
        if path.startswith(PRODUCTS + "/") and path.count("/") == 4:
            return True
        return super().knows_path(path)

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Turn a :class:`Refusal` into the vendor's error reply."""

        def answer(request: Request) -> Response:
            try:
                return handler(request)
            except Refusal as refusal:
                body = {
                    "name": refusal.name,
                    "message": refusal.message,
                    "debug_id": _debug_id(refusal.message),
                    "details": [{"issue": refusal.name, "description": refusal.message}],
                }
                return Response(refusal.status, orjson.dumps(body))

        return answer

    def _violation(self, request: Request, what: str) -> None:
        with self._lock:
            self.violations.append(f"{request.method} {request.path}: {what}")

    # -- handlers --------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        client = secret = ""
        if scheme.lower() == "basic":
            try:
                client, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client = secret = ""
        if client != CLIENT_ID or secret != CLIENT_SECRET:
            body = {"error": "invalid_client", "error_description": "Client Authentication failed"}
            return Response(401, orjson.dumps(body))
        if request.form().get("grant_type") != "client_credentials":
            body = {
                "error": "unsupported_grant_type",
                "error_description": "Grant type is not supported",
            }
            return Response(400, orjson.dumps(body))
        assert self.token_issuer is not None
        reply = self.token_issuer.issue()
        reply["scope"] = "https://uri.example.com/services/reporting/search/read"
        reply["app_id"] = "APP-SANDBOX"
        return Response(200, orjson.dumps(reply))

    def _transactions(self, request: Request) -> Response:
        start = parse_time(request.arg("start_date"), "start_date")
        end = parse_time(request.arg("end_date"), "end_date")
        if end <= start:
            raise Refusal(400, "INVALID_REQUEST", "end_date must be after start_date")
        if end - start > MAX_WINDOW_SECONDS:
            self._violation(request, "a window over 31 days")
            raise Refusal(
                400, "INVALID_REQUEST", "Date range is greater than the maximum of 31 days"
            )
        default, maximum = PAGE_SIZES["transactions"]
        size = _int_param(request, "page_size", default, 1, maximum)
        page = _int_param(request, "page", 1, 1, 10**9)
        times, rows = self._index("transactions", self.data("transactions"), self._by_updated)
        first, last = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
        matched = last - first
        window = (start, end)
        if matched > self.row_limit:
            with self._lock:
                again = window in self._refused_windows
                self._refused_windows.add(window)
            if again:
                self._violation(request, "a RESULTSET_TOO_LARGE window asked again unchanged")
            raise Refusal(
                400,
                "RESULTSET_TOO_LARGE",
                "Result set size is greater than the maximum limit. Change the filter "
                "criteria and try again.",
            )
        total_pages = math.ceil(matched / size)
        if page > max(total_pages, 1):
            self._violation(request, f"page {page} past total_pages {total_pages}")
        lo = first + (page - 1) * size
        hi = min(lo + size, last)
        chosen = rows[lo:hi] if lo < hi else []
        if (request.arg("fields") or "transaction_info") != "all":
            chosen = [
                orjson.dumps({"transaction_info": orjson.loads(r)["transaction_info"]})
                for r in chosen
            ]
        head = b'{"transaction_details":[' + b",".join(chosen) + b"],"
        tail = orjson.dumps(
            {
                "account_number": "SANDBOXACCT",
                "start_date": colonless(start),
                "end_date": colonless(end),
                "last_refreshed_datetime": colonless(max(end, EPOCH_END)),
                "page": page,
                "total_items": matched,
                "total_pages": total_pages,
            }
        )[1:]
        return Response(200, head + tail)

    def _balances_reply(self, request: Request) -> Response:
        return Response(200, self.data("balances").rows[0])

    def _products(self, request: Request) -> Response:
        default, maximum = PAGE_SIZES["list_products"]
        size = _int_param(request, "page_size", default, 1, maximum)
        page = _int_param(request, "page", 1, 1, 10**9)
        rows = self.data("list_products").rows
        reply = self._numbered(request, rows, page, size, "products")
        return Response(200, reply)

    def _numbered(
        self, request: Request, rows: list[bytes], page: int, size: int, key: str
    ) -> bytes:
        """One page by number; totals only with ``total_required=true``."""
        total_pages = math.ceil(len(rows) / size)
        if page > max(total_pages, 1):
            self._violation(request, f"page {page} past total_pages {total_pages}")
        lo = (page - 1) * size
        chosen = rows[lo : lo + size]
        tail: dict[str, Any] = {}
        if (request.arg("total_required") or "").lower() == "true":
            tail = {"total_items": len(rows), "total_pages": total_pages}
        query = {k: v[0] for k, v in request.query.items()}
        links = [{"href": f"{request.path}?{urlencode(query)}", "rel": "self", "method": "GET"}]
        if page < total_pages:
            query["page"] = str(page + 1)
            links.append(
                {"href": f"{request.path}?{urlencode(query)}", "rel": "next", "method": "GET"}
            )
        tail["links"] = links
        return b'{"' + key.encode() + b'":[' + b",".join(chosen) + b"]," + orjson.dumps(tail)[1:]

    def _product_details_reply(self, request: Request) -> Response:
        wanted = request.path.rsplit("/", 1)[1]
        data = self.data("show_product_details")
        position = self._index("product_positions", data, self._positions).get(wanted)
        if position is None:
            raise Refusal(404, "RESOURCE_NOT_FOUND", f"Product {wanted} was not found")
        return Response(200, data.rows[position])

    def _disputes(self, request: Request) -> Response:
        default, maximum = PAGE_SIZES["list_disputes"]
        size = _int_param(request, "page_size", default, 1, maximum)
        data = self.data("list_disputes")
        rows = data.rows
        after = request.arg("update_time_after")
        if after:
            since = parse_time(after, "update_time_after")
            times = self._index("dispute_times", data, self._times_of("update_time"))
            rows = [row for row, ts in zip(rows, times, strict=True) if ts >= since]
        token = request.arg("next_page_token")
        offset = 0
        if token is not None:
            with self._lock:
                known = self._dispute_tokens.get(token)
            if known is None:
                self._violation(request, f"a next_page_token the API never gave: {token!r}")
                raise Refusal(400, "INVALID_REQUEST", "next_page_token is not valid")
            offset = known
        chosen = rows[offset : offset + size]
        links = [{"href": DISPUTES, "rel": "self", "method": "GET"}]
        if offset + size < len(rows):
            following = self._new_token(offset + size)
            query = {"page_size": str(size), "next_page_token": following}
            if after:
                query["update_time_after"] = after
            links.append({"href": f"{DISPUTES}?{urlencode(query)}", "rel": "next", "method": "GET"})
        body = b'{"items":[' + b",".join(chosen) + b"]," + orjson.dumps({"links": links})[1:]
        return Response(200, body)

    def _new_token(self, offset: int) -> str:
        """An opaque token for ``offset``: it says nothing a client could compute."""
        with self._lock:
            raw = f"{self.seed}:{len(self._dispute_tokens)}:{offset}".encode()
            token = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:18]).decode()
            self._dispute_tokens[token] = offset
        return token

    def _invoices(self, request: Request) -> Response:
        try:
            search = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            raise Refusal(400, "INVALID_REQUEST", "Request body is not well-formed JSON") from None
        if not isinstance(search, dict):
            raise Refusal(400, "INVALID_REQUEST", "Request body must be a JSON object")
        default, maximum = PAGE_SIZES["search_invoices"]
        size = _int_param(request, "page_size", default, 1, maximum)
        page = _int_param(request, "page", 1, 1, 10**9)
        data = self.data("search_invoices")
        rows = data.rows
        span = search.get("creation_date_range")
        if span is not None:
            if not isinstance(span, dict):
                raise Refusal(400, "INVALID_REQUEST", "creation_date_range must be an object")
            low = (
                parse_time(span.get("start"), "creation_date_range.start")
                if span.get("start")
                else -math.inf
            )
            high = (
                parse_time(span.get("end"), "creation_date_range.end")
                if span.get("end")
                else math.inf
            )
            times = self._index("invoice_times", data, _invoice_times)
            rows = [row for row, ts in zip(rows, times, strict=True) if low <= ts <= high]
        return Response(200, self._numbered(request, rows, page, size, "items"))

    def _payments(self, request: Request) -> Response:
        default, maximum = PAGE_SIZES["list_payments"]
        count = _int_param(request, "count", default, 1, maximum)
        data = self.data("list_payments")
        start = 0
        start_id = request.arg("start_id")
        if start_id:
            position = self._index("payment_positions", data, self._positions).get(start_id)
            if position is None:
                raise Refusal(400, "INVALID_REQUEST", f"start_id {start_id} is not a payment")
            start = position
        chosen = data.rows[start : start + count]
        reply: dict[str, Any] = {"count": len(chosen)}
        if start + count < len(data.rows):
            reply["next_id"] = orjson.loads(data.rows[start + count])["id"]
        return Response(200, b'{"payments":[' + b",".join(chosen) + b"]," + orjson.dumps(reply)[1:])


def _invoice_times(data: StreamData) -> list[float]:
    return [
        parse_time(orjson.loads(row)["detail"]["metadata"]["create_time"], "create_time")
        for row in data.rows
    ]


def _never_null(schema: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``schema`` whose objects at ``paths`` are generated, never null."""
    out = orjson.loads(orjson.dumps(schema))
    for path in paths:
        node = out
        for part in path.split("."):
            node = node["properties"][part]
        node["type"] = "object"
    return out


def _list_entries(data: StreamData) -> StreamData:
    keep = ("id", "name", "description", "create_time", "links")
    rows = []
    for row in data.rows:
        product = orjson.loads(row)
        rows.append(compact_dumps({k: product[k] for k in keep}))
    return StreamData(rows, data.times, data.next_index, data.last_ts)


def _debug_id(message: str) -> str:
    return hashlib.sha256(message.encode()).hexdigest()[:13]
