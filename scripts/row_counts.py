"""Print each table's row count in a DuckDB file, beside the sandbox's own count.

Schemas are named after taps (``tap_rewards``), tables after streams, so each table
can be matched with ``GET /_sandbox/records/<api>/<stream>``. Exits 1 on a mismatch:
a demo that lost rows must not look like a success.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

import duckdb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database")
    parser.add_argument("--sandbox", help="sandbox URL, to compare counts with its data")
    args = parser.parse_args()
    con = duckdb.connect(args.database, read_only=True)
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "order by table_schema, table_name"
    ).fetchall()
    mismatches = 0
    print(f"{'table':45} {'rows':>9} {'sandbox':>9}")
    for schema, table in tables:
        rows = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
        expected = ""
        if args.sandbox and schema.startswith("tap_"):
            api = schema.removeprefix("tap_")
            url = f"{args.sandbox}/_sandbox/records/{api}/{table}"
            with urllib.request.urlopen(url) as reply:
                expected = len(json.load(reply))
            mismatches += expected != rows
        flag = "" if expected in ("", rows) else "  MISMATCH"
        print(f"{schema + '.' + table:45} {rows:>9} {expected!s:>9}{flag}")
    if not tables:
        print("no tables were loaded")
        return 1
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
