"""The inventory API (seed 000), per the "inventory" section of api-contracts.md.

OAuth2 refresh-token grant at ``/oauth/v2/token`` (form body only; the real token URL
lives on another host, the sandbox serves it beside the API), ``Authorization: Bearer``
on every data request, an optional ``organization_id`` that every data request but
``/organizations`` must carry, ``page``/``per_page`` paging that says
``page_context.has_more_page``, and one unpaged list (``/settings/warehouses``, which
refuses ``page``). ``/items`` filters on ``last_modified_time`` (modified at or after).

Ids are numeric strings and timestamps are written in the organization's zone without a
colon (``2024-03-05T12:06:10+0530``), as the vendor does. The lists are sized to exercise
paging: items 450 (two full pages and a short one), contacts 400 (a page multiple: the
second page is full and still the last), sales_orders exactly one page of 200,
item_adjustments and credit_notes empty.

A request for the page after one that said ``has_more_page: false`` is a contract
violation (a tap that asks for it cannot know when to stop): it is answered as the real
API answers it, with an empty list, and logged in :attr:`InventoryApi.violations`.
The rate limit (100 requests a calendar minute) is a fault, off unless switched on:
``Fault("rate_limit", api="inventory", per_second=100, window=60, fixed_window=True)``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

from api_sandbox.datagen import (
    EPOCH_END,
    Ctx,
    StreamData,
    StreamSpec,
    company_name,
    cycle_field,
    iso,
    load_fields,
    pick,
)
from api_sandbox.engine import Api, ApiError, Request, Response, Route, TokenIssuer

CLIENT_ID = "1000.SANDBOXINVENTORYCLIENT"
CLIENT_SECRET = "sandbox-inventory-client-secret"
REFRESH_TOKEN = "1000.sandbox-inventory-refresh-token"
TOKEN_PATH = "/oauth/v2/token"
MAX_PER_PAGE = 200
#: The organization's zone: every timestamp is written in it, ``+0530`` with no colon.
OFFSET_SECONDS = 5 * 3600 + 30 * 60
OFFSET_TEXT = "+0530"
#: Edits and records made by ``mutate`` are stamped from this logical clock (an hour a
#: call), after every generated ``last_modified_time``: deterministic, unlike "now".
MUTATION_CLOCK_START = EPOCH_END + 180 * 86400

#: (stream, path, selector, primary key, initial count, paged) as the contract lists them.
STREAMS = (
    ("items", "/items", "items", "item_id", 450, True),
    ("item_groups", "/itemgroups", "itemgroups", "group_id", 30, True),
    ("organizations", "/organizations", "organizations", "organization_id", 2, True),
    ("contacts", "/contacts", "contacts", "contact_id", 400, True),
    (
        "item_adjustments",
        "/inventoryadjustments",
        "inventory_adjustments",
        "inventory_adjustment_id",
        0,
        True,
    ),
    ("warehouses", "/settings/warehouses", "warehouses", "warehouse_id", 3, False),
    ("transfer_orders", "/transferorders", "transfer_orders", "transfer_order_id", 12, True),
    ("sales_orders", "/salesorders", "salesorders", "salesorder_id", 200, True),
    ("packages", "/packages", "packages", "package_id", 60, True),
    ("invoices", "/invoices", "invoices", "invoice_id", 250, True),
    ("purchase_orders", "/purchaseorders", "purchaseorders", "purchaseorder_id", 40, True),
    ("credit_notes", "/creditnotes", "creditnotes", "creditnote_id", 0, True),
    ("users", "/users", "users", "user_id", 5, True),
)
#: Lists that take the ``last_modified_time`` filter.
MODIFIED_SINCE = frozenset({"items"})
#: Foreign ids that point at records of another list (field -> list).
REFERENCES = {
    "item_id": "items",
    "group_id": "item_groups",
    "warehouse_id": "warehouses",
    "from_warehouse_id": "warehouses",
    "to_warehouse_id": "warehouses",
    "customer_id": "contacts",
    "vendor_id": "contacts",
    "salesorder_id": "sales_orders",
    "created_by_id": "users",
    "last_modified_by_id": "users",
    "salesperson_id": "users",
}
STATUSES = {
    "items": ("active", "inactive"),
    "item_groups": ("active", "inactive"),
    "contacts": ("active", "inactive"),
    "item_adjustments": ("adjusted", "draft"),
    "warehouses": ("active", "inactive"),
    "transfer_orders": ("draft", "in_transit", "transferred"),
    "sales_orders": ("draft", "confirmed", "fulfilled", "void"),
    "packages": ("not_shipped", "shipped", "delivered"),
    "invoices": ("draft", "sent", "overdue", "paid", "void"),
    "purchase_orders": ("draft", "issued", "billed", "cancelled"),
    "credit_notes": ("open", "closed", "void"),
    "users": ("active", "inactive", "invited"),
}
#: The API's own error codes (0 is success; these are what its replies carry).
ERROR_CODES = {400: 2, 401: 57, 404: 5, 405: 37, 429: 44}


def zoned(ts: float) -> str:
    """``2024-03-05T12:06:10+0530``: epoch seconds in the organization's zone."""
    return iso(int(ts) + OFFSET_SECONDS)[:-1] + OFFSET_TEXT


