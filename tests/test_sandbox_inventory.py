"""The sandbox's inventory API over real HTTP, as the contract describes it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from api_sandbox import Fault, Sandbox
from tests.support import ROOT, missing_properties

FIELDS = json.loads((ROOT / "api_sandbox" / "fields" / "inventory.json").read_text())
ZONED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0530$")
ORG = "60012345"
PAGED = {
    "items": ("/items", "items"),
    "item_groups": ("/itemgroups", "itemgroups"),
    "organizations": ("/organizations", "organizations"),
    "contacts": ("/contacts", "contacts"),
    "item_adjustments": ("/inventoryadjustments", "inventory_adjustments"),
    "transfer_orders": ("/transferorders", "transfer_orders"),
    "sales_orders": ("/salesorders", "salesorders"),
    "packages": ("/packages", "packages"),
    "invoices": ("/invoices", "invoices"),
    "purchase_orders": ("/purchaseorders", "purchaseorders"),
    "credit_notes": ("/creditnotes", "creditnotes"),
    "users": ("/users", "users"),
}
KEYS = {
    "items": "item_id",
    "item_groups": "group_id",
    "organizations": "organization_id",
    "contacts": "contact_id",
    "item_adjustments": "inventory_adjustment_id",
    "warehouses": "warehouse_id",
    "transfer_orders": "transfer_order_id",
    "sales_orders": "salesorder_id",
    "packages": "package_id",
    "invoices": "invoice_id",
    "purchase_orders": "purchaseorder_id",
    "credit_notes": "creditnote_id",
    "users": "user_id",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.clear_faults()
    sandbox.clear_requests()
    yield sandbox
    sandbox.clear_faults()


def grant(sb: Sandbox, **changes: Any) -> requests.Response:
    """POST the refresh-token grant, form-encoded; ``changes`` edit or (None) drop fields."""
    creds = sb.credentials("inventory")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": creds["refresh_token"],
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
    }
    form = {k: v for k, v in {**form, **changes}.items() if v is not None}
    return requests.post(creds["token_url"], data=form, timeout=10)


def token(sb: Sandbox) -> str:
    reply = grant(sb)
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def get(sb: Sandbox, path: str, access: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {access or token(sb)}"}
    return requests.get(sb.base_url("inventory") + path, params=params, headers=headers, timeout=10)


# ----------------------------------------------------------------------------- data


def test_every_stream_serves_every_field_with_numeric_ids_and_zoned_timestamps(sb):
    assert set(sb.streams("inventory")) == set(FIELDS) == set(KEYS)
    for stream, schema in FIELDS.items():
        records = sb.records("inventory", stream)
        for i, record in enumerate(records):
            assert missing_properties(schema, record, f"{stream}[{i}]") == []
            assert record[KEYS[stream]].isdigit(), stream
            for name in ("created_time", "last_modified_time"):
                if name in schema["properties"]:
                    assert ZONED.match(record[name]), (stream, record[name])
        ids = [r[KEYS[stream]] for r in records]
        assert len(set(ids)) == len(ids), stream
    item = sb.records("inventory", "items")[0]
    assert isinstance(item["rate"], float) and isinstance(item["stock_on_hand"], float)
    assert all(g["is_taxable"] in (0, 1) for g in sb.records("inventory", "item_groups"))
    primary = [w["is_primary"] for w in sb.records("inventory", "warehouses")]
    assert primary.count(True) == 1


def test_list_sizes_cover_empty_lists_one_full_page_and_a_page_multiple(sb):
    counts = {s: len(sb.records("inventory", s)) for s in sb.streams("inventory")}
    assert counts["item_adjustments"] == counts["credit_notes"] == 0
    assert counts["sales_orders"] == 200
    assert counts["contacts"] == 400
    assert counts["items"] > 400 and counts["items"] % 200


# ----------------------------------------------------------------------------- OAuth


def test_the_refresh_token_grant_issues_bearer_tokens(sb):
    reply = grant(sb)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert get(sb, "/users", body["access_token"]).status_code == 200
    assert sb.requests[0].path == "/oauth/v2/token"


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"client_id": "1000.OTHER"}, 401, "invalid_client"),
        ({"client_secret": "wrong-secret"}, 401, "invalid_client"),
        ({"refresh_token": "1000.wrong"}, 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"refresh_token": None}, 400, "invalid_grant"),
    ],
    ids=["client-id", "client-secret", "refresh-token", "grant-type", "no-refresh-token"],
)
def test_a_bad_grant_gets_the_oauth_status_and_error(sb, changes, status, error):
    reply = grant(sb, **changes)
    assert reply.status_code == status
    assert reply.json()["error"] == error
    assert reply.json()["error_description"]


def test_credentials_in_the_query_string_are_refused(sb):
    creds = sb.credentials("inventory")
    params = {k: creds[k] for k in ("client_id", "client_secret", "refresh_token")}
    reply = requests.post(
        creds["token_url"], params=params, data={"grant_type": "refresh_token"}, timeout=10
    )
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request"
    as_json = requests.post(creds["token_url"], json={**params, "grant_type": "x"}, timeout=10)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_a_revoked_refresh_token_gets_invalid_grant():
    with Sandbox(seed=42) as sb:
        assert grant(sb).status_code == 200
        sb.engine.api("inventory").revoke_refresh_token()
        reply = grant(sb)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant"


def test_data_requests_need_a_live_bearer_token(sb):
    url = sb.base_url("inventory") + "/items"
    for headers in ({}, {"Authorization": "Bearer sbx-inventory-9-unknown"}):
        reply = requests.get(url, headers=headers, timeout=10)
        assert reply.status_code == 401
        assert reply.json()["code"] != 0 and reply.json()["message"]


def test_a_token_expires_after_the_configured_lifetime():
    with Sandbox(seed=42, options={"inventory": {"token_lifetime": 1}}) as sb:
        access = token(sb)
        assert get(sb, "/users", access).status_code == 200
        time.sleep(1.1)
        assert get(sb, "/users", access).status_code == 401
        assert get(sb, "/users").status_code == 200  # a fresh token works


# ----------------------------------------------------------------------------- organization


def test_organization_id_is_required_everywhere_but_organizations():
    with Sandbox(seed=42, options={"inventory": {"organization_id": ORG}}) as sb:
        access = token(sb)
        assert get(sb, "/items", access).status_code == 400
        other = get(sb, "/items", access, organization_id="999")
        assert other.status_code == 400 and "999" in other.json()["message"]
        assert get(sb, "/items", access, organization_id=ORG).status_code == 200
        assert get(sb, "/settings/warehouses", access, organization_id=ORG).status_code == 200
        orgs = get(sb, "/organizations", access)
        assert orgs.status_code == 200
        assert ORG in {o["organization_id"] for o in orgs.json()["organizations"]}


def test_without_an_organization_option_none_is_needed(sb):
    assert get(sb, "/items").status_code == 200


# ----------------------------------------------------------------------------- paging


@pytest.mark.parametrize(
    ("stream", "sizes"),
    [("items", [200, 200, 50]), ("contacts", [200, 200]), ("sales_orders", [200])],
)
def test_pages_say_has_more_page_until_the_last(sb, stream, sizes):
    path, selector = PAGED[stream]
    access = token(sb)
    pages = [get(sb, path, access, page=n, per_page=200).json() for n in range(1, len(sizes) + 1)]
    assert [len(p[selector]) for p in pages] == sizes
    assert [p["page_context"]["has_more_page"] for p in pages] == [True] * (len(sizes) - 1) + [
        False
    ]
    assert [p["page_context"]["page"] for p in pages] == list(range(1, len(sizes) + 1))
    assert all(p["code"] == 0 and p["message"] == "success" for p in pages)
    assert [r for p in pages for r in p[selector]] == sb.records("inventory", stream)
    assert sb.engine.api("inventory").violations == []


def test_every_paged_list_reads_whole_at_the_default_page_size(sb):
    access = token(sb)
    for stream, (path, selector) in PAGED.items():
        body = get(sb, path, access).json()
        if not body["page_context"]["has_more_page"]:
            assert body[selector] == sb.records("inventory", stream), stream
        assert body["page_context"]["per_page"] == 200


def test_per_page_is_capped_at_200_and_bad_values_refused(sb):
    access = token(sb)
    assert len(get(sb, "/items", access, per_page=500).json()["items"]) == 200
    assert len(get(sb, "/items", access, per_page=7, page=2).json()["items"]) == 7
    for bad in ({"page": "0"}, {"page": "x"}, {"per_page": "-1"}):
        reply = get(sb, "/items", access, **bad)
        assert reply.status_code == 400 and reply.json()["code"] != 0


def test_a_page_after_has_more_page_false_is_logged_as_a_violation():
    with Sandbox(seed=42) as sb:
        access = token(sb)
        assert (
            get(sb, "/salesorders", access, page=1).json()["page_context"]["has_more_page"] is False
        )
        reply = get(sb, "/salesorders", access, page=2)
        assert reply.status_code == 200 and reply.json()["salesorders"] == []
        empty = get(sb, "/creditnotes", access, page=1).json()
        assert empty["creditnotes"] == [] and empty["page_context"]["has_more_page"] is False
        violations = sb.engine.api("inventory").violations
    assert len(violations) == 1 and violations[0].startswith("/salesorders: page 2")


def test_warehouses_are_one_reply_and_refuse_page(sb):
    access = token(sb)
    body = get(sb, "/settings/warehouses", access).json()
    assert body["warehouses"] == sb.records("inventory", "warehouses")
    assert "page_context" not in body
    for params in ({"page": 1}, {"per_page": 200}):
        reply = get(sb, "/settings/warehouses", access, **params)
        assert reply.status_code == 400 and "page" in reply.json()["message"]


# ----------------------------------------------------------------------------- last_modified_time


def _epoch(value: str) -> float:
    return time.mktime(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")) - 19800 - time.timezone


def test_items_filter_on_last_modified_time_at_or_after(sb):
    truth = sb.records("inventory", "items")
    access = token(sb)
    cutoff = sorted(r["last_modified_time"] for r in truth)[len(truth) - 30]
    expected = [r for r in truth if _epoch(r["last_modified_time"]) >= _epoch(cutoff)]
    same_instant = {
        "zoned": cutoff,
        "colon": cutoff[:-2] + ":" + cutoff[-2:],
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_epoch(cutoff))),
    }
    for form, value in same_instant.items():
        body = get(sb, "/items", access, last_modified_time=value).json()
        assert body["items"] == expected, form
        assert body["page_context"]["has_more_page"] is False
    reply = get(sb, "/items", access, last_modified_time="yesterday")
    assert reply.status_code == 400


def test_mutations_stamp_last_modified_time_after_everything():
    with Sandbox(seed=42) as sb:
        before = max(_epoch(r["last_modified_time"]) for r in sb.records("inventory", "items"))
        changed = sb.mutate("inventory", "items", new=2, modified=3)
        access = token(sb)
        since = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(before + 1))
        body = get(sb, "/items", access, last_modified_time=since).json()
    assert sorted(r["item_id"] for r in body["items"]) == sorted(changed)
    assert len(changed) == 5


# ----------------------------------------------------------------------------- rate limit


def test_the_rate_limit_counts_fixed_windows_and_answers_429_with_retry_after(sb):
    access = token(sb)
    window = 2.0
    # Start just after a window boundary, so the burst below falls in one window.
    time.sleep(window - time.time() % window + 0.05)
    sb.add_fault(
        Fault(
            "rate_limit",
            api="inventory",
            per_second=5,
            window=window,
            fixed_window=True,
            times=None,
        )
    )
    statuses = [get(sb, "/users", access).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    limited = get(sb, "/users", access)
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["message"] == "Too many requests"
    time.sleep(window - time.time() % window + 0.05)
    assert get(sb, "/users", access).status_code == 200


def test_window_options_parse_from_the_cli_form():
    fault = Fault.parse("kind=rate_limit,api=inventory,per_second=100,window=60,fixed_window=true")
    assert fault.window == 60.0 and fault.fixed_window is True and fault.per_second == 100
