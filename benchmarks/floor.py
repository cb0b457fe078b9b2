"""The raw floor: the least work any extractor of the orders list has to do.

A requests session, one orjson parse of each page, and one Singer-style RECORD line
a record to stdout (the harness points stdout at /dev/null). Same paging as
tap-rewards (``offset``/``limit=100``, stop at ``total_count`` or on an empty page), so
the request count and the bytes moved are the same: whatever the tap spends beyond
this is overhead of the tap, not of the machine or the sandbox.

Usage: ``python benchmarks/floor.py BASE_URL API_KEY`` (prints the record count to stderr).
``python benchmarks/floor.py --total BASE_URL API_KEY`` asks for one order and prints
``total_count``: the harness warms the sandbox up with it (the sandbox makes its data on
the first request), so that the harness itself never imports an HTTP client.
"""

from __future__ import annotations

import sys

import orjson
import requests

PAGE_SIZE = 100


def extract(base_url: str, api_key: str, out: object) -> int:
    """Write one RECORD line an order to ``out`` (a binary file); return the count."""
    write = out.write  # type: ignore[attr-defined]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    url = f"{base_url.rstrip('/')}/v2/orders"
    offset = 0
    count = 0
    while True:
        response = session.get(url, params={"offset": offset, "limit": PAGE_SIZE}, timeout=300)
        response.raise_for_status()
        body = orjson.loads(response.content)
        rows = body["orders"]
        for row in rows:
            write(orjson.dumps({"type": "RECORD", "stream": "orders", "record": row}) + b"\n")
        count += len(rows)
        offset += len(rows)
        total = body.get("total_count")
        if not rows or (total is not None and offset >= total):
            return count


def total(base_url: str, api_key: str) -> int:
    """``total_count`` of the orders list, from a one-row page."""
    response = requests.get(
        f"{base_url.rstrip('/')}/v2/orders",
        params={"offset": 0, "limit": 1},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=3600,
    )
    response.raise_for_status()
    return int(orjson.loads(response.content)["total_count"])


def main(argv: list[str]) -> int:
    """Entry point; the harness times the whole process, imports included."""
    if len(argv) == 3 and argv[0] == "--total":
        print(total(argv[1], argv[2]))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    count = extract(argv[0], argv[1], sys.stdout.buffer)
    sys.stdout.buffer.flush()
    print(count, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
