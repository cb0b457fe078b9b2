"""The invoicing API (seed 002), per the "invoicing" section of api-contracts.md.

One endpoint, ``POST /api.php``, HTTP Basic (``username``, the API key as password). The
JSON body says what to read: ``SERVICE`` picks the list, ``LIMIT`` (at most 100) and
``OFFSET`` page it, ``FILTER`` narrows invoice.get and revenue.get by invoice date. There
is no total: a page shorter than ``LIMIT`` is the last. Errors (unknown service, bad
filter, a body that is not JSON) come back as HTTP 200 with
``{"RESPONSE":{"ERRORS":[...]}}``; only bad credentials get a real status (401).

Values are the vendor's mix: upper-case keys, most values strings, amounts numbers,
``IS_CANCELED`` "0"/"1", an article's ``UNIT_PRICE`` a string, timestamps as
``2024-01-31 12:00:00`` with ``0000-00-00 00:00:00`` for an unset one. The lists are sized
to exercise paging: invoices 250 (two full pages and a short one), customers 200 (an exact
multiple of 100, and every column text: the target-duckdb trap), revenues empty.
"""

from __future__ import annotations

import base64
import binascii
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

import orjson

from api_sandbox.datagen import (
    CITIES,
    COMPANY_SUFFIXES,
    COMPANY_WORDS,
    COUNTRIES,
    FIRST_NAMES,
    LAST_NAMES,
    STREETS,
    Ctx,
    StreamSpec,
    compile_schema,
    cycle_field,
    iso_date,
    load_fields,
    pick,
    sentence,
    stable_seed,
)
from api_sandbox.engine import Api, Request, Response, Route

USERNAME = "sandbox-invoicing-user"
API_KEY = "sandbox-invoicing-key"
PATH = "/api.php"
MAX_LIMIT = 100

#: stream -> (SERVICE, reply key), in the order the contract lists them.
SERVICES = {
    "invoices": ("invoice.get", "INVOICES"),
    "recurring_invoices": ("recurring.get", "INVOICES"),
    "products": ("article.get", "ARTICLES"),
    "revenues": ("revenue.get", "REVENUES"),
    "customers": ("customer.get", "CUSTOMERS"),
}
#: Services that take FILTER START_DATE / END_DATE (the invoice date).
DATE_FILTERED = frozenset({"invoice.get", "revenue.get"})
#: Paging parameters that belong in the body; seen in the query string they are a violation.
PAGING_NAMES = frozenset({"LIMIT", "OFFSET", "limit", "offset"})

COUNTS = {
    "invoices": 250,
    "recurring_invoices": 12,
    "products": 37,
    "revenues": 0,
    "customers": 200,
}
#: Numeric id ranges, so ids of different lists never look alike.
ID_BASE = {
    "invoices": 1_000_000,
    "recurring_invoices": 2_000_000,
    "products": 3_000_000,
    "revenues": 4_000_000,
    "customers": 5_000_000,
}
UNSET = "0000-00-00 00:00:00"

VAT_RATES = (19.0, 19.0, 7.0, 0.0)
UNITS = ("piece", "hour", "day", "month", "flat")
FREQUENCIES = ("weekly", "monthly", "monthly", "3 months", "yearly")
SALUTATIONS = ("mr", "mrs", "", "family")


