"""The rewards API (seed 004), per the "rewards" section of api-contracts.md.

Bearer API key; ten streams under ``/v2/``; four offset-paginated lists (orders, rewards,
invoices, balance_transactions) whose page caps differ, the invoices one sitting below what
the seed asks for; five unpaginated lists that ignore ``offset``/``limit`` (a tap that follows
the seed's paginator would read them again forever); ``members`` served under two stream
names; balance_transactions rows without ``id``, some byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from api_sandbox.datagen import (
    CURRENCIES,
    LAST_NAMES,
    Ctx,
    StreamSpec,
    company_name,
    compile_schema,
    cycle_field,
    email_for,
    iso,
    load_fields,
    make_id,
    money,
    person_name,
    pick,
    sentence,
    stable_seed,
)
from api_sandbox.engine import Api, ApiError, Request, Response, Route

API_KEY = "sandbox-rewards-key"

ORDER_STATUSES = ("EXECUTED", "EXECUTED", "EXECUTED", "PENDING_APPROVAL", "CANCELED", "FAILED")
ORDER_STATUS_CYCLE = ("EXECUTED", "PENDING_APPROVAL", "CANCELED", "FAILED")
DELIVERY_METHODS = ("EMAIL", "LINK", "PHONE")
DELIVERY_STATUSES = ("DELIVERED", "SCHEDULED", "PENDING", "FAILED")
INVOICE_STATUSES = ("PAID", "OPEN", "DELETED")
MEMBER_STATUSES = ("REGISTERED", "INVITED", "DISABLED")
MEMBER_ROLES = ("ADMIN", "MEMBER", "VIEWER", "FINANCE")
ORG_STATUSES = ("APPROVED", "PENDING", "REJECTED")
FUNDING_METHODS = ("balance", "bank_account", "credit_card", "invoice")
FUNDING_STATUSES = ("ACTIVE", "PENDING", "DISABLED")
BALANCE_ACTIONS = ("ORDER", "ORDER", "ORDER", "FUND", "REFUND", "FEE")
PRODUCT_BRANDS = (
    "Amazing Books", "Coffee Corner", "Green Grocer", "Movie Night", "Sky Travel",
    "Game Zone", "Music Box", "Fresh Threads", "Home Goods", "Charity Fund",
)  # fmt: skip


@dataclass(frozen=True)
class Page:
    """How one paginated list answers ``offset``/``limit``."""

    default: int  # limit when the request names none
    maximum: int  # cap applied whatever the request asks
    total_count: bool  # whether the reply carries ``total_count``


PAGES = {
    "orders": Page(100, 500, True),
    "rewards": Page(100, 500, True),
    "invoices": Page(10, 10, True),
    "balance_transactions": Page(10, 100, False),
}

#: (stream, path, selector) in the order the contract lists them.
STREAMS = (
    ("orders", "/v2/orders", "orders"),
    ("products", "/v2/products", "products"),
    ("funding_sources", "/v2/funding_sources", "funding_sources"),
    ("account_members", "/v2/members", "members"),
    ("campaigns", "/v2/campaigns", "campaigns"),
    ("organizations", "/v2/organizations", "organizations"),
    ("balance_transactions", "/v2/balance_transactions", "transactions"),
    ("rewards", "/v2/rewards", "rewards"),
    ("members", "/v2/members", "members"),
    ("invoices", "/v2/invoices", "invoices"),
)

#: Streams that accept ``created_at[gte]``.
SINCE_STREAMS = frozenset({"orders", "balance_transactions"})


def payment(c: Ctx) -> dict[str, Any]:
    """A consistent payment block: total = subtotal + fees - discount."""
    rng = c.rng
    subtotal = money(rng, 5, 500)
    fees = round(subtotal * 0.035, 2) if rng.random() < 0.5 else 0.0
    discount = round(subtotal * 0.1, 2) if rng.random() < 0.15 else 0.0
    currency = pick(rng, CURRENCIES[:3])
    refund = None
    if rng.random() < 0.08:
        refund = {"total": subtotal, "currency_code": currency}
    return {
        "subtotal": subtotal,
        "total": round(subtotal + fees - discount, 2),
        "fees": fees,
        "discount": discount,
        "currency_code": currency,
        "refund": refund,
    }


def parse_timestamp(value: str) -> float:
    """Epoch seconds of an ISO 8601 value (``Z`` or offset; a bare date or time means UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"Invalid created_at[gte]: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _int_arg(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}")
    return value


