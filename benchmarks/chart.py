"""Draw ``benchmarks/out/overlap.png`` from the ``--overlap`` mode's JSON figures.

Run in ``benchmarks/.venv`` (matplotlib is a benchmark-only dependency); run.py calls
it after the mode, and it can be run again on a saved file:
``benchmarks/.venv/bin/python benchmarks/chart.py benchmarks/out/overlap.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: a file only
import matplotlib.pyplot as plt


def main(path: str) -> int:
    figures = json.loads(Path(path).read_text())
    runs = figures["runs"]
    names = list(dict.fromkeys(r["what"] for r in runs))
    latencies = sorted({r["latency"] for r in runs})
    fig, axes = plt.subplots(1, len(latencies), figsize=(6 * len(latencies), 4.2), sharey=False)
    axes = axes if len(latencies) > 1 else [axes]
    for ax, latency in zip(axes, latencies, strict=True):
        seconds = {
            (r["what"], r["concurrent"]): r["seconds"] for r in runs if r["latency"] == latency
        }
        xs = range(len(names))
        one = [seconds[(name, 1)] for name in names]
        eight = [seconds[(name, 8)] for name in names]
        ax.bar([x - 0.2 for x in xs], one, 0.4, label="max_concurrent_requests: 1")
        ax.bar([x + 0.2 for x in xs], eight, 0.4, label="default (8)")
        for x, a, b in zip(xs, one, eight, strict=True):
            ax.text(x + 0.2, b, f"{a / b:.1f}x", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), names, rotation=20, fontsize=8)
        ax.set_ylabel("wall seconds (process start to exit)")
        ax.set_title(f"{latency * 1000:.0f} ms on every data reply, no rate limit")
        ax.legend(fontsize=8)
    fig.suptitle("Overlapped requests: the same output, sooner (issue 20)")
    fig.tight_layout()
    out = Path(path).with_suffix(".png")
    fig.savefig(out, dpi=110)
    print(f"chart: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