def parse_zoned(value: str, name: str) -> float:
    """Epoch seconds of a timestamp with ``+0530``, ``+05:30`` or ``Z`` (400 otherwise)."""
    text = value.strip().replace(" ", "+")  # an unencoded "+" arrives as a space
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"Invalid value passed for {name}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _kind(schema: Mapping[str, Any]) -> tuple[str, bool]:
    raw = schema.get("type", "string")
    types = [raw] if isinstance(raw, str) else list(raw)
    return next((t for t in types if t != "null"), "null"), "null" in types


def _positive_int(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"Invalid value passed for {name}")
    return int(raw)


class InventoryApi(Api):
    """The inventory API: refresh-token OAuth, page numbers, ``organization_id``."""

    name = "inventory"

    def __init__(
        self,
        seed: int,
        records: int | None = None,
        counts: Mapping[str, int] | None = None,
        *,
        organization_id: str | None = None,
        token_lifetime: int = 3600,
    ) -> None:
        #: When set, every data request but ``/organizations`` must name this organization.
        self.organization_id = organization_id
        self.token_issuer = TokenIssuer(self.name, seed, token_lifetime)
        #: Requests that broke the contract (a page after the last), for tests to read.
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._revoked_refresh_tokens: set[str] = set()
        self._clock = MUTATION_CLOCK_START
        self._modified_times: dict[str, tuple[StreamData, list[float]]] = {}
        self._stream_no = {row[0]: n for n, row in enumerate(STREAMS, start=1)}
        super().__init__(seed, records, counts)

    # -- data ------------------------------------------------------------------------------

    def record_id(self, stream: str, index: int) -> str:
        """The numeric id of the ``index``-th record made for ``stream`` (0 = oldest)."""
        return f"4815{self._stream_no[stream]:02d}{index:010d}"

    def stream_specs(self) -> list[StreamSpec]:
        fields = load_fields(self.name)
        return [
            self._spec(name, fields[name], key, count, paged)
            for name, _path, _selector, key, count, paged in STREAMS
        ]

    def _spec(
        self, stream: str, schema: dict[str, Any], key: str, count: int, paged: bool
    ) -> StreamSpec:
        props = schema["properties"]
        overrides: dict[str, Callable[[Ctx], Any]] = self._id_overrides(schema, "")
        overrides[key] = lambda c: self.record_id(stream, c.index)
        if "created_time" in props:
            overrides["created_time"] = lambda c: zoned(c.ts)
            overrides["last_modified_time"] = lambda c: self._last_modified(stream, c)
        if "status" in props and stream in STATUSES:
            overrides["status"] = lambda c: pick(c.rng, STATUSES[stream])
        if "custom_fields" in props and props["custom_fields"].get("items") == {}:
            overrides["custom_fields"] = _custom_fields
        if stream == "item_groups":
            overrides["is_taxable"] = lambda c: pick(c.rng, (0, 1))  # a number in list replies
        if stream == "organizations":
            overrides["organization_id"] = self._organization_id
            overrides["name"] = lambda c: company_name(c.rng)
            overrides["time_zone"] = lambda c: "Asia/Calcutta"
            overrides["is_default_org"] = lambda c: c.index == 0
        if stream == "contacts":
            overrides["contact_type"] = lambda c: pick(c.rng, ("customer", "vendor"))
        if stream == "warehouses":
            overrides["is_primary"] = lambda c: c.index == 0
        if stream == "users":
            overrides["user_role"] = lambda c: pick(c.rng, ("admin", "staff", "timesheetstaff"))
        statuses = STATUSES.get(stream)
        return StreamSpec(
            stream,
            schema,
            count,
            paginated=paged,
            overrides=overrides,
            modify=self._modifier(statuses),
            time_field="created_time" if "created_time" in props else None,
            id_field=key,
        )

    def _id_overrides(self, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Numeric-string ids for every ``*_id`` text field, at every level."""
        out: dict[str, Any] = {}
        for name, sub in schema.get("properties", {}).items():
            where = f"{path}.{name}" if path else name
            kind, nullable = _kind(sub)
            if kind == "string" and name.endswith("_id"):
                out[where] = self._id_maker(REFERENCES.get(name), nullable)
            elif kind == "object":
                out.update(self._id_overrides(sub, where))
            elif kind == "array" and _kind(sub.get("items", {}))[0] == "object":
                out.update(self._id_overrides(sub["items"], where + "[]"))
        return out

    def _id_maker(self, target: str | None, nullable: bool) -> Callable[[Ctx], str | None]:
        def make(c: Ctx) -> str | None:
            if nullable and c.rng.random() < 0.1:
                return None
            if target is not None:
                count = self.generator(target).spec.count
                if count:
                    return self.record_id(target, int(c.rng.random() * count))
                if nullable:
                    return None
            return str(460_000_000_000_000 + c.rng.getrandbits(40))

        return make

    def _organization_id(self, c: Ctx) -> str:
        if c.index == 0 and self.organization_id:
            return self.organization_id
        return str(60_000_000 + c.index * 7919)

    def _last_modified(self, stream: str, c: Ctx) -> str:
        """Up to 90 days after creation; a record made by ``mutate`` is stamped now."""
        if c.index >= self.generator(stream).spec.count:
            return zoned(self._clock)
        return zoned(c.ts + int(c.rng.random() * 90 * 86400))

    def _modifier(self, statuses: tuple[str, ...] | None) -> Callable[[dict, Any], None]:
        cycle = cycle_field("status", statuses) if statuses else None

        def modify(record: dict[str, Any], rng: Any) -> None:
            if cycle is not None:
                cycle(record, rng)
            elif "name" in record:
                record["name"] = f"{record['name']} (renamed)"
            if "last_modified_time" in record:
                record["last_modified_time"] = zoned(self._clock)

        return modify

    def mutate(self, stream: str, new: int = 0, modified: int = 0) -> list[str]:
        """Edit and create records, stamping them an hour after the previous mutation."""
        with self._lock:
            self._clock += 3600
        return super().mutate(stream, new, modified)

    def revoke_refresh_token(self, token: str = REFRESH_TOKEN) -> None:
        """Revoke ``token``: the grant then answers 400 ``invalid_grant``."""
        with self._lock:
            self._revoked_refresh_tokens.add(token)

    def _modified_since(self, stream: str, data: StreamData, since: float) -> list[bytes]:
        """The rows whose ``last_modified_time`` is at or after ``since``, in list order."""
        cached = self._modified_times.get(stream)
        if cached is None or cached[0] is not data:
            times = [
                parse_zoned(orjson.loads(row)["last_modified_time"], "last_modified_time")
                for row in data.rows
            ]
            cached = self._modified_times[stream] = (data, times)
        return [row for row, ts in zip(data.rows, cached[1], strict=True) if ts >= since]

    # -- API surface -----------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "token_url": "{base_url}" + TOKEN_PATH,
        }

    def error_body(self, status: int, message: str) -> bytes:
        return orjson.dumps({"code": ERROR_CODES.get(status, 1), "message": message})

    def authenticate(self, request: Request) -> Response | None:
        if not self.token_issuer.valid(request.bearer()):
            return self.error(401, "You are not authorized to perform this operation")
        if self.organization_id and request.path != "/organizations":
            given = request.arg("organization_id")
            if not given:
                return self.error(400, "organization_id is required for this request")
            if given != self.organization_id:
                return self.error(
                    400, f"This user is not associated with the organization_id {given}"
                )
        return None

    def routes(self) -> list[Route]:
        routes = [Route("POST", TOKEN_PATH, self._token, data=False)]
        for stream, path, selector, _key, _count, paged in STREAMS:
            handler = self._paged if paged else self._one_page
            routes.append(Route("GET", path, handler(stream, path, selector)))
        return routes

    def _token(self, request: Request) -> Response:
        """The refresh-token grant, with the statuses and bodies of RFC 6749 section 5.2."""
        in_query = sorted({"client_id", "client_secret", "refresh_token"} & set(request.query))
        if in_query:
            return _oauth_error(
                400, "invalid_request", f"{', '.join(in_query)} must be sent in the request body"
            )
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type.lower() != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "expected a form-encoded body")
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "grant_type must be refresh_token")
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return _oauth_error(401, "invalid_client", "client authentication failed")
        token = form.get("refresh_token")
        if token != REFRESH_TOKEN or token in self._revoked_refresh_tokens:
            return _oauth_error(400, "invalid_grant", "the refresh token is invalid or revoked")
        return Response(200, orjson.dumps(self.token_issuer.issue()))

    def _paged(self, stream: str, path: str, selector: str) -> Callable[[Request], Response]:
        head = b'{"code":0,"message":"success","' + selector.encode() + b'":['
        since_filter = stream in MODIFIED_SINCE

        def handler(request: Request) -> Response:
            page = _positive_int(request, "page", 1)
            per_page = min(_positive_int(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
            data = self.data(stream)
            rows = data.rows
            since = request.arg("last_modified_time") if since_filter else None
            if since:
                rows = self._modified_since(stream, data, parse_zoned(since, "last_modified_time"))
            last_page = max(1, -(-len(rows) // per_page))
            if page > last_page:
                note = (
                    f"page {page} asked after page {last_page} said has_more_page false "
                    f"(per_page {per_page})"
                )
                with self._lock:
                    self.violations.append(f"{path}: {note}")
                print(f"api_sandbox: inventory {path}: {note}", file=sys.stderr)
            start = (page - 1) * per_page
            chunk = rows[start : start + per_page]
            context = {
                "page": page,
                "per_page": per_page,
                "has_more_page": start + per_page < len(rows),
                "sort_column": "created_time",
                "sort_order": "D",
            }
            tail = b'],"page_context":' + orjson.dumps(context) + b"}"
            return Response(200, head + b",".join(chunk) + tail)

        return handler

    def _one_page(self, stream: str, path: str, selector: str) -> Callable[[Request], Response]:
        """A list that is one page: paging parameters are refused, not ignored."""
        head = b'{"code":0,"message":"success","' + selector.encode() + b'":['

        def handler(request: Request) -> Response:
            for name in ("page", "per_page"):
                if name in request.query:
                    raise ApiError(400, f"{name} is not a valid parameter for {path}")
            return Response(200, head + b",".join(self.data(stream).rows) + b"]}")

        return handler


def _oauth_error(status: int, error: str, description: str) -> Response:
    body = orjson.dumps({"error": error, "error_description": description})
    headers = [("WWW-Authenticate", 'Bearer error="invalid_client"')] if status == 401 else []
    return Response(status, body, headers)


def _custom_fields(c: Ctx) -> list[dict[str, Any]]:
    return [
        {"index": j + 1, "label": pick(c.rng, ("Bin", "Season", "Supplier ref")), "value": str(j)}
        for j in range(int(c.rng.random() * 3))
    ]