class RewardsApi(Api):
    """The rewards API: Bearer API key, ``/v2/`` lists, offset pagination on four of them."""

    name = "rewards"

    def stream_specs(self) -> list[StreamSpec]:
        fields = load_fields(self.name)
        seed = self.seed
        reward_item = fields["orders"]["properties"]["rewards"]["items"]
        reward_overrides: dict[str, Callable[[Ctx], Any]] = {
            "value": lambda c: {
                "denomination": float(pick(c.rng, (5, 10, 20, 25, 50, 100, 250))),
                "currency_code": pick(c.rng, CURRENCIES[:3]),
            },
            "recipient": self._recipient,
            "delivery": lambda c: {
                "method": pick(c.rng, DELIVERY_METHODS),
                "status": pick(c.rng, DELIVERY_STATUSES),
            },
            "expires_at": lambda c: None if c.rng.random() < 0.3 else iso(c.ts + 365 * 86400),
        }
        embedded_ids = stable_seed(seed, self.name, "orders.rewards")
        embedded = compile_schema(
            reward_item,
            {**reward_overrides, "id": _none, "order_id": _none, "created_at": _none},
            embedded_ids,
        )

        def order_rewards(c: Ctx) -> list[dict[str, Any]]:
            out = []
            created = iso(c.ts)
            for j in range(2 if c.rng.random() < 0.25 else 1):
                reward = embedded(c)
                reward["id"] = make_id(embedded_ids, c.index * 4 + j, "RW")
                reward["order_id"] = c.id
                reward["created_at"] = created
                out.append(reward)
            return out

        return [
            StreamSpec(
                "orders",
                fields["orders"],
                250,
                paginated=True,
                id_prefix="OR",
                overrides={
                    "external_id": lambda c: None if c.rng.random() < 0.3 else f"EXT-{c.index}",
                    "campaign_id": lambda c: self._ref(c, "campaigns"),
                    "status": lambda c: pick(c.rng, ORDER_STATUSES),
                    "channel": lambda c: pick(c.rng, ("API", "UI", "EMBED", "BULK_UPLOAD")),
                    "payment": payment,
                    "invoice_id": lambda c: self._ref(c, "invoices", 0.6),
                    "rewards": order_rewards,
                },
                modify=cycle_field("status", ORDER_STATUS_CYCLE),
            ),
            StreamSpec(
                "products",
                fields["products"],
                8,
                id_prefix="PR",
                overrides={
                    "name": lambda c: f"{PRODUCT_BRANDS[c.index % len(PRODUCT_BRANDS)]} Card",
                    "currency_codes": lambda c: [pick(c.rng, CURRENCIES[:3])],
                    "skus": lambda c: [{"min": 5.0, "max": float(pick(c.rng, (100, 500, 2000)))}],
                },
                modify=cycle_field("subcategory", ("retail", "dining", "travel")),
                time_field=None,
            ),
            StreamSpec(
                "funding_sources",
                fields["funding_sources"],
                0,
                id_prefix="FS",
                overrides={
                    "method": lambda c: pick(c.rng, FUNDING_METHODS),
                    "status": lambda c: pick(c.rng, FUNDING_STATUSES),
                },
                modify=cycle_field("status", FUNDING_STATUSES),
                time_field=None,
            ),
            self._member_spec("account_members", fields["members"]),
            StreamSpec(
                "campaigns",
                fields["campaigns"],
                4,
                id_prefix="CP",
                overrides={
                    "name": lambda c: (
                        f"{pick(c.rng, ('Spring', 'Summer', 'Holiday'))} "
                        f"{pick(c.rng, ('Thank You', 'Referral', 'Survey'))} {c.index + 1}"
                    ),
                    "products": lambda c: [p for p in (self._ref(c, "products", 0.0),) if p],
                },
                modify=cycle_field("fee_charged_to", ("ORGANIZATION", "RECIPIENT")),
                time_field=None,
            ),
            StreamSpec(
                "organizations",
                fields["organizations"],
                1,
                id_prefix="OG",
                overrides={
                    "name": lambda c: company_name(c.rng),
                    "website": lambda c: f"https://org{c.index}.example.com",
                    "currency_code": lambda c: "USD",
                    "status": lambda c: pick(c.rng, ORG_STATUSES),
                },
                modify=cycle_field("status", ORG_STATUSES),
            ),
            StreamSpec(
                "balance_transactions",
                fields["balance_transactions"],
                30,
                paginated=True,
                overrides={
                    "amount": lambda c: money(c.rng, -500, 500),
                    "currency_code": lambda c: "USD",
                    "balance": lambda c: money(c.rng, 0, 50_000),
                    "action": lambda c: pick(c.rng, BALANCE_ACTIONS),
                    "description": lambda c: sentence(c.rng, 2, 5),
                    "order.id": lambda c: self._ref(c, "orders", 0.0),
                    "order.payment": payment,
                },
                modify=cycle_field("action", ("ORDER", "FUND", "REFUND", "FEE", "ADJUSTMENT")),
                duplicate_every=13,
            ),
            StreamSpec(
                "rewards",
                fields["rewards"],
                20,
                paginated=True,
                id_prefix="RW",
                overrides={**reward_overrides, "order_id": lambda c: self._ref(c, "orders", 0.0)},
                modify=cycle_field("delivery.status", DELIVERY_STATUSES),
            ),
            self._member_spec("members", fields["members"]),
            StreamSpec(
                "invoices",
                fields["invoices"],
                25,
                paginated=True,
                id_prefix="IN",
                overrides={
                    "po_number": lambda c: None if c.rng.random() < 0.4 else f"PO-{c.index:05d}",
                    "amount": lambda c: money(c.rng, 100, 20_000),
                    "currency_code": lambda c: "USD",
                    "currency": lambda c: "USD",
                    "status": lambda c: pick(c.rng, INVOICE_STATUSES),
                    "orders": lambda c: [self._ref(c, "orders", 0.0) for _ in range(2)],
                    "rewards": lambda c: [self._ref(c, "rewards", 0.0) for _ in range(2)],
                    "paid_at": lambda c: None if c.rng.random() < 0.3 else iso(c.ts + 86400 * 7),
                },
                modify=cycle_field("status", INVOICE_STATUSES),
            ),
        ]

    def _member_spec(self, name: str, schema: dict[str, Any]) -> StreamSpec:
        """account_members and members read the same ``/v2/members`` list: one dataset."""

        def name_of(c: Ctx) -> str:
            # email and name are separate fields generated independently: derive both from
            # the record index so that they agree.
            first = FIRST_OF[c.index % len(FIRST_OF)]
            return f"{first} {LAST_OF[(c.index * 7 + self.seed) % len(LAST_OF)]}"

        return StreamSpec(
            name,
            schema,
            12,
            dataset="members",
            id_prefix="MB",
            overrides={
                "email": lambda c: f"{name_of(c).lower().replace(' ', '.')}.{c.index}@example.com",
                "name": name_of,
                "role": lambda c: pick(c.rng, MEMBER_ROLES),
                "status": lambda c: pick(c.rng, MEMBER_STATUSES),
            },
            modify=cycle_field("status", MEMBER_STATUSES),
        )

    @staticmethod
    def _recipient(c: Ctx) -> dict[str, Any] | None:
        if c.rng.random() < 0.05:
            return None
        name = person_name(c.rng)
        phone = None if c.rng.random() < 0.5 else f"+1-555-{int(c.rng.random() * 9e6) + 10**6}"
        return {"name": name, "email": email_for(name, c.rng), "phone": phone}

    def _ref(self, c: Ctx, stream: str, null_rate: float = 0.1) -> str | None:
        """The id of a random existing record of ``stream`` (None sometimes, or if empty)."""
        gen = self.generator(stream)
        count = gen.spec.count
        if count == 0 or c.rng.random() < null_rate:
            return None
        return gen.record_id(int(c.rng.random() * count))

    # -- API surface -----------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"api_key": API_KEY}

    def authenticate(self, request: Request) -> Response | None:
        if request.bearer() == API_KEY:
            return None
        return self.error(401, "Unauthorized")

    def routes(self) -> list[Route]:
        routes: dict[str, Route] = {}
        for stream, path, selector in STREAMS:
            if path not in routes:
                routes[path] = Route("GET", path, self._list_handler(stream, selector))
        return list(routes.values())

    def _list_handler(self, stream: str, selector: str) -> Callable[[Request], Response]:
        head = b'{"' + selector.encode() + b'":['
        page = PAGES.get(stream)
        since = stream in SINCE_STREAMS

        def unpaged(request: Request) -> Response:
            rows = self.data(stream).rows
            return Response(200, head + b",".join(rows) + b"]}")

        def paged(request: Request) -> Response:
            assert page is not None
            data = self.data(stream)
            total = len(data.rows)
            gte = request.arg("created_at[gte]") if since else None
            if gte:
                total = data.count_since(parse_timestamp(gte))
            offset = _int_arg(request, "offset", 0, 0)
            limit = min(_int_arg(request, "limit", page.default, 1), page.maximum)
            end = min(offset + limit, total)
            body = b",".join(data.rows[offset:end]) if offset < end else b""
            tail = b'],"total_count":%d}' % total if page.total_count else b"]}"
            return Response(200, head + body + tail)

        return paged if page is not None else unpaged


LAST_OF = LAST_NAMES
FIRST_OF = (
    "Ada", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kara", "Liam", "Maya", "Noah", "Olga", "Pablo",
)  # fmt: skip


def _none(c: Ctx) -> None:
    return None
