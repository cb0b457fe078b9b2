"""Timestamps with colon-less offsets or no zone: RFC 3339 in records, instants in bookmarks.

The sandbox APIs that write such timestamps (inventory, reporting, bookings) have their
own tests; here a small API served by pytest-httpserver sends exactly the spellings
whose string order differs from their instants' order, which no seed guarantees.
"""

from __future__ import annotations

import itertools
import typing as t
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer
from singer_sdk import typing as th
from singer_sdk.exceptions import InvalidStreamSortException

from taps_core.auth import BearerAuth
from taps_core.client import CollectionStream
from taps_core.tap import COMMON_SETTINGS, CollectionTap
from taps_core.timestamps import Rfc3339Timestamps, to_rfc3339, utc_text
from tests.support import FAST_RETRIES, sync_in_process


def instant(text: str) -> tuple[datetime, Decimal]:
    """An instant to any precision, parsed apart from the code under test."""
    date, _, rest = text.partition("T")
    clock, zone = rest[:8], rest[8:]
    fraction = ""
    if zone.startswith("."):
        digits = zone[1:]
        fraction = "".join(itertools.takewhile(str.isdigit, digits))
        zone = digits[len(fraction) :]
    if zone in ("", "Z"):
        offset = timedelta(0)
    else:
        zone = zone.replace(":", "")
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    local = datetime.fromisoformat(f"{date}T{clock}").replace(tzinfo=timezone(offset))
    return local.astimezone(timezone.utc), Decimal(f"0.{fraction or '0'}")


@pytest.mark.parametrize(
    ("api", "rfc3339"),
    [
        ("2024-01-31T12:00:00+0530", "2024-01-31T12:00:00+05:30"),
        ("2024-01-31T12:00:00-0800", "2024-01-31T12:00:00-08:00"),
        ("2024-01-31T12:00:00+0000", "2024-01-31T12:00:00+00:00"),
        ("2022-09-21T13:22:16.3881969", "2022-09-21T13:22:16.3881969+00:00"),
        ("2024-01-31T12:00:00Z", "2024-01-31T12:00:00Z"),
        ("2024-01-31T12:00:00.5+01:00", "2024-01-31T12:00:00.5+01:00"),
    ],
)
def test_api_spellings_become_rfc3339_with_the_same_digits_and_offset(api, rfc3339):
    assert to_rfc3339(api) == rfc3339
    assert instant(to_rfc3339(api)) == instant(api)


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "2024-01-31T25:00:00"])
def test_text_that_is_no_timestamp_is_refused(text):
    with pytest.raises(ValueError):
        to_rfc3339(text)


SPELLINGS = [
    "2024-01-31T10:00:00+05:30",
    "2024-01-31T04:30:00Z",
    "2024-01-31T04:30:00.0000001Z",
    "2024-01-31T04:30:00.5",
    "2024-01-31T04:29:59.9999999+00:00",
    "2024-01-31T04:31:00+0000",
    "2024-01-30T23:30:00-0500",
    "2024-01-31T04:30:00.25-00:00",
]


def test_utc_text_orders_as_the_instants_do():
    by_text = sorted(SPELLINGS, key=utc_text)
    by_instant = sorted(SPELLINGS, key=instant)
    assert [instant(s) for s in by_text] == [instant(s) for s in by_instant]
    for text in SPELLINGS:
        assert instant(utc_text(text)) == instant(text)


# -- a stream whose values' string order is not their instants' order ------------------

ROWS = [
    {"id": 1, "modified": "2024-01-31T10:00:00+0530", "events": [{"at": "2024-01-01T00:00:00"}]},
    {"id": 2, "modified": "2024-01-31T05:00:00.0000001", "events": []},
    {"id": 3, "modified": "2024-01-31T09:59:59+0530", "events": [{"at": "soon"}]},
]
GREATEST = "2024-01-31T05:00:00.0000001"  # id 2: 04:30Z, 05:00:00.0000001Z, 04:29:59Z


