"""The rewards API's base stream: Bearer key, offset paging, ``created_at[gte]``."""

from __future__ import annotations

import typing as t
from datetime import timezone
from pathlib import Path

from singer_sdk.pagination import SinglePagePaginator

from taps_core.client import CollectionStream
from taps_core.pagination import OffsetTotalPaginator

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


class RewardsStream(CollectionStream):
    """A rewards list. Subclasses declare name, path, selector and ``page_size``."""

    schemas_dir = Path(__file__).parent / "schemas"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    auth_hint = "Check the api_key setting."
    #: The ``limit`` the seed asks for; ``None`` for the lists the API does not page
    #: (it ignores offset and limit and sends the whole list in one reply).
    page_size: t.ClassVar[int | None] = None

    def get_new_paginator(self) -> t.Any:
        if self.page_size is None:
            return SinglePagePaginator()
        return OffsetTotalPaginator(self.page_size, self.rows, self.total_count)

    def total_count(self, response: requests.Response) -> int | None:
        """``total_count`` where the list has one (orders, rewards, invoices)."""
        body = self.body(response)
        total = body.get("total_count") if isinstance(body, dict) else None
        return int(total) if total is not None else None

    def list_total(self, response: requests.Response) -> int | None:
        return self.total_count(response)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params: dict[str, t.Any] = {}
        if self.page_size is not None:
            params["offset"] = next_page_token or 0
            params["limit"] = self.page_size
        if self.replication_key:
            start = self.get_starting_timestamp(context)
            if start is not None:
                since = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                params["created_at[gte]"] = since
        return params
