"""The sandbox's rewards API and engine, exercised over real HTTP as a tap would see them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from api_sandbox import Fault, Sandbox
from api_sandbox.datagen import StreamSpec
from api_sandbox.engine import Api, Engine, HttpServer, Request, Response, Route, TokenIssuer

ROOT = Path(__file__).resolve().parents[1]
FIELDS = json.loads((ROOT / "api_sandbox" / "fields" / "rewards.json").read_text())
KEY = "sandbox-rewards-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox with an empty request log and no faults left from other tests."""
    sandbox.clear_faults()
    sandbox.clear_requests()
    yield sandbox
    sandbox.clear_faults()


def get(sb: Sandbox, path: str, **params: Any) -> requests.Response:
    return requests.get(sb.base_url("rewards") + path, params=params, headers=AUTH, timeout=10)


def missing_properties(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Every property the schema names that ``value`` lacks, recursively into non-null values."""
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


def test_same_seed_same_bytes_other_seed_differs(sb: Sandbox) -> None:
    with Sandbox(seed=42) as twin, Sandbox(seed=43) as other:
        for stream in sb.streams("rewards"):
            assert twin.records("rewards", stream) == sb.records("rewards", stream), stream
        page = get(sb, "/v2/orders", offset=100).content
        assert get(twin, "/v2/orders", offset=100).content == page
        assert get(other, "/v2/orders", offset=100).content != page
        assert other.records("rewards", "orders") != sb.records("rewards", "orders")


def test_every_record_has_every_field(sb: Sandbox) -> None:
    assert set(sb.streams("rewards")) == set(FIELDS)
    for stream, schema in FIELDS.items():
        records = sb.records("rewards", stream)
        for i, record in enumerate(records):
            assert missing_properties(schema, record, f"{stream}[{i}]") == []


def test_default_counts_and_shapes(sb: Sandbox) -> None:
    counts = {s: len(sb.records("rewards", s)) for s in sb.streams("rewards")}
    assert counts == {
        "orders": 250,
        "products": 8,
        "funding_sources": 0,
        "account_members": 12,
        "campaigns": 4,
        "organizations": 1,
        "balance_transactions": 30,
        "rewards": 20,
        "members": 12,
        "invoices": 25,
    }
    assert sb.records("rewards", "account_members") == sb.records("rewards", "members")
    transactions = sb.records("rewards", "balance_transactions")
    assert all("id" not in t for t in transactions)
    rows = [orjson.dumps(t) for t in transactions]
    assert len(set(rows)) < len(rows), "no byte-identical pair of balance_transactions"
    order = sb.records("rewards", "orders")[0]
    assert isinstance(order["rewards"], list) and order["rewards"]
    assert set(order["rewards"][0]) == set(FIELDS["rewards"]["properties"])
    assert order["rewards"][0]["order_id"] == order["id"]
    ids = [o["id"] for o in sb.records("rewards", "orders")]
    assert len(set(ids)) == len(ids)
    created = [o["created_at"] for o in sb.records("rewards", "orders")]
    assert created == sorted(created, reverse=True)
    assert created[0].endswith("Z") and len(created[0]) == len("2024-03-05T12:06:10Z")
    assert len(sb.records("rewards", "organizations")[0]["created_at"]) == len("2024-03-05")


def test_counts_and_records_arguments() -> None:
    sb = Sandbox(records=7, counts={"rewards": {"orders": 0, "campaigns": 1, "members": 3}})
    assert len(sb.records("rewards", "orders")) == 0
    assert len(sb.records("rewards", "rewards")) == 7
    assert len(sb.records("rewards", "invoices")) == 7
    assert len(sb.records("rewards", "campaigns")) == 1
    assert len(sb.records("rewards", "account_members")) == 3
    assert len(sb.records("rewards", "products")) == 8  # unpaginated: records= does not apply


# ----------------------------------------------------------------------------- wire contract


def test_auth(sb: Sandbox) -> None:
    url = sb.base_url("rewards") + "/v2/orders"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        reply = requests.get(url, headers=headers, timeout=10)
        assert reply.status_code == 401
        assert reply.json() == {"error": {"message": "Unauthorized"}}
    assert sb.credentials("rewards") == {"api_key": KEY}
    assert get(sb, "/v2/nowhere").status_code == 404
    assert requests.get(sb.url + "/nosuchapi/x", timeout=10).status_code == 404


def test_orders_pages(sb: Sandbox) -> None:
    truth = sb.records("rewards", "orders")
    pages = [get(sb, "/v2/orders", offset=o).json() for o in (0, 100, 200, 300)]
    assert [len(p["orders"]) for p in pages] == [100, 100, 50, 0]
    assert all(p["total_count"] == 250 for p in pages)
    assert [o for p in pages for o in p["orders"]] == truth
    assert len(get(sb, "/v2/orders", limit=1000).json()["orders"]) == 250  # cap 500 > 250
    assert len(get(sb, "/v2/orders", limit=3, offset=5).json()["orders"]) == 3
    assert get(sb, "/v2/orders", limit="x").status_code == 400


def test_invoices_capped_at_ten(sb: Sandbox) -> None:
    seen = []
    offset = 0
    while True:
        body = get(sb, "/v2/invoices", offset=offset, limit=100).json()
        assert body["total_count"] == 25
        assert len(body["invoices"]) <= 10
        seen += body["invoices"]
        offset += len(body["invoices"])
        if offset >= body["total_count"] or not body["invoices"]:
            break
    assert seen == sb.records("rewards", "invoices")
    assert len(get(sb, "/v2/rewards", limit=10, offset=10).json()["rewards"]) == 10


def test_balance_transactions_end_on_empty_page(sb: Sandbox) -> None:
    sizes = []
    rows: list[dict[str, Any]] = []
    for offset in range(0, 40, 10):
        body = get(sb, "/v2/balance_transactions", offset=offset, limit=10).json()
        assert set(body) == {"transactions"}
        sizes.append(len(body["transactions"]))
        rows += body["transactions"]
    assert sizes == [10, 10, 10, 0]
    assert rows == sb.records("rewards", "balance_transactions")
    assert len(get(sb, "/v2/balance_transactions").json()["transactions"]) == 10  # default
    assert len(get(sb, "/v2/balance_transactions", limit=500).json()["transactions"]) == 30


def test_unpaged_lists_ignore_offset_and_limit(sb: Sandbox) -> None:
    for path, selector, stream in (
        ("/v2/products", "products", "products"),
        ("/v2/members", "members", "members"),
        ("/v2/campaigns", "campaigns", "campaigns"),
        ("/v2/organizations", "organizations", "organizations"),
        ("/v2/funding_sources", "funding_sources", "funding_sources"),
    ):
        first = get(sb, path, offset=0, limit=10)
        assert first.json() == {selector: sb.records("rewards", stream)}
        assert get(sb, path, offset=10, limit=10).content == first.content
        assert get(sb, path, offset=1000).content == first.content


def test_created_at_gte(sb: Sandbox) -> None:
    for stream, path, selector in (
        ("orders", "/v2/orders", "orders"),
        ("balance_transactions", "/v2/balance_transactions", "transactions"),
    ):
        truth = sb.records("rewards", stream)
        since = truth[17]["created_at"]
        expected = [r for r in truth if r["created_at"] >= since]
        body = get(sb, path, **{"created_at[gte]": since, "limit": 100}).json()
        assert body[selector] == expected
        if stream == "orders":
            assert body["total_count"] == len(expected)
    since = sb.records("rewards", "orders")[3]["created_at"].replace("Z", "+00:00")
    assert get(sb, "/v2/orders", **{"created_at[gte]": since}).json()["total_count"] == 4
    assert get(sb, "/v2/orders", **{"created_at[gte]": "2999-01-01"}).json()["orders"] == []
    everything = get(sb, "/v2/orders", **{"created_at[gte]": "2000-01-01T00:00:00Z"})
    assert everything.json()["total_count"] == 250
    assert get(sb, "/v2/orders", **{"created_at[gte]": "yesterday"}).status_code == 400
    # other streams ignore the filter
    assert get(sb, "/v2/invoices", **{"created_at[gte]": "2999-01-01"}).json()["total_count"] == 25


# ----------------------------------------------------------------------------- faults


def test_status_fault_with_retry_after_and_counting(sb: Sandbox) -> None:
    sb.add_fault(Fault("status", api="rewards", path="/v2/orders", status=429, retry_after="2"))
    reply = get(sb, "/v2/orders")
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "2"
    assert reply.json() == {"error": {"message": "Too many requests"}}
    assert get(sb, "/v2/orders").status_code == 200
    sb.add_fault(Fault("status", path="/v2/rewards", status=503, skip=1, times=2, body=b"busy"))
    replies = [get(sb, "/v2/rewards") for _ in range(5)]
    assert [r.status_code for r in replies] == [200, 503, 503, 200, 200]
    assert replies[1].content == b"busy"
    assert get(sb, "/v2/orders").status_code == 200  # path-scoped
    sb.add_fault(Fault("status", api="otherapi", times=None))
    assert get(sb, "/v2/orders").status_code == 200  # api-scoped


def test_reset_truncate_malformed(sb: Sandbox) -> None:
    sb.add_fault(Fault("reset", path="/v2/orders"))
    with pytest.raises(requests.ConnectionError):
        get(sb, "/v2/orders")
    sb.add_fault(Fault("truncate", path="/v2/orders"))
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        get(sb, "/v2/orders")
    sb.add_fault(Fault("malformed", path="/v2/orders"))
    reply = get(sb, "/v2/orders")
    assert reply.status_code == 200
    with pytest.raises(ValueError):
        reply.json()
    assert get(sb, "/v2/orders").json()["total_count"] == 250
    assert [(r.status, r.fault) for r in sb.requests] == [
        (0, "reset"),
        (200, "truncate"),
        (200, "malformed"),
        (200, None),
    ]


def test_latency(sb: Sandbox) -> None:
    sb.add_fault(Fault("latency", seconds=0.3, times=1))
    started = time.monotonic()
    assert get(sb, "/v2/products").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    get(sb, "/v2/products")
    assert time.monotonic() - started < 0.3
    assert [r.fault for r in sb.requests] == ["latency", None]


def test_rate_limit(sb: Sandbox) -> None:
    sb.add_fault(Fault("rate_limit", per_second=5, times=None))
    with requests.Session() as session:
        replies = [
            session.get(sb.base_url("rewards") + "/v2/products", headers=AUTH, timeout=10)
            for _ in range(8)
        ]
    statuses = [r.status_code for r in replies]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = next(r for r in replies if r.status_code == 429)
    assert limited.headers["Retry-After"] == "1"
    assert limited.json() == {"error": {"message": "Too many requests"}}
    time.sleep(1.05)
    assert get(sb, "/v2/products").status_code == 200


def test_fault_spec_parsing() -> None:
    fault = Fault.parse("kind=status,api=rewards,path=/v2/orders,status=429,retry_after=2,times=1")
    assert fault == Fault(
        "status", api="rewards", path="/v2/orders", status=429, retry_after="2", times=1
    )
    assert Fault.parse("kind=rate_limit,per_second=3,times=none").times is None
    assert Fault.parse("kind=latency,seconds=0.5,skip=2").seconds == 0.5
    with pytest.raises(ValueError):
        Fault.parse("kind=explode")
    with pytest.raises(ValueError):
        Fault.parse("status=500")


class _OAuthDemo(Api):
    """A minimal OAuth API, to show the engine's token issuer works for the APIs to come."""

    name = "oauthdemo"

    def __init__(self, seed: int) -> None:
        self.token_issuer = TokenIssuer(self.name, seed)
        super().__init__(seed)

    def stream_specs(self) -> list[StreamSpec]:
        schema = {"type": "object", "properties": {"id": {"type": "string"}}}
        return [StreamSpec("things", schema, 3, id_prefix="TH", time_field=None)]

    def credentials(self) -> dict[str, str]:
        return {"client_id": "demo"}

    def authenticate(self, request: Request) -> Response | None:
        assert self.token_issuer is not None
        return None if self.token_issuer.valid(request.bearer()) else self.error(401)

    def routes(self) -> list[Route]:
        def token(request: Request) -> Response:
            assert self.token_issuer is not None
            return Response(200, orjson.dumps(self.token_issuer.issue()))

        def things(request: Request) -> Response:
            return Response(200, b'{"data":[' + b",".join(self.data("things").rows) + b"]}")

        return [Route("POST", "/token", token, data=False), Route("GET", "/things", things)]


def test_token_expiry_with_engine_token_issuer() -> None:
    engine = Engine([_OAuthDemo(1)], [Fault("token_expiry", after=2, times=1)])
    server = HttpServer(engine)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.address[1]}/oauthdemo"
        token = requests.post(base + "/token", timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [requests.get(base + "/things", headers=headers, timeout=10).status_code]
        statuses += [requests.get(base + "/things", headers=headers, timeout=10).status_code]
        statuses += [requests.get(base + "/things", headers=headers, timeout=10).status_code]
        assert statuses == [200, 200, 401]
        assert engine.requests[-1].fault == "token_expiry"
        fresh = requests.post(base + "/token", timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {fresh}"}
        for _ in range(4):  # times=1: the second token never expires
            reply = requests.get(base + "/things", headers=headers, timeout=10)
            assert reply.status_code == 200
        assert len(reply.json()["data"]) == 3
    finally:
        server.stop()


# ----------------------------------------------------------------------------- log, mutate


def test_request_log(sb: Sandbox) -> None:
    before = time.time()
    get(sb, "/v2/orders", offset=100, limit=100)
    requests.get(sb.base_url("rewards") + "/v2/products", timeout=10)
    log = sb.requests
    assert len(log) == 2
    first = log[0]
    assert (first.api, first.method, first.path, first.status, first.fault) == (
        "rewards",
        "GET",
        "/v2/orders",
        200,
        None,
    )
    assert first.query == {"offset": ["100"], "limit": ["100"]}
    assert first.body == b""
    assert before <= first.time <= time.time()
    assert (log[1].path, log[1].status) == ("/v2/products", 401)
    sb.clear_requests()
    assert sb.requests == []


def test_mutate_adds_at_front_and_modifies() -> None:
    with Sandbox(seed=5) as sb:
        before = sb.records("rewards", "orders")
        ids = sb.mutate("rewards", "orders", new=5, modified=3)
        after = sb.records("rewards", "orders")
        assert len(ids) == 8
        assert [o["id"] for o in after[:5]] == ids[:5]
        assert after[5:] != before
        assert min(o["created_at"] for o in after[:5]) > before[0]["created_at"]
        old = {o["id"]: o for o in before}
        for record_id in ids[5:]:
            changed = next(o for o in after if o["id"] == record_id)
            assert changed["status"] != old[record_id]["status"]
        assert {o["id"] for o in after[5:]} == set(old)
        body = get(sb, "/v2/orders").json()
        assert body["total_count"] == 255
        assert [o["id"] for o in body["orders"][:5]] == ids[:5]
        since = after[4]["created_at"]
        assert get(sb, "/v2/orders", **{"created_at[gte]": since}).json()["total_count"] == 5


def test_control_endpoints(sb: Sandbox) -> None:
    control = sb.url + "/_sandbox"
    assert requests.get(control + "/health", timeout=10).json()["status"] == "ok"
    records = requests.get(control + "/records/rewards/invoices", timeout=10).json()
    assert records == sb.records("rewards", "invoices")
    assert requests.get(control + "/records/rewards/nothing", timeout=10).status_code == 404
    fault = {"kind": "status", "path": "/v2/invoices", "status": 500, "times": 1}
    assert requests.post(control + "/faults", json=fault, timeout=10).status_code == 201
    assert get(sb, "/v2/invoices").status_code == 500
    requests.post(control + "/faults", json={"kind": "status", "times": None}, timeout=10)
    assert get(sb, "/v2/invoices").status_code == 503
    assert requests.delete(control + "/faults", timeout=10).status_code == 200
    assert get(sb, "/v2/invoices").status_code == 200
    assert requests.post(control + "/faults", json={"kind": "nope"}, timeout=10).status_code == 400
    log = requests.get(control + "/requests", timeout=10).json()
    assert [(e["path"], e["status"], e["fault"]) for e in log] == [
        ("/v2/invoices", 500, "status"),
        ("/v2/invoices", 503, "status"),
        ("/v2/invoices", 200, None),
    ]
    requests.delete(control + "/requests", timeout=10)
    assert requests.get(control + "/requests", timeout=10).json() == []
    with Sandbox(seed=9) as other:
        mutate = {"api": "rewards", "stream": "invoices", "new": 2, "modified": 1}
        ids = requests.post(other.url + "/_sandbox/mutate", json=mutate, timeout=10).json()["ids"]
        assert len(ids) == 3
        assert [i["id"] for i in other.records("rewards", "invoices")[:2]] == ids[:2]


def test_cli_serve_prints_base_urls() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "api_sandbox.cli", "serve", "--port", "0", "--seed", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "rewards"
        assert line[1].startswith("http://127.0.0.1:") and line[1].endswith("/rewards")
        reply = requests.get(line[1] + "/v2/campaigns", headers=AUTH, timeout=10)
        assert len(reply.json()["campaigns"]) == 4
        # One base URL line per API, then one credentials line per API.
        lines = [proc.stdout.readline() for _ in range(2 * len(Sandbox(seed=3).apis) - 1)]
        assert any(x.startswith("rewards credentials:") and KEY in x for x in lines), lines
    finally:
        proc.terminate()
    assert proc.wait(timeout=10) == 0
