"""The ten rewards streams, as declarations (contract: rewards, seed 004)."""

from __future__ import annotations

import hashlib
import typing as t
from collections import deque

import orjson

from tap_rewards.client import RewardsStream
from taps_core.pagination import OverlappingOffsetPaginator

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

    A row pushed onto the next page by a new arrival must keep its key, and a second,
    identical row must get the next one. So positions are counted only over rows not
    emitted before, and each page after the first re-reads the last row of the one
    before (:class:`OverlappingOffsetPaginator`): on a still list that row opens the
    page; when rows arrived meanwhile it sits further down, after other rows already
    read. The group still open (the oldest ``created_at`` read so far) is matched
    against the rows of it already emitted: from its start when the page begins above
    it, else by the longest run that ends the rows emitted. The one case this cannot
    tell apart: two or more identical rows ending a page, a further identical row
    following, and a new arrival shifting the page by as many rows; that row is then
    taken for one already emitted.
    """

    name = "balance_transactions"
    path = "/v2/balance_transactions"
    records_jsonpath = "$.transactions[*]"
    primary_keys = ("transaction_key",)
    page_size = 10
    replication_key = "created_at"
    is_sorted = False  # newest first
    #: Rows of the previous page each page re-reads.
    overlap: t.ClassVar[int] = 1
    #: How many of the open group's emitted rows are kept for matching a page to them.
    _TAIL = 256

    def get_new_paginator(self) -> OverlappingOffsetPaginator:
        return OverlappingOffsetPaginator(self.page_size, self.rows, self.total_count, self.overlap)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params = super().get_url_params(context, next_page_token)
        params["offset"], params["limit"] = OverlappingOffsetPaginator.window(
            next_page_token, self.page_size, self.overlap
        )
        return params

    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        self._open_at: t.Any = _NOTHING  # created_at of the oldest rows emitted
        self._open_counts: dict[str, int] = {}  # their digests: rows emitted of each
        self._open_tail: deque[str] = deque(maxlen=self._TAIL)  # in order, the latest
        yield from super().request_records(context)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        rows = self.rows(response)
        if rows and "transaction_key" not in rows[-1]:
            self._key_page(rows)
        return rows

    @staticmethod
    def _digest(row: dict) -> str:
        content = orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(content).hexdigest()[:32]

    def _key_page(self, rows: list[dict]) -> None:
        """Give each row its key: an emitted row's own, or the next position of its kind.

        Newest first, a page holds rows newer than the open group (read in full before,
        unless they arrived during the sync), then the open group's rows, then older
        ones, which open new groups.
        """
        digests = [self._digest(row) for row in rows]
        times = [row.get("created_at") for row in rows]
        open_at = self._open_at
        in_open = [i for i, at in enumerate(times) if at == open_at]
        start = in_open[0] if in_open else self._first_older(times, open_at)
        end = in_open[-1] + 1 if in_open else start
        group = [digests[i] for i in range(start, end)]
        repeats = self._repeated_open_rows(group, anchored=start > 0)
        newer: dict[str, int] = {}
        for i in range(start):  # the guard drops those it has emitted
            digest = digests[i]
            seen = newer.get(digest, 0)
            newer[digest] = seen + 1
            rows[i]["transaction_key"] = f"{digest}-{seen}"
        for i, key in zip(range(start, start + len(repeats)), repeats, strict=True):
            rows[i]["transaction_key"] = key
        counts, tail = self._open_counts, self._open_tail
        for i in range(start + len(repeats), len(rows)):
            digest, at = digests[i], times[i]
            if at != open_at:
                open_at, counts = at, {}
                tail.clear()
            ordinal = counts.get(digest, 0)
            counts[digest] = ordinal + 1
            tail.append(digest)
            rows[i]["transaction_key"] = f"{digest}-{ordinal}"
        self._open_at, self._open_counts = open_at, counts

    @staticmethod
    def _first_older(times: list[t.Any], open_at: t.Any) -> int:
        """Where rows older than the open group begin on a page that has none of it."""
        if open_at is _NOTHING or not isinstance(open_at, str):
            return 0
        for i, at in enumerate(times):
            if not isinstance(at, str) or at < open_at:
                return i
        return len(times)

    def _repeated_open_rows(self, group: list[str], anchored: bool) -> list[str]:
        """Keys of the open group's rows on this page that were emitted before, in order.

        ``anchored``: rows newer than the group come first on the page, so the page
        reaches back past the group's start, and every row of it emitted is here again.
        Otherwise the page starts inside the group: the repeated rows are the longest
        start of the page that equals the end of the rows emitted.
        """
        counts, tail = self._open_counts, self._open_tail
        if not group or not counts:
            return []
        if anchored:
            emitted = sum(counts.values())
            taken: dict[str, int] = {}
            keys = []
            for digest in group:
                ordinal = taken.get(digest, 0)
                if len(keys) == emitted or ordinal >= counts.get(digest, 0):
                    break
                taken[digest] = ordinal + 1
                keys.append(f"{digest}-{ordinal}")
            return keys
        ends = list(tail)
        for size in range(min(len(group), len(ends)), 0, -1):
            if group[:size] == ends[-size:]:
                block = group[:size]
                before: dict[str, int] = {}
                for digest in block:
                    before[digest] = before.get(digest, 0) + 1
                keys = []
                for digest in block:
                    ordinal = counts[digest] - before[digest]
                    before[digest] -= 1
                    keys.append(f"{digest}-{ordinal}")
                return keys
        if all(digest in counts for digest in group):  # the page lies inside what was read
            return [f"{digest}-0" for digest in group]
        return []


_NOTHING = object()


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
