"""tap-bookings against the sandbox: the header, nextPage verbatim, ModifiedAfter, tokens."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import pytest

from api_sandbox import Fault
from tap_bookings.tap import TapBookings
from taps_core.errors import APIError
from tests.support import (
    assert_matches_ground_truth,
    catalog_selecting,
    run_cli,
    sync_in_process,
    tap_case,
)

BOOKINGS = tap_case("bookings")
PATHS = {
    "account": "/v1/accounts",
    "booking": "/v1/bookings",
    "invoice": "/v1/invoices",
    "product": "/v1/products",
    "subscription": "/v1/subscriptions",
}
SENTINEL = "SENTINEL-bookings-7c41e9"


def _data_requests(sandbox) -> list:
    return [r for r in sandbox.requests if r.api == "bookings" and r.path in PATHS.values()]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def _assert_all_synced(sandbox, result) -> None:
    for stream in PATHS:
        truth = sandbox.records("bookings", stream)
        assert_matches_ground_truth(BOOKINGS, stream, result.records(stream), truth)


def test_every_data_request_carries_the_legal_entity_header(sandbox):
    result = sync_in_process(TapBookings, BOOKINGS.config(sandbox))
    _assert_all_synced(sandbox, result)
    requests = _data_requests(sandbox)
    assert requests and all(r.status == 200 for r in requests)
    served = sandbox.engine.api("bookings").served
    assert len(served) == len(requests)
    entity = sandbox.credentials("bookings")["legal_entity"]
    assert {s.legal_entity for s in served} == {entity}


def test_requests_after_the_first_are_the_next_page_urls_verbatim(sandbox):
    sync_in_process(TapBookings, BOOKINGS.config(sandbox))
    api = sandbox.engine.api("bookings")
    assert api.violations == []
    for stream, path in PATHS.items():
        served = [s for s in api.served if s.stream == stream]
        pages = max(-(-len(sandbox.records("bookings", stream)) // 100), 1)
        assert len(served) == pages, stream
        assert served[0].target == f"/bookings{path}?PageSize=100&PageNumber=1"
        for before, after in itertools.pairwise(served):
            assert before.next_page == sandbox.url + after.target, stream
        assert served[-1].next_page is None, stream
    # The log agrees: every page of account, in order, once.
    account = [r for r in _data_requests(sandbox) if r.path == "/v1/accounts"]
    assert [r.query["PageNumber"] for r in account] == [["1"], ["2"], ["3"]]
    assert all(r.query["PageSize"] == ["100"] for r in account)


def _first_page_naming(sandbox, next_page: str) -> None:
    """The first account page (one record) names ``next_page``: a fault for one request."""
    body = {
        "pageNumber": 1,
        "pageSize": 100,
        "totalPages": 2,
        "totalCount": 101,
        "nextPage": next_page,
        "data": [sandbox.records("bookings", "account")[0]],
    }
    sandbox.add_fault(
        Fault(kind="status", api="bookings", path="/v1/accounts", status=200, body=json.dumps(body))
    )


def test_a_next_page_url_is_sent_byte_for_byte_even_where_requests_would_respell_it(sandbox):
    """``requests`` turns ``%7E`` into ``~``: the API's URL must reach it as the API wrote it."""
    target = "/bookings/v1/accounts?PageNumber=2&PageSize=100&Tag=a%7Eb"
    _first_page_naming(sandbox, sandbox.url + target)
    # One at a time: the requests are read in the order sent.
    tap = TapBookings(config=BOOKINGS.config(sandbox, max_concurrent_requests=1))
    list(tap.streams["account"].get_records(None))
    assert sandbox.engine.api("bookings").served[0].target == target


def test_a_next_page_on_another_host_stops_the_stream_before_any_request_goes_there(sandbox):
    _first_page_naming(
        sandbox, "http://elsewhere.example.com/v1/accounts?PageNumber=2&PageSize=100"
    )
    # One at a time: the requests are read in the order sent.
    tap = TapBookings(config=BOOKINGS.config(sandbox, max_concurrent_requests=1))
    with pytest.raises(APIError, match=r"'account'.*next page outside .*elsewhere\.example\.com"):
        list(tap.streams["account"].get_records(None))
    assert len(_data_requests(sandbox)) == 1