def text_time(ts: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC: the vendor's timestamp text (not ISO 8601)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(ts)))


def _amount(rng: Any, low: float, high: float) -> float:
    return round(low + rng.random() * (high - low), 2)


def _maybe(c: Ctx, value: Any, rate: float = 0.12) -> Any:
    return None if c.rng.random() < rate else value


def _digits(c: Ctx, n: int) -> str:
    return "".join(str(int(c.rng.random() * 10)) for _ in range(n))


def _company(c: Ctx) -> str:
    return f"{pick(c.rng, COMPANY_WORDS)} {pick(c.rng, COMPANY_SUFFIXES)}"


def _address_fields() -> dict[str, Callable[[Ctx], Any]]:
    """Person and address fields shared by documents and customers."""
    return {
        "SALUTATION": lambda c: pick(c.rng, SALUTATIONS),
        "FIRST_NAME": lambda c: pick(c.rng, FIRST_NAMES),
        "LAST_NAME": lambda c: pick(c.rng, LAST_NAMES),
        "ORGANIZATION": lambda c: _maybe(c, _company(c), 0.2),
        "ADDRESS": lambda c: f"{int(c.rng.random() * 200) + 1} {pick(c.rng, STREETS)}",
        "ADDRESS_2": lambda c: _maybe(c, f"Suite {int(c.rng.random() * 90) + 10}", 0.7),
        "ZIPCODE": lambda c: str(int(c.rng.random() * 90000) + 10000),
        "CITY": lambda c: pick(c.rng, CITIES),
        "COUNTRY_CODE": lambda c: pick(c.rng, COUNTRIES),
        "CURRENCY_CODE": lambda c: pick(c.rng, ("EUR", "EUR", "USD", "GBP")),
        "VAT_ID": lambda c: _maybe(c, "DE" + _digits(c, 9), 0.4),
        "PAYMENT_TYPE": lambda c: pick(c.rng, ("1", "2", "3", "4", "5", "6")),
        "DAYS_FOR_PAYMENT": lambda c: pick(c.rng, ("7", "14", "30")),
        "BANK_NAME": lambda c: _maybe(c, pick(c.rng, ("First Bank", "Harbor Bank")), 0.5),
        "BANK_ACCOUNT_NUMBER": lambda c: _maybe(c, _digits(c, 10), 0.5),
        "BANK_CODE": lambda c: _maybe(c, _digits(c, 8), 0.5),
        "BANK_ACCOUNT_OWNER": lambda c: _maybe(c, f"{pick(c.rng, LAST_NAMES)} Holdings", 0.5),
        "BANK_IBAN": lambda c: _maybe(c, "DE" + _digits(c, 20), 0.5),
        "BANK_BIC": lambda c: _maybe(c, "MARKDEF1" + _digits(c, 3), 0.5),
    }


class InvoicingApi(Api):
    """The invoicing API: one POST endpoint dispatching on ``SERVICE``, paging in the body."""

    name = "invoicing"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Requests that broke the contract (paging in the query string), for tests to read.
        self.violations: list[str] = []
        self._violations_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    # -- data ------------------------------------------------------------------------------

    def stream_specs(self) -> list[StreamSpec]:
        fields = load_fields(self.name)
        return [
            self._document_spec("invoices", fields["invoices"]),
            self._document_spec("recurring_invoices", fields["recurring_invoices"]),
            StreamSpec(
                "products",
                fields["products"],
                COUNTS["products"],
                paginated=True,
                overrides={
                    "ARTICLE_ID": lambda c: str(ID_BASE["products"] + c.index),
                    "ARTICLE_NUMBER": lambda c: f"A-{c.index + 1:04d}",
                    "TITLE": lambda c: sentence(c.rng, 2, 5).rstrip("."),
                    "UNIT": lambda c: pick(c.rng, UNITS),
                    "UNIT_PRICE": lambda c: f"{_amount(c.rng, 1, 900):.2f}",
                    "CURRENCY_CODE": lambda c: "EUR",
                    "VAT_PERCENT": lambda c: f"{pick(c.rng, VAT_RATES):.2f}",
                    "IS_GROSS": lambda c: int(c.rng.random() < 0.3),
                    "TAGS": lambda c: _maybe(
                        c, pick(c.rng, ("service", "hardware", "license")), 0.4
                    ),
                },
                modify=cycle_field("UNIT", UNITS),
                time_field=None,
                id_field="ARTICLE_ID",
            ),
            self._document_spec("revenues", fields["revenues"]),
            StreamSpec(
                "customers",
                fields["customers"],
                COUNTS["customers"],
                paginated=True,
                overrides={
                    **_address_fields(),
                    "CUSTOMER_ID": lambda c: str(ID_BASE["customers"] + c.index),
                    "CUSTOMER_NUMBER": lambda c: f"K{c.index + 1:05d}",
                    "CUSTOMER_TYPE": lambda c: pick(c.rng, ("business", "business", "consumer")),
                    "CUSTOMER_ACCOUNT": lambda c: _maybe(c, str(10000 + c.index), 0.3),
                    "TOP": lambda c: pick(c.rng, ("0", "0", "1")),
                    "POSITION": lambda c: _maybe(c, pick(c.rng, ("CEO", "CFO", "Buyer")), 0.5),
                    "ACADEMIC_DEGREE": lambda c: _maybe(c, pick(c.rng, ("Dr.", "Prof.")), 0.8),
                    "SECONDARY_ADDRESS": lambda c: _maybe(c, sentence(c.rng, 2, 5), 0.7),
                    "PHONE": lambda c: "+49 30 " + _digits(c, 7),
                    "PHONE_2": lambda c: _maybe(c, "+49 30 " + _digits(c, 7), 0.7),
                    "FAX": lambda c: _maybe(c, "+49 30 " + _digits(c, 7), 0.8),
                    "MOBILE": lambda c: _maybe(c, "+49 170 " + _digits(c, 7), 0.4),
                    "EMAIL": lambda c: f"customer{c.index}@example.com",
                    "WEBSITE": lambda c: _maybe(c, f"https://customer{c.index}.example.com", 0.5),
                    "SHOW_PAYMENT_NOTICE": lambda c: pick(c.rng, ("0", "1")),
                    "BANK_ACCOUNT_MANDATE_REFERENCE": lambda c: _maybe(c, f"M-{c.index:06d}", 0.6),
                    "NEWSLETTER_OPTIN": lambda c: pick(c.rng, ("0", "1")),
                    "DOCUMENT_HISTORY_URL": lambda c: (
                        f"https://invoicing.example.com/history/{ID_BASE['customers'] + c.index}"
                    ),
                    "TAGS": lambda c: _maybe(c, pick(c.rng, ("vip", "wholesale", "retail")), 0.5),
                    "CREATED": lambda c: text_time(c.ts),
                    "LASTUPDATE": self._last_update,
                },
                modify=cycle_field("CUSTOMER_TYPE", ("business", "consumer")),
                id_field="CUSTOMER_ID",
            ),
        ]

    @staticmethod
    def _last_update(c: Ctx) -> str:
        """Some records were never edited: the vendor writes the zero date for them."""
        if c.rng.random() < 0.05:
            return UNSET
        return text_time(c.ts + int(c.rng.random() * 90 * 86400))

    def _customer_ref(self, c: Ctx) -> tuple[str, str] | None:
        count = self.generator("customers").spec.count
        if count == 0 or c.rng.random() < 0.05:
            return None
        index = int(c.rng.random() * count)
        return str(ID_BASE["customers"] + index), f"K{index + 1:05d}"

    def _document_spec(self, name: str, schema: dict[str, Any]) -> StreamSpec:
        """invoices, recurring_invoices and revenues: one document shape, amounts that add up."""
        base_id = ID_BASE[name]

        def item(c: Ctx, j: int) -> dict[str, Any]:
            rng = c.rng
            quantity = float(pick(rng, (1, 1, 2, 3, 5, 10)))
            price = _amount(rng, 5, 800)
            vat = pick(rng, VAT_RATES)
            net = round(quantity * price, 2)
            vat_value = round(net * vat / 100, 2)
            category: Any = pick(rng, (None, "consulting", ["consulting", "travel"]))
            category_id: Any = pick(rng, (None, 3, "7", [3, 7]))
            return {
                "INVOICE_ITEM_ID": (base_id + c.index) * 10 + j,
                "ARTICLE_NUMBER": _maybe(c, f"A-{int(rng.random() * 37) + 1:04d}", 0.3),
                "DESCRIPTION": sentence(rng, 2, 5),
                "QUANTITY": quantity,
                "UNIT_PRICE": price,
                "VAT_PERCENT": vat,
                "VAT_VALUE": vat_value,
                "COMPLETE_NET": net,
                "COMPLETE_GROSS": round(net + vat_value, 2),
                "CATEGORY": category,
                "CATEGORY_ID": category_id,
                "SORT_ORDER": j + 1,
            }

        def paid(c: Ctx) -> bool:
            return ((c.index * 7 + 3) % 10) < 6  # 60% paid, spread evenly

        overrides: dict[str, Callable[[Ctx], Any]] = {
            **_address_fields(),
            "INVOICE_ID": lambda c: str(base_id + c.index),
            "TYPE": lambda c: pick(c.rng, ("outgoing", "outgoing", "outgoing", "draft", "credit")),
            "CUSTOMER_COSTCENTER_ID": lambda c: pick(c.rng, ("0", "0", "12")),
            "PROJECT_ID": lambda c: _maybe(c, str(int(c.rng.random() * 50) + 1), 0.6),
            "CONTACT_ID": lambda c: _maybe(c, str(int(c.rng.random() * 500) + 1), 0.6),
            "SUBSCRIPTION_ID": lambda c: _maybe(c, str(int(c.rng.random() * 80) + 1), 0.8),
            "AFFILIATE": lambda c: _maybe(c, _company(c), 0.9),
            "TEMPLATE_ID": lambda c: pick(c.rng, ("1", "1", "2")),
            "INVOICE_NUMBER": lambda c: f"RE-{iso_date(c.ts)[:4]}-{c.index + 1:05d}",
            "PAID_DATE": lambda c: text_time(c.ts + 10 * 86400) if paid(c) else UNSET,
            "IS_CANCELED": lambda c: "1" if c.rng.random() < 0.08 else "0",
            "INVOICE_DATE": lambda c: iso_date(c.ts),
            "DUE_DATE": lambda c: iso_date(c.ts + 14 * 86400),
            "DELIVERY_DATE": lambda c: _maybe(c, iso_date(c.ts), 0.3),
            "SERVICE_PERIOD_START": lambda c: _maybe(c, iso_date(c.ts - 30 * 86400), 0.5),
            "SERVICE_PERIOD_END": lambda c: _maybe(c, iso_date(c.ts), 0.5),
            "CASH_DISCOUNT_PERCENT": lambda c: pick(c.rng, ("0", "0", "2")),
            "CASH_DISCOUNT_DAYS": lambda c: pick(c.rng, ("0", "0", "10")),
            "VAT_CASE": lambda c: pick(c.rng, ("1", "1", "2")),
            "ITEMS": lambda c: [item(c, j) for j in range(1 + int(c.rng.random() * 3))],
            "DOCUMENT_URL": lambda c: f"https://invoicing.example.com/doc/{base_id + c.index}.pdf",
            "LASTUPDATE": self._last_update,
            # Filled from ITEMS below.
            "SUB_TOTAL": _none,
            "VAT_TOTAL": _none,
            "TOTAL": _none,
            "VAT_ITEMS": _none,
            "PAYMENTS": _none,
            "CUSTOMER_ID": _none,
            "CUSTOMER_NUMBER": _none,
        }
        if name == "recurring_invoices":
            overrides.update(
                {
                    "START_DATE": lambda c: iso_date(c.ts),
                    "FREQUENCY": lambda c: pick(c.rng, FREQUENCIES),
                    "OCCURENCES": lambda c: pick(c.rng, ("0", "0", "12", "24")),
                    "OUTPUT_TYPE": lambda c: pick(c.rng, ("draft", "outgoing")),
                    "EMAIL_NOTIFY": lambda c: pick(c.rng, ("0", "1")),
                }
            )
        body = compile_schema(schema, overrides, stable_seed(self.seed, self.name, name, "pool"))

        def document(c: Ctx) -> dict[str, Any]:
            record = body(c)
            items = record["ITEMS"]
            net = round(sum(i["COMPLETE_NET"] for i in items), 2)
            rates: dict[float, list[float]] = {}
            for i in items:
                group = rates.setdefault(i["VAT_PERCENT"], [0.0, 0.0])
                group[0] += i["COMPLETE_NET"]
                group[1] += i["VAT_VALUE"]
            vat = round(sum(i["VAT_VALUE"] for i in items), 2)
            record["SUB_TOTAL"] = net
            record["VAT_TOTAL"] = vat
            record["TOTAL"] = round(net + vat, 2)
            record["VAT_ITEMS"] = [
                {"VAT_PERCENT": rate, "COMPLETE_NET": round(n, 2), "VAT_VALUE": round(v, 2)}
                for rate, (n, v) in sorted(rates.items())
            ]
            customer = self._customer_ref(c)
            record["CUSTOMER_ID"], record["CUSTOMER_NUMBER"] = customer or (None, None)
            record["PAYMENTS"] = (
                [
                    {
                        "PAYMENT_ID": str(base_id + c.index + 500_000),
                        "DATE": record["PAID_DATE"],
                        "AMOUNT": f"{record['TOTAL']:.2f}",
                        "CURRENCY_CODE": record["CURRENCY_CODE"],
                        "NOTE": _maybe(c, sentence(c.rng, 2, 5), 0.5),
                        "TYPE": record["PAYMENT_TYPE"],
                    }
                ]
                if record["PAID_DATE"] != UNSET
                else []
            )
            return record

        return StreamSpec(
            name,
            schema,
            COUNTS[name],
            paginated=True,
            overrides={"": document},
            modify=cycle_field("IS_CANCELED", ("0", "1")),
            id_field="INVOICE_ID",
        )

    # -- API surface -----------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"username": USERNAME, "api_key": API_KEY}

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            if user == USERNAME and password == API_KEY:
                return None
        reply = self.error(401, "Unauthorized")
        reply.headers.append(("WWW-Authenticate", 'Basic realm="api"'))
        return reply

    def error_body(self, status: int, message: str) -> bytes:
        return orjson.dumps({"RESPONSE": {"ERRORS": [message]}})

    def routes(self) -> list[Route]:
        return [Route("POST", PATH, self._api)]

    def _refuse(self, request: dict[str, Any], *errors: str) -> Response:
        """The vendor's way to fail: HTTP 200, the errors inside the reply."""
        return Response(
            200, orjson.dumps({"REQUEST": request, "RESPONSE": {"ERRORS": list(errors)}})
        )

    def _api(self, request: Request) -> Response:
        paging_in_query = sorted(PAGING_NAMES & set(request.query))
        if paging_in_query:
            note = f"paging in the query string ({', '.join(paging_in_query)}); it is ignored"
            with self._violations_lock:
                self.violations.append(note)
            print(f"api_sandbox: invoicing {PATH}: {note}", file=sys.stderr)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type.lower() != "application/json":
            return self._refuse({}, "Content-Type must be application/json")
        try:
            body = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            return self._refuse({}, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return self._refuse({}, "Request body must be a JSON object")
        service = body.get("SERVICE")
        stream = next((s for s, (svc, _) in SERVICES.items() if svc == service), None)
        if stream is None:
            return self._refuse(body, f"Unknown SERVICE: {service!r}")
        limit = _body_int(body, "LIMIT", MAX_LIMIT)
        offset = _body_int(body, "OFFSET", 0)
        if limit is None or limit < 1:
            return self._refuse(body, "LIMIT must be a positive integer")
        if offset is None or offset < 0:
            return self._refuse(body, "OFFSET must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
        data = self.data(stream)
        start, end = 0, len(data.rows)
        window = self._date_window(body.get("FILTER"), service)
        if isinstance(window, str):
            return self._refuse(body, window)
        if window is not None:
            since, until = window
            if until is not None:
                start = data.count_since(until)
            if since is not None:
                end = data.count_since(since)
        first, last = start + offset, min(start + offset + limit, end)
        rows = b",".join(data.rows[first:last]) if first < last else b""
        key = SERVICES[stream][1]
        head = b'{"REQUEST":' + orjson.dumps(body) + b',"RESPONSE":{"' + key.encode() + b'":['
        return Response(200, head + rows + b"]}}")

    @staticmethod
    def _date_window(filters: Any, service: str) -> tuple[float | None, float | None] | str | None:
        """FILTER START_DATE/END_DATE as epoch bounds [since, until); an error text if bad."""
        if filters in (None, {}, []):  # the vendor's PHP writes an empty object as []
            return None
        if not isinstance(filters, dict):
            return "FILTER must be an object"
        if service not in DATE_FILTERED:
            unknown = ", ".join(sorted(filters))
            return f"Unknown FILTER for {service}: {unknown}"
        unknown = sorted(set(filters) - {"START_DATE", "END_DATE"})
        if unknown:
            return f"Unknown FILTER for {service}: {', '.join(unknown)}"
        bounds: list[float | None] = []
        for name, days in (("START_DATE", 0), ("END_DATE", 1)):
            value = filters.get(name)
            if value is None:
                bounds.append(None)
                continue
            try:
                day = date.fromisoformat(str(value)[:10])
            except ValueError:
                return f"Invalid FILTER {name}: {value!r} (expected YYYY-MM-DD)"
            moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            bounds.append(moment.timestamp() + days * 86400)
        return bounds[0], bounds[1]


def _body_int(body: dict[str, Any], name: str, default: int) -> int | None:
    value = body.get(name, default)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _none(c: Ctx) -> None:
    return None
