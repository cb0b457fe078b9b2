"""The sandbox's invoicing API over real HTTP, as the contract describes it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
FIELDS = json.loads((ROOT / "api_sandbox" / "fields" / "invoicing.json").read_text())
AUTH = ("sandbox-invoicing-user", "sandbox-invoicing-key")
TEXT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
SELECTORS = {
    "invoice.get": ("invoices", "INVOICES"),
    "recurring.get": ("recurring_invoices", "INVOICES"),
    "article.get": ("products", "ARTICLES"),
    "revenue.get": ("revenues", "REVENUES"),
    "customer.get": ("customers", "CUSTOMERS"),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.clear_requests()
    yield sandbox


def post(sb: Sandbox, body: Any, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    return requests.post(sb.base_url("invoicing") + "/api.php", json=body, timeout=10, **kwargs)


def errors_of(reply: requests.Response) -> list[str]:
    assert reply.status_code == 200
    return reply.json()["RESPONSE"].get("ERRORS", [])


def test_every_record_has_every_field_with_the_vendor_types(sb: Sandbox) -> None:
    assert set(sb.streams("invoicing")) == set(FIELDS)
    for stream, schema in FIELDS.items():
        for record in sb.records("invoicing", stream):
            assert set(record) == set(schema["properties"]), stream
    for record in sb.records("invoicing", "invoices"):
        assert record["IS_CANCELED"] in ("0", "1")
        for name in ("TOTAL", "VAT_TOTAL", "SUB_TOTAL"):
            assert isinstance(record[name], float), name
        assert record["TOTAL"] == pytest.approx(record["SUB_TOTAL"] + record["VAT_TOTAL"])
        assert all(isinstance(i["UNIT_PRICE"], float) for i in record["ITEMS"])
        assert TEXT_TIME.match(record["LASTUPDATE"])
    for record in sb.records("invoicing", "products"):
        assert isinstance(record["UNIT_PRICE"], str)
        float(record["UNIT_PRICE"])


def test_lists_include_an_all_text_one_an_empty_one_and_an_exact_multiple_of_100(sb: Sandbox):
    customers = sb.records("invoicing", "customers")
    assert all(isinstance(v, str) or v is None for r in customers for v in r.values())
    assert len(customers) % 100 == 0 and customers
    assert sb.records("invoicing", "revenues") == []
    assert len(sb.records("invoicing", "invoices")) % 100 != 0


@pytest.mark.parametrize("service", sorted(SELECTORS))
def test_each_service_serves_its_list_under_its_selector_and_echoes_the_request(
    sb: Sandbox, service: str
) -> None:
    stream, key = SELECTORS[service]
    body = {"SERVICE": service, "FILTER": {}, "LIMIT": 100, "OFFSET": 0}
    reply = post(sb, body).json()
    assert reply["REQUEST"] == body
    assert reply["RESPONSE"][key] == sb.records("invoicing", stream)[:100]


def test_limit_and_offset_page_the_body_and_limit_is_capped_at_100(sb: Sandbox) -> None:
    truth = sb.records("invoicing", "invoices")
    page = post(sb, {"SERVICE": "invoice.get", "LIMIT": 10, "OFFSET": 245}).json()
    assert page["RESPONSE"]["INVOICES"] == truth[245:255]
    big = post(sb, {"SERVICE": "invoice.get", "LIMIT": 500, "OFFSET": 0}).json()
    assert len(big["RESPONSE"]["INVOICES"]) == 100


def test_paging_in_the_query_string_is_ignored_and_logged_as_a_violation(sb: Sandbox) -> None:
    api = sb.engine.api("invoicing")
    before = len(api.violations)
    url = sb.base_url("invoicing") + "/api.php"
    reply = requests.post(
        url, params={"OFFSET": 200}, json={"SERVICE": "invoice.get"}, auth=AUTH, timeout=10
    )
    assert reply.json()["RESPONSE"]["INVOICES"][0] == sb.records("invoicing", "invoices")[0]
    assert len(api.violations) == before + 1
    assert "OFFSET" in api.violations[-1]
    assert sb.requests[-1].query == {"OFFSET": ["200"]}


def test_filter_start_and_end_date_narrow_invoices_by_invoice_date(sb: Sandbox) -> None:
    truth = sb.records("invoicing", "invoices")
    window = {"START_DATE": "2024-03-01", "END_DATE": "2024-06-30"}
    rows = []
    offset = 0
    while True:
        body = {"SERVICE": "invoice.get", "FILTER": window, "LIMIT": 100, "OFFSET": offset}
        page = post(sb, body).json()["RESPONSE"]["INVOICES"]
        rows += page
        offset += len(page)
        if len(page) < 100:
            break
    expected = [r for r in truth if "2024-03-01" <= r["INVOICE_DATE"] <= "2024-06-30"]
    assert expected and rows == expected


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"SERVICE": "invoice.list"}, "Unknown SERVICE"),
        ({}, "Unknown SERVICE"),
        ({"SERVICE": "invoice.get", "FILTER": {"START_DATE": "31.01.2024"}}, "START_DATE"),
        ({"SERVICE": "invoice.get", "FILTER": {"CUSTOMER": "1"}}, "Unknown FILTER"),
        ({"SERVICE": "customer.get", "FILTER": {"START_DATE": "2024-01-01"}}, "Unknown FILTER"),
        ({"SERVICE": "invoice.get", "LIMIT": 0}, "LIMIT"),
        ({"SERVICE": "invoice.get", "OFFSET": -1}, "OFFSET"),
    ],
)
def test_errors_come_back_as_200_with_errors_in_the_response(sb: Sandbox, body, text) -> None:
    errors = errors_of(post(sb, body))
    assert errors and text in errors[0]


def test_a_body_that_is_not_json_is_an_error_too(sb: Sandbox) -> None:
    url = sb.base_url("invoicing") + "/api.php"
    plain = requests.post(url, data="SERVICE=invoice.get", auth=AUTH, timeout=10)
    assert "Content-Type" in errors_of(plain)[0]
    broken = requests.post(
        url, data="{", headers={"Content-Type": "application/json"}, auth=AUTH, timeout=10
    )
    assert "not valid JSON" in errors_of(broken)[0]


def test_http_basic_is_required(sb: Sandbox) -> None:
    assert post(sb, {"SERVICE": "invoice.get"}, auth=None).status_code == 401
    wrong = post(sb, {"SERVICE": "invoice.get"}, auth=(AUTH[0], "wrong"))
    assert wrong.status_code == 401
    assert wrong.json() == {"RESPONSE": {"ERRORS": ["Unauthorized"]}}
    assert post(sb, {"SERVICE": "invoice.get"}).status_code == 200
