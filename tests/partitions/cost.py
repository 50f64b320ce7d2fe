#!/usr/bin/env python3
"""What each partition cost the shoppers, from a kept run of the partition suite.

    python3 tests/partitions/cost.py DIR      (DIR: a run kept with KEEP_FLEET_LOGS=1)

For every crowd history in DIR (NAME.history, one JSON object per buy): how many buys were
answered 5xx (outcome unknown) or not at all, from the first to the last of them, and the
longest stretch without a sale between the sale's first and last `queued` answer, and (from
the checker's verdict, NAME.check) how many of the shoppers left unsure turned out to have an
order. One line per round, as a Markdown table (docs/partitions.md).
"""
import glob
import json
import os
import sys

from checker import unknown


def cost(path):
    buys = [json.loads(line) for line in open(path) if line.strip()]
    unsure = [b for b in buys if unknown(b["status"])]
    sold = sorted(b["answered_ms"] for b in buys if b["status"] == 200)
    span = (max(b["answered_ms"] or b["sent_ms"] for b in unsure)
            - min(b["sent_ms"] for b in unsure)) if unsure else 0
    gap = max((b - a for a, b in zip(sold, sold[1:])), default=0)
    hung = sum(1 for b in buys if b["status"] == 0)
    return len(unsure), hung, span, gap


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: cost.py DIR (a partition run kept with KEEP_FLEET_LOGS=1)")
    print("| round | answered 5xx | no answer | for | longest stretch without a sale |"
          " unsure shoppers with an order |")
    print("|---|---|---|---|---|---|")
    paths = sorted(glob.glob(os.path.join(sys.argv[1], "*.history")), key=os.path.getmtime)
    for path in paths:
        n, hung, span, gap = cost(path)
        name = os.path.basename(path)[: -len(".history")]
        verdict = path[: -len(".history")] + ".check"
        to_order = "?"
        if os.path.exists(verdict):
            lines = [line for line in open(verdict) if line.startswith("{")]
            if lines:
                to_order = f'{json.loads(lines[-1])["unknown_to_order"]:,}'
        print(f"| `{name}` | {n - hung:,} | {hung} | {span / 1000:.1f} s | {gap:,} ms |"
              f" {to_order} |")


if __name__ == "__main__":
    main()
