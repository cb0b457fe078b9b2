"""The inventory API's base stream: page numbers, ``organization_id``, one OAuth token.

Lists are read ``page=1,2,...`` with ``per_page=200`` until a reply's
``page_context.has_more_page`` is false (the page after it is never asked for: the API
has no total, and a page past the end is a request wasted out of a budget of 100 a
minute). ``organization_id``, when set, goes on every request but ``/organizations``,
which lists the organizations themselves. Timestamps come as ``2024-03-05T12:06:10+0530``
(no colon: not RFC 3339) and are emitted as ``+05:30``, the same instant and digits
(:class:`taps_core.timestamps.Rfc3339Timestamps`); the ``items`` bookmark compares them
as instants, in UTC, whatever offset ``start_date`` or the state was written with.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

from singer_sdk.pagination import SinglePagePaginator

from taps_core.client import CollectionStream
from taps_core.pagination import PageNumberPaginator
from taps_core.timestamps import Rfc3339Timestamps

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


class InventoryStream(Rfc3339Timestamps, CollectionStream):
    """An inventory list. Subclasses declare name, path, selector and primary key."""

    schemas_dir = Path(__file__).parent / "schemas"
    auth_hint = "Check the client_id, client_secret and refresh_token settings."
    #: ``per_page``; None for a list that is one reply and refuses paging parameters.
    page_size: t.ClassVar[int | None] = 200
    #: Whether the request names the organization (all but /organizations do).
    scoped_to_organization: t.ClassVar[bool] = True

    def get_new_paginator(self) -> t.Any:
        if self.page_size is None:
            return SinglePagePaginator()
        return PageNumberPaginator(self.has_more_page, self.rows)

    def has_more_page(self, response: requests.Response) -> bool:
        body = self.body(response)
        context = body.get("page_context") if isinstance(body, dict) else None
        return bool(isinstance(context, dict) and context.get("has_more_page"))

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params: dict[str, t.Any] = {}
        organization = self.config.get("organization_id")
        if organization and self.scoped_to_organization:
            params["organization_id"] = organization
        if self.page_size is not None:
            params["page"] = next_page_token or 1
            params["per_page"] = self.page_size
        return params
