"""Lists read by POSTing a JSON body that carries the paging itself.

Some APIs have one endpoint for everything and read what to send from the body
(``{"SERVICE":"invoice.get","FILTER":{},"LIMIT":100,"OFFSET":200}``): the page is a
field of the body, never a query parameter. A stream declares the body's fixed part
and the names of its offset and limit fields; paging follows the rows served (not
the rows asked for) and, with no total in the reply, ends on a short or empty page
(:class:`taps_core.pagination.OffsetTotalPaginator` without a total).
"""

from __future__ import annotations

import copy
import typing as t

from taps_core.client import CollectionStream
from taps_core.pagination import OffsetTotalPaginator

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


def no_total(response: requests.Response) -> None:
    """For a reply that says nothing of the list's length: only a short page ends it."""
    return None


class JsonBodyOffsetStream(CollectionStream):
    """A list POSTed for page by page, ``offset`` and ``limit`` inside the JSON body."""

    #: The body's fixed part; :meth:`request_body_for` may add to a copy of it.
    request_body: t.ClassVar[dict[str, t.Any]] = {}
    #: The body fields that carry the page (the seed's ``offset_param``, and its limit).
    offset_field: t.ClassVar[str] = "offset"
    limit_field: t.ClassVar[str] = "limit"
    page_size: t.ClassVar[int] = 100

    @property
    def http_method(self) -> str:
        """Always POST: the body is the request."""
        return "POST"

    def get_new_paginator(self) -> OffsetTotalPaginator:
        return OffsetTotalPaginator(self.page_size, self.rows, no_total)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        """Nothing in the query string: paging there would be ignored by the API."""
        return {}

    def request_body_for(self, context: Context | None) -> dict[str, t.Any]:
        """The body without its page fields; override to add filters from settings."""
        return copy.deepcopy(self.request_body)

    def prepare_request_payload(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any]:
        body = self.request_body_for(context)
        body[self.limit_field] = self.page_size
        body[self.offset_field] = next_page_token or 0
        return body