def test_a_second_sync_asks_modified_after_the_bookmark_and_gets_only_the_changes(sandbox):
    config = BOOKINGS.config(sandbox)
    first = sync_in_process(TapBookings, config)
    bookmarks = {
        stream: value["replication_key_value"]
        for stream, value in first.last_state["bookmarks"].items()
        if value
    }
    for stream, bookmark in bookmarks.items():
        newest = max(r["modified"] for r in sandbox.records("bookings", stream))
        assert bookmark == newest + "+00:00", stream  # UTC, all seven digits
    assert "product" not in bookmarks  # an empty list has nothing to bookmark

    changed = {
        "account": set(sandbox.mutate("bookings", "account", new=2, modified=3)),
        "booking": set(sandbox.mutate("bookings", "booking", modified=1)),
    }
    edited = {r["id"]: r["modified"] for r in sandbox.records("bookings", "booking")}
    stamp = next(edited[i] for i in changed["booking"])
    assert stamp[:19] == bookmarks["booking"][:19], "the edit must share the bookmark's second"
    sandbox.clear_requests()
    second = sync_in_process(TapBookings, config, state=first.last_state)

    for stream in PATHS:
        got = [r["id"] for r in second.records(stream)]
        assert sorted(got) == sorted(changed.get(stream, set())), stream
    sent = {r.path: r.query.get("ModifiedAfter") for r in _data_requests(sandbox)}
    for stream, bookmark in bookmarks.items():
        assert sent[PATHS[stream]] == [bookmark.removesuffix("+00:00")], stream
    assert sent["/v1/products"] is None
    newest = max(r["modified"] for r in sandbox.records("bookings", "account"))
    state = second.last_state["bookmarks"]
    assert state["account"]["replication_key_value"] == newest + "+00:00"
    assert state["invoice"]["replication_key_value"] == bookmarks["invoice"]


def test_start_date_is_sent_as_modified_after_in_the_api_form(sandbox):
    truth = sandbox.records("bookings", "invoice")
    cut = sorted(r["modified"] for r in truth)[len(truth) // 2]
    utc = cut[:19]  # whole seconds: the records of that second after it are still sent
    local = datetime.fromisoformat(utc) + timedelta(hours=2)
    config = BOOKINGS.config(sandbox, start_date=f"{local:%Y-%m-%dT%H:%M:%S}+02:00")
    catalog = catalog_selecting(TapBookings, config, "invoice")
    result = sync_in_process(TapBookings, config, catalog=catalog)
    assert next(r.query["ModifiedAfter"] for r in _data_requests(sandbox)) == [utc]
    expected = [r for r in truth if r["modified"] > utc]
    assert 0 < len(expected) < len(truth)
    assert_matches_ground_truth(BOOKINGS, "invoice", result.records("invoice"), expected)


def test_one_token_serves_the_whole_sync(sandbox):
    sync_in_process(TapBookings, BOOKINGS.config(sandbox))
    assert sandbox.engine.api("bookings").token_issuer.issued == 1
    assert len(_data_requests(sandbox)) > 5


def test_a_token_revoked_mid_sync_is_replaced_once_and_nothing_is_lost(sandbox):
    sandbox.add_fault(Fault(kind="token_expiry", api="bookings", after=3, times=1))
    # One at a time: overlapped, every request in flight with the revoked token gets
    # its 401 (one new token for them all: tests/test_overlap.py).
    result = sync_in_process(TapBookings, BOOKINGS.config(sandbox, max_concurrent_requests=1))
    _assert_all_synced(sandbox, result)
    assert sandbox.engine.api("bookings").token_issuer.issued == 2
    assert [r.status for r in _data_requests(sandbox)].count(401) == 1


def test_a_token_past_its_lifetime_is_renewed_before_the_api_refuses_it(sandbox):
    sandbox.engine.api("bookings").token_issuer.lifetime = 1
    sandbox.add_fault(Fault(kind="latency", api="bookings", seconds=0.3, times=None))
    # one request at a time, so that the sync outlasts the token (9 pages of 0.3 s)
    config = BOOKINGS.config(sandbox, max_concurrent_requests=1)
    result = sync_in_process(TapBookings, config)
    _assert_all_synced(sandbox, result)
    assert sandbox.engine.api("bookings").token_issuer.issued >= 2


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
def test_a_wrong_legal_entity_fails_with_one_403_line_that_hides_it(sandbox, tmp_path, loglevel):
    config = BOOKINGS.config(sandbox, legal_entity=SENTINEL, client_id="apiclient")
    result = run_cli(BOOKINGS.executable, config, tmp_path, env={"LOGLEVEL": loglevel})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-2000:]
    for part in ("tap-bookings", "403 Forbidden", "legal_entity", "legal entity"):
        assert part in errors[0], errors[0]
    output = result.stderr + result.stdout
    assert SENTINEL not in output
    assert config["password"] not in output and config["client_id"] not in output
    assert [r.status for r in _data_requests(sandbox)] == [403]


SECRETS = ("password", "client_id", "legal_entity")


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
def test_no_secret_setting_appears_in_any_output_of_a_sync(sandbox, tmp_path, loglevel):
    config = BOOKINGS.config(sandbox, client_id="apiclient")
    result = run_cli(BOOKINGS.executable, config, tmp_path, env={"LOGLEVEL": loglevel})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.sync.records("account")
    output = result.stdout + result.stderr
    for name in SECRETS:
        assert config[name] not in output, name


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
@pytest.mark.parametrize("wrong", ["password", "client_id"])  # legal_entity: the 403 test
def test_no_secret_setting_appears_in_any_output_of_a_failure(sandbox, tmp_path, loglevel, wrong):
    config = BOOKINGS.config(sandbox, **{"client_id": "apiclient", wrong: SENTINEL})
    result = run_cli(BOOKINGS.executable, config, tmp_path, env={"LOGLEVEL": loglevel})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(_error_lines(result.stderr)) == 1, result.stderr[-2000:]
    output = result.stdout + result.stderr
    for name in SECRETS:
        assert config[name] not in output, name
