"""The bookings API's base stream: next-page URLs, ``legal-entity``, ``ModifiedAfter``.

Every list is paged by ``PageSize``/``PageNumber`` on the first request only; after
that the reply's ``nextPage`` URL is requested exactly as given, and a null one ends
the list. Every data request carries the ``legal-entity`` header from the setting of
that name. Timestamps come without a zone and with seven fractional digits
(``2022-09-21T13:22:16.3881969``): they are UTC, emitted as RFC 3339 with all seven
digits (``...16.3881969+00:00``), and the bookmark keeps them all, so the next sync
asks for ``ModifiedAfter`` that exact instant.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

from taps_core.client import CollectionStream
from taps_core.errors import TapError
from taps_core.pagination import FollowsNextPageUrl, NextPageUrlPaginator
from taps_core.timestamps import Rfc3339Timestamps, utc_text

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

PAGE_SIZE = 100


class BookingsStream(Rfc3339Timestamps, FollowsNextPageUrl, CollectionStream):
    """A bookings list. Subclasses declare name and path."""

    schemas_dir = Path(__file__).parent / "schemas"
    records_jsonpath = "$.data[*]"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    #: Rows asked for on the first page; the API's next-page URLs keep it.
    page_size: t.ClassVar[int] = PAGE_SIZE
    replication_key = "modified"
    is_sorted = False  # newest created first, not by modified
    header_settings: t.ClassVar[dict[str, str]] = {"legal-entity": "legal_entity"}
    auth_hint = (
        "Check the settings: a 401 points at username, password or client_id, a 403 at "
        "legal_entity (unknown, or not permitted for this user)."
    )

    def get_new_paginator(self) -> NextPageUrlPaginator:
        what = f"{self.tap_name} stream '{self.name}'"
        return NextPageUrlPaginator(self.next_page_url, self.url_base, what)

    def next_page_url(self, response: requests.Response) -> str | None:
        """``nextPage``: null or absent on the last page (the seed's stop condition)."""
        body = self.body(response)
        return body.get("nextPage") if isinstance(body, dict) else None

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        """The first page's query; later pages are the API's nextPage URL as it is."""
        params: dict[str, t.Any] = {"PageSize": self.page_size, "PageNumber": 1}
        since = self.modified_after(context)
        if since is not None:
            params["ModifiedAfter"] = since
        return params

    def modified_after(self, context: Context | None) -> str | None:
        """The bookmark (or ``start_date``) as the API writes instants: UTC, no zone.

        Taken from the bookmark's text, never from a parsed ``datetime``, which holds
        six fractional digits: a bookmark truncated to ``...16.388196`` would ask again
        for the record at ``...16.3881969``, and one rounded up would skip a record
        modified 100 ns after it. The API returns records modified strictly after this
        instant, so the record the bookmark came from is not sent again.
        """
        value = self.get_starting_replication_key_value(context)
        if value is None:
            return None
        try:
            return utc_text(str(value)).removesuffix("+00:00")
        except ValueError:
            msg = (
                f"{self.tap_name} stream '{self.name}': the state's bookmark {value!r} is "
                "not a timestamp; remove the stream's state to sync it in full."
            )
            raise TapError(msg) from None
