"""The sandbox's bookings API over real HTTP, as the contract describes it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from api_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
FIELDS = json.loads((ROOT / "api_sandbox" / "fields" / "bookings.json").read_text())
USER = {"username": "sandbox-bookings-user", "password": "sandbox-bookings-password"}
ENTITY = "sandbox-legal-entity-01"
PATHS = {
    "account": "/v1/accounts",
    "booking": "/v1/bookings",
    "invoice": "/v1/invoices",
    "product": "/v1/products",
    "subscription": "/v1/subscriptions",
}
VENDOR_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}$")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.clear_requests()
    sandbox.engine.api("bookings").violations.clear()
    yield sandbox


def token(sb: Sandbox, **form: str) -> requests.Response:
    body = {
        "grant_type": "password",
        **USER,
        "client_id": "apiclient",
        "scope": "openid api profile",
        **form,
    }
    return requests.post(sb.base_url("bookings") + "/connect/token", data=body, timeout=10)


def headers(sb: Sandbox, entity: str | None = ENTITY) -> dict[str, str]:
    access = token(sb).json()["access_token"]
    out = {"Authorization": f"Bearer {access}"}
    if entity is not None:
        out["legal-entity"] = entity
    return out


def get(sb: Sandbox, url: str, hdrs: dict[str, str], **params: Any) -> requests.Response:
    if url.startswith("/"):
        url = sb.base_url("bookings") + url
    return requests.get(url, params=params, headers=hdrs, timeout=10)


def walk(sb: Sandbox, path: str, hdrs: dict[str, str], **params: Any) -> list[dict]:
    """Every page of a list, following nextPage as given, as a client must."""
    pages = [get(sb, path, hdrs, PageSize=100, PageNumber=1, **params).json()]
    while pages[-1]["nextPage"]:
        pages.append(get(sb, pages[-1]["nextPage"], hdrs).json())
    return pages


def missing_properties(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    missing: list[str] = []
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value:
                missing.append(f"{where}.{key}")
            else:
                missing += missing_properties(sub, value[key], f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            missing += missing_properties(schema["items"], item, f"{where}[{i}]")
    return missing


# ----------------------------------------------------------------------------- data


def test_every_record_has_every_field_a_uuid_and_vendor_timestamps(sb: Sandbox) -> None:
    assert set(sb.streams("bookings")) == set(FIELDS)
    for stream, schema in FIELDS.items():
        records = sb.records("bookings", stream)
        for i, record in enumerate(records):
            assert missing_properties(schema, record, f"{stream}[{i}]") == []
            assert str(uuid.UUID(record["id"])) == record["id"]
            assert VENDOR_TIME.match(record["created"]), record["created"]
            assert VENDOR_TIME.match(record["modified"]), record["modified"]
            assert record["modified"] >= record["created"]
        ids = [r["id"] for r in records]
        assert len(set(ids)) == len(ids), stream
    line = sb.records("bookings", "booking")[0]["bookingLines"]
    nested = [x["created"] for x in line if x.get("created")]
    assert all(VENDOR_TIME.match(v) for v in nested)


def test_lists_include_an_empty_one_an_exact_multiple_of_100_and_a_short_last_page(sb: Sandbox):
    counts = {s: len(sb.records("bookings", s)) for s in PATHS}
    assert counts["product"] == 0
    assert counts["invoice"] % 100 == 0 and counts["invoice"]
    assert counts["account"] % 100 != 0 and counts["account"] > 200


def test_the_same_seed_serves_the_same_bytes() -> None:
    with Sandbox(seed=42) as one, Sandbox(seed=42) as two, Sandbox(seed=43) as other:
        assert one.records("bookings", "account") == two.records("bookings", "account")
        assert one.records("bookings", "account") != other.records("bookings", "account")


# ----------------------------------------------------------------------------- auth


def test_the_password_grant_issues_a_bearer_token(sb: Sandbox) -> None:
    reply = token(sb)
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"]
    assert token(sb, scope="api").status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"password": "wrong"}, "invalid_grant"),
        ({"username": "nobody"}, "invalid_grant"),
        ({"client_id": "other"}, "invalid_client"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
    ],
)
def test_a_bad_token_request_is_refused_the_oauth_way(sb: Sandbox, form, error) -> None:
    reply = token(sb, **form)
    assert reply.status_code == 400
    assert reply.json()["error"] == error


def test_data_requests_need_a_valid_token(sb: Sandbox) -> None:
    assert get(sb, "/v1/accounts", {"legal-entity": ENTITY}).status_code == 401
    unknown = {"Authorization": "Bearer sbx-bookings-forged", "legal-entity": ENTITY}
    assert get(sb, "/v1/accounts", unknown).status_code == 401
    assert get(sb, "/v1/accounts", headers(sb)).status_code == 200


def test_a_token_expires_after_the_configured_lifetime(sb: Sandbox) -> None:
    issuer = sb.engine.api("bookings").token_issuer
    issuer.lifetime = 0
    try:
        reply = token(sb).json()
        assert reply["expires_in"] == 0
        stale = {"Authorization": f"Bearer {reply['access_token']}", "legal-entity": ENTITY}
        assert get(sb, "/v1/accounts", stale).status_code == 401
    finally:
        issuer.lifetime = 3600


@pytest.mark.parametrize("entity", [None, "", "other-legal-entity"])
def test_a_missing_or_unknown_legal_entity_is_403_without_echoing_it(sb: Sandbox, entity) -> None:
    reply = get(sb, "/v1/accounts", headers(sb, entity))
    assert reply.status_code == 403
    assert reply.json()["status"] == 403 and "legal" in reply.json()["detail"]
    if entity:
        assert entity not in reply.text


# ----------------------------------------------------------------------------- paging


@pytest.mark.parametrize("stream", sorted(PATHS))
def test_following_next_page_serves_each_list_whole_and_null_ends_it(sb: Sandbox, stream) -> None:
    pages = walk(sb, PATHS[stream], headers(sb))
    truth = sb.records("bookings", stream)
    assert [r for p in pages for r in p["data"]] == truth
    assert pages[-1]["nextPage"] is None
    expected_pages = -(-len(truth) // 100)
    assert len(pages) == max(expected_pages, 1)
    for number, page in enumerate(pages, 1):
        assert page["pageNumber"] == number and page["pageSize"] == 100
        assert page["totalPages"] == expected_pages and page["totalCount"] == len(truth)
    assert sb.engine.api("bookings").violations == []


def test_next_page_is_a_full_url_to_the_same_list(sb: Sandbox) -> None:
    first = get(sb, "/v1/accounts", headers(sb), PageSize=100, PageNumber=1).json()
    url = urlsplit(first["nextPage"])
    assert f"{url.scheme}://{url.netloc}" == sb.url
    assert url.path == "/bookings/v1/accounts"
    assert url.query == "PageNumber=2&PageSize=100"


def test_page_size_is_capped_at_100(sb: Sandbox) -> None:
    page = get(sb, "/v1/accounts", headers(sb), PageSize=500, PageNumber=1).json()
    assert page["pageSize"] == 100 and len(page["data"]) == 100


def test_a_rebuilt_next_page_or_a_page_past_the_end_is_a_violation(sb: Sandbox) -> None:
    api = sb.engine.api("bookings")
    hdrs = headers(sb)
    first = get(sb, "/v1/accounts", hdrs, PageSize=100, PageNumber=1).json()
    assert get(sb, first["nextPage"], hdrs).status_code == 200
    assert api.violations == []
    rebuilt = get(sb, "/v1/accounts", hdrs, PageSize=100, PageNumber=2)
    assert rebuilt.status_code == 200  # served, but noted
    assert len(api.violations) == 1 and "not a nextPage URL" in api.violations[0]
    past = get(sb, "/v1/invoices", hdrs, PageSize=100, PageNumber=3).json()
    assert past["data"] == [] and past["nextPage"] is None
    assert any("past totalPages" in v for v in api.violations)


def test_each_served_page_is_logged_with_its_legal_entity_and_next_page(sb: Sandbox) -> None:
    api = sb.engine.api("bookings")
    before = len(api.served)
    pages = walk(sb, "/v1/accounts", headers(sb))
    served = api.served[before:]
    assert [s.legal_entity for s in served] == [ENTITY] * len(pages)
    assert [s.next_page for s in served] == [p["nextPage"] for p in pages]
    assert served[0].target == "/bookings/v1/accounts?PageSize=100&PageNumber=1"


# ----------------------------------------------------------------------------- ModifiedAfter


def test_modified_after_is_strict_to_the_tick_and_travels_in_next_page(sb: Sandbox) -> None:
    truth = sb.records("bookings", "account")
    # A cut whose last digit can go one tick (100 ns) down without a carry.
    cut = next(m for m in sorted(r["modified"] for r in truth)[100:] if m[-1] != "0")
    hdrs = headers(sb)
    pages = walk(sb, "/v1/accounts", hdrs, ModifiedAfter=cut)
    got = [r for p in pages for r in p["data"]]
    assert got == [r for r in truth if r["modified"] > cut]
    assert len(pages) > 1 and all("ModifiedAfter=" in p["nextPage"] for p in pages[:-1])
    assert sb.engine.api("bookings").violations == []
    earlier = cut[:-1] + str(int(cut[-1]) - 1)
    again = walk(sb, "/v1/accounts", hdrs, ModifiedAfter=earlier)
    assert len([r for p in again for r in p["data"]]) == len(got) + 1
    # The same instant with a zone reads the same as without one (no zone is UTC).
    for zoned in (cut + "+00:00", cut + "Z"):
        again = walk(sb, "/v1/accounts", hdrs, ModifiedAfter=zoned)
        assert [r for p in again for r in p["data"]] == got
    ahead = walk(sb, "/v1/accounts", hdrs, ModifiedAfter=cut + "+01:00")
    assert len([r for p in ahead for r in p["data"]]) > len(got)


def test_a_bad_modified_after_is_400(sb: Sandbox) -> None:
    reply = get(sb, "/v1/accounts", headers(sb), ModifiedAfter="yesterday")
    assert reply.status_code == 400 and "ModifiedAfter" in reply.json()["detail"]


def test_edits_are_stamped_one_tick_after_the_newest_modified() -> None:
    with Sandbox(seed=42) as sb:
        before = sb.records("bookings", "booking")
        newest = max(r["modified"] for r in before)
        ids = sb.mutate("bookings", "booking", new=2, modified=3)
        after = {r["id"]: r for r in sb.records("bookings", "booking")}
        assert len(after) == len(before) + 2
        stamps = sorted(after[i]["modified"] for i in ids)
        assert all(s > newest for s in stamps)
        assert stamps[0][:19] == newest[:19], "the first edit lands in the bookmark's second"
        assert len(set(stamps)) == len(stamps)
        hdrs = headers(sb)
        changed = walk(sb, "/v1/bookings", hdrs, ModifiedAfter=newest)
        assert {r["id"] for p in changed for r in p["data"]} == set(ids)
