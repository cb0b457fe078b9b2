"""The reporting API's base streams: one OAuth2 token, 400 retried unless it names why.

Timestamps with a colon-less offset are made RFC 3339 (:mod:`taps_core.timestamps`).

The seed retries 400 with the 5xx statuses: this API answers some passing failures
with a 400. A 400 whose body names a permanent cause is different: ``INVALID_REQUEST``
will be refused again however often it is sent, and ``RESULTSET_TOO_LARGE`` asks for a
smaller date window (:mod:`taps_core.windows`), so both end the retrying at once.
"""

from __future__ import annotations

import typing as t
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from taps_core.client import CollectionStream
from taps_core.pagination import PageNumberPaginator
from taps_core.retry import RETRYABLE_STATUSES
from taps_core.timestamps import Rfc3339Timestamps

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


class ReportingStream(Rfc3339Timestamps, CollectionStream):
    """A reporting list. Subclasses declare name, path, selector and key.

    The API writes ``2014-07-11T04:03:52+0000``: every ``date-time`` of the schema,
    nested ones too, is emitted as RFC 3339 (``+00:00``), and bookmarks compare instants.
    """

    schemas_dir = Path(__file__).parent / "schemas"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    retry_statuses = RETRYABLE_STATUSES | {400}
    permanent_error_names = frozenset({"RESULTSET_TOO_LARGE", "INVALID_REQUEST"})
    auth_hint = "Check the client_id and client_secret settings."


class NumberedPagesStream(ReportingStream):
    """``page``/``page_size`` with ``total_required=true``: the list ends at ``total_pages``.

    Never a request past the last page: the reply's ``total_pages`` says where it is
    (an exact multiple of the page size needs no empty page to end).
    """

    page_size: t.ClassVar[int] = 20

    def get_new_paginator(self) -> PageNumberPaginator:
        return PageNumberPaginator(self.more_pages, self.rows, last_page_of=self.total_pages)

    def total_pages(self, response: requests.Response) -> int | None:
        """``total_pages``, where the reply has it: the pages to fetch ahead."""
        body = self.body(response)
        total = body.get("total_pages") if isinstance(body, dict) else None
        return None if total is None else int(total)

    def more_pages(self, response: requests.Response) -> bool:
        body = self.body(response)
        total = body.get("total_pages") if isinstance(body, dict) else None
        if total is None:  # no totals: only a short page ends the list
            return len(self.rows(response)) >= self.page_size
        return self.page_of(response) < int(total)

    def page_of(self, response: requests.Response) -> int:
        """The page this reply answers: its own ``page``, else the one asked for."""
        body = self.body(response)
        if isinstance(body, dict) and body.get("page") is not None:
            return int(body["page"])
        asked = parse_qs(urlsplit(response.request.url or "").query).get("page") or ["1"]
        return int(asked[0])

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        return {"page": next_page_token or 1, "page_size": self.page_size, "total_required": "true"}
