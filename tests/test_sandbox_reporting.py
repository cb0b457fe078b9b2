"""The sandbox's reporting API over real HTTP, as the contract describes it."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from api_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
FIELDS = json.loads((ROOT / "api_sandbox" / "fields" / "reporting.json").read_text())
CLIENT = ("sandbox-reporting-client", "sandbox-reporting-secret")
COLONLESS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
LIFTED = {"transaction_id", "transaction_updated_date"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.clear_requests()
    sandbox.engine.api("reporting").violations.clear()
    yield sandbox


def token(sb: Sandbox) -> str:
    reply = requests.post(
        sb.base_url("reporting") + "/v1/oauth2/token",
        auth=CLIENT,
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def get(sb: Sandbox, path: str, bearer: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer or token(sb)}"}
    return requests.get(sb.base_url("reporting") + path, headers=headers, params=params, timeout=10)


def transactions(sb: Sandbox, start: str, end: str, **params: Any) -> requests.Response:
    return get(sb, "/v1/reporting/transactions", start_date=start, end_date=end, **params)


def violations(sb: Sandbox) -> list[str]:
    return sb.engine.api("reporting").violations


def amounts(value: Any) -> Iterator[dict]:
    if isinstance(value, dict):
        if set(value) == {"currency_code", "value"}:
            yield value
        for item in value.values():
            yield from amounts(item)
    elif isinstance(value, list):
        for item in value:
            yield from amounts(item)


# -- data ------------------------------------------------------------------------------------


def test_every_record_has_every_field_of_the_api_fields_file(sb: Sandbox) -> None:
    assert set(sb.streams("reporting")) == set(FIELDS)
    for stream, schema in FIELDS.items():
        expected = set(schema["properties"]) - (LIFTED if stream == "transactions" else set())
        records = sb.records("reporting", stream)
        assert records, stream
        for record in records:
            assert set(record) == expected, stream


def test_amounts_are_decimal_strings_and_reporting_times_have_colonless_offsets(
    sb: Sandbox,
) -> None:
    for stream in sb.streams("reporting"):
        for record in sb.records("reporting", stream):
            for amount in amounts(record):
                if amount["value"] is not None:
                    assert DECIMAL.match(amount["value"]), (stream, amount)
    for record in sb.records("reporting", "transactions"):
        info = record["transaction_info"]
        assert COLONLESS.match(info["transaction_updated_date"])
        assert COLONLESS.match(info["transaction_initiation_date"])
    for record in sb.records("reporting", "list_disputes"):
        assert COLONLESS.match(record["update_time"])
    (balance,) = sb.records("reporting", "balances")
    assert COLONLESS.match(balance["as_of_time"])


def test_product_list_entries_agree_with_the_details(sb: Sandbox) -> None:
    details = {r["id"]: r for r in sb.records("reporting", "show_product_details")}
    entries = sb.records("reporting", "list_products")
    assert [e["id"] for e in entries] == list(details)
    for entry in entries:
        assert {k: details[entry["id"]][k] for k in entry} == entry


# -- auth ------------------------------------------------------------------------------------


def test_token_needs_basic_client_credentials_and_the_grant(sb: Sandbox) -> None:
    url = sb.base_url("reporting") + "/v1/oauth2/token"
    form = {"grant_type": "client_credentials"}
    assert requests.post(url, auth=(CLIENT[0], "wrong"), data=form, timeout=10).status_code == 401
    assert requests.post(url, data={**form, "client_id": CLIENT[0]}, timeout=10).status_code == 401
    wrong_grant = requests.post(url, auth=CLIENT, data={"grant_type": "password"}, timeout=10)
    assert wrong_grant.status_code == 400
    reply = requests.post(url, auth=CLIENT, data=form, timeout=10).json()
    assert reply["token_type"] == "Bearer" and reply["expires_in"] > 3600


def test_unknown_and_expired_tokens_get_401(sb: Sandbox) -> None:
    assert get(sb, "/v1/reporting/balances", bearer="not-a-token").status_code == 401
    assert (
        requests.get(sb.base_url("reporting") + "/v1/reporting/balances", timeout=10).status_code
        == 401
    )
    issuer = sb.engine.api("reporting").token_issuer
    issuer.lifetime = 1
    try:
        short = token(sb)
        assert get(sb, "/v1/reporting/balances", bearer=short).status_code == 200
        time.sleep(1.05)
        assert get(sb, "/v1/reporting/balances", bearer=short).status_code == 401
    finally:
        issuer.lifetime = 32400


# -- transactions ----------------------------------------------------------------------------


def test_transactions_need_both_dates_and_at_most_31_days(sb: Sandbox) -> None:
    missing = get(sb, "/v1/reporting/transactions", start_date="2024-01-01T00:00:00Z")
    assert missing.status_code == 400 and missing.json()["name"] == "INVALID_REQUEST"
    assert not violations(sb)
    ok = transactions(sb, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z")
    assert ok.status_code == 200
    too_long = transactions(sb, "2024-01-01T00:00:00Z", "2024-02-01T00:00:01Z")
    assert too_long.status_code == 400 and too_long.json()["name"] == "INVALID_REQUEST"
    assert violations(sb) == ["GET /v1/reporting/transactions: a window over 31 days"]


def test_adjacent_windows_share_no_row_and_miss_none(sb: Sandbox) -> None:
    """Windows are start <= transaction_updated_date < end, with any offset spelling."""
    truth = sb.records("reporting", "transactions")
    bounds = ["2024-03-01T00:00:00Z", "2024-03-10T00:00:00+00:00", "2024-03-20T00:00:00+0000"]
    seen: list[str] = []
    for start, end in itertools.pairwise(bounds):
        reply = transactions(sb, start, end, fields="all", page_size=500).json()
        seen += [r["transaction_info"]["transaction_id"] for r in reply["transaction_details"]]
        assert reply["total_items"] == len(reply["transaction_details"])
    expected = [
        r["transaction_info"]["transaction_id"]
        for r in truth
        if "2024-03-01T00:00:00+0000"
        <= r["transaction_info"]["transaction_updated_date"]
        < "2024-03-20T00:00:00+0000"
    ]
    assert expected and sorted(seen) == sorted(expected)


def test_transaction_pages_carry_totals_and_all_fields_only_when_asked(sb: Sandbox) -> None:
    start, end = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"
    whole = transactions(sb, start, end, fields="all", page_size=500).json()
    total = whole["total_items"]
    assert total > 10
    pages = [
        transactions(sb, start, end, fields="all", page_size=10, page=p).json() for p in (1, 2)
    ]
    assert pages[0]["total_pages"] == -(-total // 10) and pages[0]["page"] == 1
    ids = [r["transaction_info"]["transaction_id"] for p in pages for r in p["transaction_details"]]
    assert ids == [
        r["transaction_info"]["transaction_id"] for r in whole["transaction_details"][:20]
    ]
    bare = transactions(sb, start, end, page_size=5).json()["transaction_details"]
    assert all(set(r) == {"transaction_info"} for r in bare)
    assert transactions(sb, start, end, page_size=501).status_code == 400
    assert not violations(sb)
    transactions(sb, start, end, page_size=500, page=2)
    assert violations(sb) == ["GET /v1/reporting/transactions: page 2 past total_pages 1"]


def test_a_window_over_the_row_limit_is_refused_and_asking_it_again_is_noted(sb: Sandbox) -> None:
    api = sb.engine.api("reporting")
    api.row_limit = 5
    try:
        start, end = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"
        refused = transactions(sb, start, end)
        assert refused.status_code == 400
        assert refused.json()["name"] == "RESULTSET_TOO_LARGE"
        assert not violations(sb)
        transactions(sb, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")  # small: served
        assert transactions(sb, start, "2024-02-01T00:00:00+0000").status_code == 400
        assert violations(sb) == [
            "GET /v1/reporting/transactions: a RESULTSET_TOO_LARGE window asked again unchanged"
        ]
    finally:
        api.row_limit = 10_000


def test_transactions_can_be_placed_in_the_recent_past() -> None:
    now = time.time()
    with Sandbox(seed=3) as sb:
        sb.engine.api("reporting").place_transactions(now - 40 * 86400, now - 86400)
        truth = sb.records("reporting", "transactions")
        with pytest.raises(RuntimeError):
            sb.engine.api("reporting").place_transactions(0, 1)
    stamps = [r["transaction_info"]["transaction_updated_date"] for r in truth]
    recent = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(now - 41 * 86400))
    assert min(stamps) >= recent


# -- the other lists -------------------------------------------------------------------------


def test_balances_is_one_reply_that_is_the_record(sb: Sandbox) -> None:
    reply = get(sb, "/v1/reporting/balances").json()
    assert [reply] == sb.records("reporting", "balances")


def test_products_page_by_number_with_totals_only_when_required(sb: Sandbox) -> None:
    truth = sb.records("reporting", "list_products")
    bearer = token(sb)
    first = get(sb, "/v1/catalogs/products", bearer, page=1, page_size=20).json()
    assert "total_pages" not in first and len(first["products"]) == 20
    pages = [
        get(sb, "/v1/catalogs/products", bearer, page=p, page_size=20, total_required="true").json()
        for p in (1, 2)
    ]
    assert pages[0]["total_items"] == len(truth) == 40 and pages[0]["total_pages"] == 2
    assert [r for p in pages for r in p["products"]] == truth
    assert get(sb, "/v1/catalogs/products", bearer, page_size=21).status_code == 400


def test_each_product_has_its_details_at_its_own_path(sb: Sandbox) -> None:
    bearer = token(sb)
    for details in sb.records("reporting", "show_product_details")[:3]:
        assert get(sb, f"/v1/catalogs/products/{details['id']}", bearer).json() == details
    missing = get(sb, "/v1/catalogs/products/PROD-NOPE", bearer)
    assert missing.status_code == 404 and missing.json()["name"] == "RESOURCE_NOT_FOUND"


def _next_token(reply: dict) -> str | None:
    for link in reply["links"]:
        if link["rel"] == "next":
            return parse_qs(urlsplit(link["href"]).query)["next_page_token"][0]
    return None


def test_disputes_follow_the_opaque_token_of_the_next_link(sb: Sandbox) -> None:
    bearer = token(sb)
    seen: list[dict] = []
    page = get(sb, "/v1/customer/disputes", bearer, page_size=50).json()
    sizes = []
    while True:
        seen += page["items"]
        sizes.append(len(page["items"]))
        following = _next_token(page)
        if following is None:
            break
        assert not following.isdigit()
        page = get(
            sb, "/v1/customer/disputes", bearer, page_size=50, next_page_token=following
        ).json()
    assert sizes == [50, 50, 20]
    assert seen == sb.records("reporting", "list_disputes")
    assert not violations(sb)
    refused = get(sb, "/v1/customer/disputes", bearer, page_size=50, next_page_token="2")
    assert refused.status_code == 400
    assert violations(sb) == [
        "GET /v1/customer/disputes: a next_page_token the API never gave: '2'"
    ]


def test_disputes_updated_after_a_time(sb: Sandbox) -> None:
    truth = sb.records("reporting", "list_disputes")
    cutoff = sorted(r["update_time"] for r in truth)[len(truth) // 2]
    reply = get(sb, "/v1/customer/disputes", page_size=50, update_time_after=cutoff).json()
    expected = [r for r in truth if r["update_time"] >= cutoff]
    assert reply["items"] == expected[:50]
    assert len(expected) > 50 and _next_token(reply) is not None


def test_search_invoices_posts_a_json_body_and_pages_by_number(sb: Sandbox) -> None:
    url = sb.base_url("reporting") + "/v2/invoicing/search-invoices"
    headers = {"Authorization": f"Bearer {token(sb)}"}
    truth = sb.records("reporting", "search_invoices")
    params = {"page_size": 100, "total_required": "true"}
    pages = [
        requests.post(
            url, headers=headers, params={**params, "page": p}, json={}, timeout=10
        ).json()
        for p in (1, 2)
    ]
    assert pages[0]["total_pages"] == 2 and pages[0]["total_items"] == 200
    assert [r for p in pages for r in p["items"]] == truth
    no_totals = requests.post(url, headers=headers, params={"page": 1}, json={}, timeout=10).json()
    assert "total_pages" not in no_totals
    times = sorted(r["detail"]["metadata"]["create_time"] for r in truth)
    span = {"creation_date_range": {"start": times[10], "end": times[19]}}
    narrow = requests.post(url, headers=headers, params=params, json=span, timeout=10).json()
    assert narrow["total_items"] == 10
    bad = requests.post(url, headers=headers, params=params, data="nope", timeout=10)
    assert bad.status_code == 400 and bad.json()["name"] == "INVALID_REQUEST"


def test_payments_chain_start_id_from_next_id_until_there_is_none(sb: Sandbox) -> None:
    bearer = token(sb)
    seen, sizes, start = [], [], None
    while True:
        params = {"count": 20, **({"start_id": start} if start else {})}
        reply = get(sb, "/v1/payments/payment", bearer, **params).json()
        seen += reply["payments"]
        sizes.append(reply["count"])
        start = reply.get("next_id")
        if not start:
            break
    assert sizes == [20, 20, 5]
    assert seen == sb.records("reporting", "list_payments")
    assert get(sb, "/v1/payments/payment", bearer, start_id="PAYID-NOPE").status_code == 400


@pytest.mark.parametrize("count", [0, 20, 100])
def test_empty_lists_and_exact_page_multiples_end_without_an_extra_page(count: int) -> None:
    streams = {"list_products": count, "list_disputes": count, "list_payments": count}
    with Sandbox(seed=5, counts={"reporting": streams}) as sb:
        bearer = token(sb)
        products = get(
            sb, "/v1/catalogs/products", bearer, page_size=20, total_required="true"
        ).json()
        assert products["total_pages"] == count // 20
        disputes = get(sb, "/v1/customer/disputes", bearer, page_size=50).json()
        assert len(disputes["items"]) == min(count, 50)
        assert (_next_token(disputes) is None) == (count <= 50)
        payments = get(sb, "/v1/payments/payment", bearer, count=20).json()
        assert payments["count"] == min(count, 20)
        assert ("next_id" in payments) == (count > 20)
        assert not sb.engine.api("reporting").violations
