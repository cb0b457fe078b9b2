"""The seven reporting streams, as declarations (contract: reporting, seed 001)."""

from __future__ import annotations

import typing as t
from datetime import timezone

from tap_reporting.client import NumberedPagesStream, ReportingStream
from taps_core.pagination import CursorPaginator, LinkTokenPaginator
from taps_core.windows import DateWindowStream

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


class TransactionsStream(DateWindowStream, NumberedPagesStream):
    """Date windows of ``window_days``, pages of 500 inside each.

    Each record nests its identity in ``transaction_info``; ``transaction_id`` and
    ``transaction_updated_date`` are lifted to the top level as the primary and
    replication keys. They are lifted while the page is parsed, before anything reads
    a record's key (the repeat guard included).
    """

    name = "transactions"
    path = "/v1/reporting/transactions"
    records_jsonpath = "$.transaction_details[*]"
    primary_keys = ("transaction_id",)
    replication_key = "transaction_updated_date"
    is_sorted = False
    page_size = 500
    split_error_names = frozenset({"RESULTSET_TOO_LARGE"})

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        assert context is not None  # the window
        return {
            "start_date": context["window_start"],
            "end_date": context["window_end"],
            "fields": "all",
            "page": next_page_token or 1,
            "page_size": self.page_size,
        }

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        rows = self.rows(response)
        for row in rows:
            info = row.get("transaction_info") or {}
            row["transaction_id"] = info.get("transaction_id")
            row["transaction_updated_date"] = info.get("transaction_updated_date")
        return rows


class BalancesStream(ReportingStream):
    """One reply, which is itself the record."""

    name = "balances"
    path = "/v1/reporting/balances"
    records_jsonpath = "$"
    primary_keys = ("as_of_time",)


class ListProductsStream(NumberedPagesStream):
    name = "list_products"
    path = "/v1/catalogs/products"
    records_jsonpath = "$.products[*]"
    page_size = 20

    def get_child_context(self, record: dict, context: Context | None) -> dict:
        return {"id": record["id"]}


class ShowProductDetailsStream(ReportingStream):
    """One request per product of ``list_products`` (the seed's ``{{ stream_slice.id }}``).

    The parent is read for its ids even when only this stream is selected. The product
    id is no state partition: the stream is read in full, and a partition per product
    would grow the state with the catalogue.
    """

    name = "show_product_details"
    path = "/v1/catalogs/products/{id}"
    records_jsonpath = "$"
    parent_stream_type = ListProductsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []


class ListDisputesStream(ReportingStream):
    """The opaque ``next_page_token`` of the ``next`` link; incremental on ``update_time``."""

    name = "list_disputes"
    path = "/v1/customer/disputes"
    records_jsonpath = "$.items[*]"
    primary_keys = ("dispute_id",)
    replication_key = "update_time"
    is_sorted = False  # newest first
    page_size = 50

    def get_new_paginator(self) -> LinkTokenPaginator:
        return LinkTokenPaginator(self.links, "next_page_token")

    def links(self, response: requests.Response) -> list | None:
        body = self.body(response)
        return body.get("links") if isinstance(body, dict) else None

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params: dict[str, t.Any] = {"page_size": self.page_size}
        if next_page_token:
            params["next_page_token"] = next_page_token
        start = self.get_starting_timestamp(context)
        if start is not None:
            params["update_time_after"] = start.astimezone(timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        return params


class SearchInvoicesStream(NumberedPagesStream):
    """POST a JSON search body; paging and totals travel in the query string."""

    name = "search_invoices"
    path = "/v2/invoicing/search-invoices"
    records_jsonpath = "$.items[*]"
    http_method = "POST"
    page_size = 100

    def prepare_request_payload(self, context: Context | None, next_page_token: t.Any) -> dict:
        return {}


class ListPaymentsStream(ReportingStream):
    """``start_id`` from the previous reply's ``next_id``; none or empty ends the list."""

    name = "list_payments"
    path = "/v1/payments/payment"
    records_jsonpath = "$.payments[*]"
    page_size = 20

    def get_new_paginator(self) -> CursorPaginator:
        return CursorPaginator(self.next_id)

    def next_id(self, response: requests.Response) -> t.Any:
        body = self.body(response)
        return body.get("next_id") if isinstance(body, dict) else None

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params: dict[str, t.Any] = {"count": self.page_size}
        if next_page_token:
            params["start_id"] = next_page_token
        return params


STREAM_TYPES: list[type[ReportingStream]] = [
    TransactionsStream,
    BalancesStream,
    ListProductsStream,
    ShowProductDetailsStream,
    ListDisputesStream,
    SearchInvoicesStream,
    ListPaymentsStream,
]
