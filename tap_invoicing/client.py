"""The invoicing API's base stream: one POST endpoint, the request in a JSON body.

Every stream POSTs ``{"SERVICE":..., "FILTER":{...}, "LIMIT":100, "OFFSET":n}`` to
``/api.php``; the paging travels in the body and a short page ends the list (the reply
has no total). Errors come back as HTTP 200 with ``RESPONSE.ERRORS``: declared here,
failed on in the core. ``LASTUPDATE`` (``2024-01-31 12:00:00``) is emitted as RFC 3339.
"""

from __future__ import annotations

import typing as t
from datetime import datetime
from pathlib import Path

from taps_core.body_paging import JsonBodyOffsetStream
from taps_core.timestamps import NaiveTimestampFields

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class InvoicingStream(NaiveTimestampFields, JsonBodyOffsetStream):
    """An invoicing list. Subclasses declare name, ``service``, selector and key."""

    schemas_dir = Path(__file__).parent / "schemas"
    path = "/api.php"
    offset_field = "OFFSET"
    limit_field = "LIMIT"
    page_size = 100
    body_errors_jsonpath = "$.RESPONSE.ERRORS"
    naive_timestamp_fields = ("LASTUPDATE",)
    auth_hint = "Check the username and api_key settings."
    #: The body's ``SERVICE``: without it every stream would read the same thing.
    service: t.ClassVar[str] = ""
    #: Whether the service takes FILTER ``START_DATE`` (the invoice date).
    takes_start_date: t.ClassVar[bool] = False

    def request_body_for(self, context: Context | None) -> dict[str, t.Any]:
        filters: dict[str, str] = {}
        start = self.config.get("start_date")
        if self.takes_start_date and start:
            moment = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            filters["START_DATE"] = moment.date().isoformat()
        return {"SERVICE": self.service, "FILTER": filters}
