"""tap-invoicing against the sandbox: SERVICE bodies, paging in the body, errors in a 200."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from api_sandbox import Fault, Sandbox
from tap_invoicing.tap import TapInvoicing
from taps_core.errors import APIError
from tests.support import (
    assert_matches_ground_truth,
    catalog_selecting,
    run_cli,
    sync_in_process,
    tap_case,
)

INVOICING = tap_case("invoicing")
SENTINEL = "SENTINEL-invoicing-key-5d1e"
KEYS = {"invoices": "INVOICE_ID", "recurring_invoices": "INVOICE_ID", "customers": "CUSTOMER_ID"}
SERVICES = {
    "invoices": "invoice.get",
    "recurring_invoices": "recurring.get",
    "products": "article.get",
    "revenues": "revenue.get",
    "customers": "customer.get",
}


def _bodies(sandbox) -> list[dict]:
    return [json.loads(r.body) for r in sandbox.requests if r.api == "invoicing"]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def test_each_stream_sends_its_service_and_pages_in_the_body_until_a_short_page(sandbox):
    result = sync_in_process(TapInvoicing, INVOICING.config(sandbox))
    requests = [r for r in sandbox.requests if r.api == "invoicing"]
    assert requests
    assert all(r.method == "POST" and r.path == "/api.php" for r in requests)
    assert all(r.query == {} for r in requests), "paging must never travel in the query string"
    assert sandbox.engine.api("invoicing").violations == []
    bodies = _bodies(sandbox)
    for stream, service in SERVICES.items():
        truth = sandbox.records("invoicing", stream)
        mine = [b for b in bodies if b["SERVICE"] == service]
        assert all(b["LIMIT"] == 100 and b["FILTER"] == {} for b in mine), stream
        # OFFSET advances by the rows served, and a short page (or an empty one after an
        # exact multiple of 100) is the last request.
        expected_offsets = list(range(0, len(truth) + 1, 100))
        assert [b["OFFSET"] for b in mine] == expected_offsets, stream
        assert len(result.records(stream)) == len(truth), stream


# invoices: (served rows) -> requests. 100 and 200 are exact multiples: one empty page ends them.
PAGING_CASES = [(0, 1), (1, 1), (99, 1), (100, 2), (200, 3), (250, 3)]


@pytest.mark.parametrize(("count", "expected_requests"), PAGING_CASES, ids=lambda v: str(v))
def test_paging_ends_on_the_first_short_page(count, expected_requests):
    with Sandbox(seed=7, counts={"invoicing": {"invoices": count}}) as sandbox:
        config = INVOICING.config(sandbox)
        catalog = catalog_selecting(TapInvoicing, config, "invoices")
        result = sync_in_process(TapInvoicing, config, catalog=catalog)
        truth = sandbox.records("invoicing", "invoices")
        assert len(truth) == count
        assert_matches_ground_truth(INVOICING, "invoices", result.records("invoices"), truth)
        assert [b["OFFSET"] for b in _bodies(sandbox)] == [
            100 * i for i in range(expected_requests)
        ]


def test_an_errors_reply_fails_the_sync_with_its_message_exit_1_and_no_retry(sandbox, tmp_path):
    message = "FILTER START_DATE is not a valid date"
    body = json.dumps({"RESPONSE": {"ERRORS": [message]}})
    sandbox.add_fault(
        Fault(kind="status", api="invoicing", status=200, body=body, times=None, skip=1)
    )
    # One at a time: the fault answers the second request to arrive.
    config = INVOICING.config(sandbox, max_concurrent_requests=1)
    result = run_cli(INVOICING.executable, config, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-2000:]
    assert message in errors[0] and "tap-invoicing" in errors[0], errors[0]
    assert "POST /invoicing/api.php" in errors[0], errors[0]
    # The first request was served; the second got the ERRORS reply and was the last one:
    # an error is never retried and never read as the end of the list.
    assert len(sandbox.requests) == 2
    assert "retry" not in result.stderr
    assert "Sync completed" not in result.stderr


def test_the_sandbox_own_errors_reply_is_reported_the_same_way(sandbox, tmp_path):
    """A real ERRORS reply from the sandbox's dispatcher, not an injected body."""
    from tap_invoicing.streams import InvoicesStream

    class UnknownService(InvoicesStream):
        service = "invoice.list"

    tap = TapInvoicing(config=INVOICING.config(sandbox))
    stream = UnknownService(tap=tap)
    with pytest.raises(APIError, match=r"Unknown SERVICE: 'invoice.list'"):
        list(stream.get_records(None))
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
def test_wrong_credentials_fail_with_one_clear_line_and_never_show_the_key(
    sandbox, tmp_path, loglevel
):
    config = INVOICING.config(sandbox, api_key=SENTINEL)
    result = run_cli(INVOICING.executable, config, tmp_path, env={"LOGLEVEL": loglevel})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-2000:]
    for part in ("tap-invoicing", "401", "Unauthorized", "username and api_key"):
        assert part in errors[0], errors[0]
    assert SENTINEL not in result.stderr + result.stdout
    assert [r.status for r in sandbox.requests] == [401]


def test_start_date_is_sent_as_the_start_date_filter_where_the_service_takes_one(sandbox):
    config = INVOICING.config(sandbox, start_date="2025-01-01T00:00:00Z")
    result = sync_in_process(TapInvoicing, config)
    for body in _bodies(sandbox):
        if body["SERVICE"] in ("invoice.get", "revenue.get"):
            assert body["FILTER"] == {"START_DATE": "2025-01-01"}, body
        else:
            assert body["FILTER"] == {}, body
    truth = sandbox.records("invoicing", "invoices")
    since = [r for r in truth if r["INVOICE_DATE"] >= "2025-01-01"]
    assert 0 < len(since) < len(truth)
    assert_matches_ground_truth(INVOICING, "invoices", result.records("invoices"), since)
    customers = sandbox.records("invoicing", "customers")
    assert_matches_ground_truth(INVOICING, "customers", result.records("customers"), customers)


def test_lastupdate_is_emitted_as_rfc3339_and_the_zero_date_as_null(shared):
    result = sync_in_process(TapInvoicing, INVOICING.config(shared))
    for stream in ("invoices", "recurring_invoices", "customers"):
        truth = {r[KEYS[stream]]: r["LASTUPDATE"] for r in shared.records("invoicing", stream)}
        for record in result.records(stream):
            sent = truth[record[KEYS[stream]]]
            emitted = record["LASTUPDATE"]
            if sent == "0000-00-00 00:00:00":
                assert emitted is None, stream
                continue
            assert emitted.endswith("Z") and emitted[10] == "T", emitted
            moment = datetime.fromisoformat(emitted.replace("Z", "+00:00"))
            assert moment.strftime("%Y-%m-%d %H:%M:%S") == sent
    zero = [
        r
        for s in ("invoices", "customers")
        for r in shared.records("invoicing", s)
        if r["LASTUPDATE"] == "0000-00-00 00:00:00"
    ]
    assert zero, "the sandbox should send some zero dates"


def test_values_keep_the_types_the_api_sends(shared):
    result = sync_in_process(TapInvoicing, INVOICING.config(shared))
    invoice = result.records("invoices")[0]
    assert invoice["IS_CANCELED"] in ("0", "1")
    assert not isinstance(invoice["TOTAL"], str)
    product = result.records("products")[0]
    assert isinstance(product["UNIT_PRICE"], str)
    customers = result.records("customers")
    assert all(
        isinstance(v, str) or v is None
        for r in customers
        for k, v in r.items()
        if k != "LASTUPDATE"
    )