class ModifiedStream(Rfc3339Timestamps, CollectionStream):
    name = "things"
    path = "/things"
    records_jsonpath = "$.things[*]"
    primary_keys = ("id",)
    replication_key = "modified"
    is_sorted = False
    schema: t.ClassVar[dict] = th.PropertiesList(
        th.Property("id", th.IntegerType),
        th.Property("modified", th.DateTimeType),
        th.Property("events", th.ArrayType(th.ObjectType(th.Property("at", th.DateTimeType)))),
    ).to_dict()


class SortedModifiedStream(ModifiedStream):
    is_sorted = True


class TapTimes(CollectionTap):
    name = "tap-times"
    stream_types: t.ClassVar = [ModifiedStream]
    config_jsonschema = th.PropertiesList(
        th.Property("base_url", th.StringType, required=True), *COMMON_SETTINGS
    ).to_dict()

    def build_authenticator(self) -> BearerAuth:
        return BearerAuth("times-api-key")


class TapSortedTimes(TapTimes):
    stream_types: t.ClassVar = [SortedModifiedStream]


@pytest.fixture
def api(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/things").respond_with_json({"things": ROWS})
    return httpserver


def test_records_carry_rfc3339_timestamps_nested_ones_too(api):
    result = sync_in_process(TapTimes, {"base_url": api.url_for(""), **FAST_RETRIES})
    records = result.records("things")
    assert [r["modified"] for r in records] == [
        "2024-01-31T10:00:00+05:30",
        "2024-01-31T05:00:00.0000001+00:00",
        "2024-01-31T09:59:59+05:30",
    ]
    assert records[0]["events"] == [{"at": "2024-01-01T00:00:00+00:00"}]
    assert records[2]["events"] == [{"at": None}], "an unreadable timestamp becomes null"


def test_bookmark_is_the_greatest_instant_not_the_greatest_string(api):
    result = sync_in_process(TapTimes, {"base_url": api.url_for(""), **FAST_RETRIES})
    bookmark = result.last_state["bookmarks"]["things"]["replication_key_value"]
    assert instant(bookmark) == instant(GREATEST)


def test_an_earlier_state_in_z_form_still_compares_by_instant(api):
    state = {
        "bookmarks": {
            "things": {"replication_key": "modified", "replication_key_value": "2024-01-31T06:00Z"}
        }
    }
    rows = [{**ROWS[1], "modified": "2024-01-31T11:30:00.5+0530"}]  # 06:00:00.5Z
    api.clear()
    api.expect_request("/things").respond_with_json({"things": rows})
    result = sync_in_process(
        TapSortedTimes, {"base_url": api.url_for(""), **FAST_RETRIES}, state=state
    )
    bookmark = result.last_state["bookmarks"]["things"]["replication_key_value"]
    assert instant(bookmark) == instant("2024-01-31T06:00:00.5Z")


def test_a_sorted_stream_still_gets_the_sdks_sort_check(api):
    """The bookmark shortcut skips values below the greatest only where nobody checks them."""
    with pytest.raises(InvalidStreamSortException):
        sync_in_process(TapSortedTimes, {"base_url": api.url_for(""), **FAST_RETRIES})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-31T12:00:00Z", "2024-01-31T12:00:00+00:00"),
        ("2024-01-31T12:00:00.123456z", "2024-01-31T12:00:00.123456+00:00"),
        ("2024-01-31T12:00:00+0000", "2024-01-31T12:00:00+00:00"),
        ("2024-01-31T12:00:00.5+00:00", "2024-01-31T12:00:00.5+00:00"),
    ],
)
def test_a_utc_instant_keeps_its_digits_in_the_bookmark_form(value, expected):
    assert utc_text(value) == expected == utc_text(expected)


@pytest.mark.parametrize("value", ["2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z"])
def test_a_utc_instant_that_is_no_real_date_is_refused(value):
    with pytest.raises(ValueError):
        utc_text(value)
