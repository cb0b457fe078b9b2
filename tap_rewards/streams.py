"""The ten rewards streams, as declarations (contract: rewards, seed 004)."""

from __future__ import annotations

import hashlib
import typing as t

import orjson

from tap_rewards.client import RewardsStream

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


class OrdersStream(RewardsStream):
    name = "orders"
    path = "/v2/orders"
    records_jsonpath = "$.orders[*]"
    page_size = 100
    replication_key = "created_at"
    is_sorted = False  # newest first


class ProductsStream(RewardsStream):
    name = "products"
    path = "/v2/products"
    records_jsonpath = "$.products[*]"


class FundingSourcesStream(RewardsStream):
    name = "funding_sources"
    path = "/v2/funding_sources"
    records_jsonpath = "$.funding_sources[*]"


class AccountMembersStream(RewardsStream):
    name = "account_members"
    path = "/v2/members"
    records_jsonpath = "$.members[*]"


class CampaignsStream(RewardsStream):
    name = "campaigns"
    path = "/v2/campaigns"
    records_jsonpath = "$.campaigns[*]"


class OrganizationsStream(RewardsStream):
    name = "organizations"
    path = "/v2/organizations"
    records_jsonpath = "$.organizations[*]"


class RewardsListStream(RewardsStream):
    name = "rewards"
    path = "/v2/rewards"
    records_jsonpath = "$.rewards[*]"
    page_size = 10


class MembersStream(RewardsStream):
    name = "members"
    path = "/v2/members"
    records_jsonpath = "$.members[*]"


class InvoicesStream(RewardsStream):
    name = "invoices"
    path = "/v2/invoices"
    records_jsonpath = "$.invoices[*]"
    page_size = 100  # the seed's ask; the server serves at most 10


class BalanceTransactionsStream(RewardsStream):
    """Rows without an id: the tap derives ``transaction_key``.

    The key hashes the row's content and adds its position among identical rows
    sharing its ``created_at``. Content alone would merge two genuinely identical
    rows (the same fee charged twice in one second); a position in the whole list
    would change whenever a newer row arrives. Identical rows share a ``created_at``,
    so they sit together in the newest-first list, and an incremental sync, which
    re-reads from ``created_at >=`` its bookmark, sees the whole group again.
    """

    name = "balance_transactions"
    path = "/v2/balance_transactions"
    records_jsonpath = "$.transactions[*]"
    primary_keys = ("transaction_key",)
    page_size = 10
    replication_key = "created_at"
    is_sorted = False  # newest first

    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        self._group_at: object = None
        self._group_counts: dict[bytes, int] = {}
        yield from super().request_records(context)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        rows = self.rows(response)
        for row in rows:
            if "transaction_key" not in row:
                row["transaction_key"] = self._derive_key(row)
        return rows

    def _derive_key(self, row: dict) -> str:
        content = orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str)
        if row.get("created_at") != self._group_at:
            self._group_at, self._group_counts = row.get("created_at"), {}
        ordinal = self._group_counts.get(content, 0)
        self._group_counts[content] = ordinal + 1
        return f"{hashlib.sha256(content).hexdigest()[:32]}-{ordinal}"


STREAM_TYPES: list[type[RewardsStream]] = [
    OrdersStream,
    ProductsStream,
    FundingSourcesStream,
    AccountMembersStream,
    CampaignsStream,
    OrganizationsStream,
    BalanceTransactionsStream,
    RewardsListStream,
    MembersStream,
    InvoicesStream,
]
