"""dlt running seed 004's own ``rest_api_source`` configuration: what a user would pick instead.

Runs in the benchmark-only venv (``benchmarks/.venv``), never the project's: dlt is not a
runtime dependency, and its duckdb would clash with the duckdb==1.0.0 that the pinned
target-duckdb needs.

The configuration is the seed's, with only three changes, so that the comparison is
with dlt as a user would run it and not with a tuned rewrite:

- ``base_url``: the local sandbox;
- the token: given literally instead of ``dlt.secrets["api_key"]``;
- ``total_path: "total_count"`` on the orders paginator: dlt's offset paginator reads
  ``total`` by default, which the API does not send.

Only the ``orders`` resource is handed to ``rest_api_source`` (and selected with
``with_resources("orders")``): the seed's ``products`` paginator has no ``limit``, which
dlt 1.31's ``OffsetPaginator`` requires, so dlt refuses the whole configuration as
written. Orders are all that is measured, and their entry is untouched.

dlt is put in its fastest settings for this job: no compression of its intermediate
files, ``jsonl`` loader files for DuckDB, telemetry off (all traffic stays on 127.0.0.1).

Usage (from the harness)::

    python benchmarks/dlt_rewards.py extract BASE_URL API_KEY WORKDIR
    python benchmarks/dlt_rewards.py run     BASE_URL API_KEY WORKDIR
    python benchmarks/dlt_rewards.py count   WORKDIR     # after ``run``: rows and distinct ids

``extract`` and ``run`` print ``{"rows": N}`` (the orders rows dlt extracted) on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Before dlt is imported, so that its configuration resolves them from the start.
os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

PIPELINE_NAME = "rewards_bench"
DATASET_NAME = "rewards"


def seed_config(base_url: str, token: str) -> dict[str, Any]:
    """Seed 004's configuration, changed only where the module docstring says."""

    def offset(limit: int | None = None, **extra: Any) -> dict[str, Any]:
        paginator: dict[str, Any] = {"type": "offset", "offset_param": "offset", **extra}
        if limit is not None:
            paginator["limit"] = limit
        return paginator

    def resource(name: str, path: str, selector: str, paginator: dict[str, Any]) -> dict:
        return {
            "name": name,
            "endpoint": {"path": path, "data_selector": selector, "paginator": paginator},
        }

    return {
        "client": {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": token},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            resource("orders", "/v2/orders", "orders", offset(100, total_path="total_count")),
            resource("products", "/v2/products", "products", offset()),
            resource("funding_sources", "/v2/funding_sources", "funding_sources", offset(10)),
            resource("account_members", "/v2/members", "members", offset(10)),
            resource("campaigns", "/v2/campaigns", "campaigns", offset(10)),
            resource("organizations", "/v2/organizations", "organizations", offset(10)),
            resource(
                "balance_transactions", "/v2/balance_transactions", "transactions", offset(10)
            ),
            resource("rewards", "/v2/rewards", "rewards", offset(10)),
            resource("members", "/v2/members", "members", offset(100)),
            resource("invoices", "/v2/invoices", "invoices", offset(100)),
        ],
    }


def _pipeline(workdir: Path) -> Any:
    import dlt

    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name=DATASET_NAME,
    )


def extract(base_url: str, token: str, workdir: Path, *, load: bool) -> int:
    """Extract (and with ``load``, normalize and load) the orders resource; return its rows."""
    from dlt.sources.rest_api import rest_api_source

    config = seed_config(base_url, token)
    config["resources"] = [r for r in config["resources"] if r["name"] == "orders"]
    source = rest_api_source(config).with_resources("orders")
    pipeline = _pipeline(workdir)
    if load:
        pipeline.run(source, loader_file_format="jsonl")
        info = pipeline.last_trace.last_extract_info
    else:
        info = pipeline.extract(source)
    rows = 0
    for metrics_list in info.metrics.values():
        for metrics in metrics_list:
            table = metrics["table_metrics"].get("orders")
            if table is not None:
                rows += table.items_count
    return rows


def count(workdir: Path) -> dict[str, int]:
    """Rows and distinct ids of the loaded orders table (checked outside the timing)."""
    import duckdb

    con = duckdb.connect(str(workdir / "dlt.duckdb"), read_only=True)
    try:
        rows, ids = con.execute(
            f"select count(*), count(distinct id) from {DATASET_NAME}.orders"
        ).fetchone()
    finally:
        con.close()
    return {"rows": int(rows), "distinct_ids": int(ids)}


def main(argv: list[str]) -> int:
    """Entry point: one step a process, so the harness times and measures it alone."""
    if len(argv) == 4 and argv[0] in ("extract", "run"):
        rows = extract(argv[1], argv[2], Path(argv[3]), load=argv[0] == "run")
        print(json.dumps({"rows": rows}))
        return 0
    if len(argv) == 2 and argv[0] == "count":
        print(json.dumps(count(Path(argv[1]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
