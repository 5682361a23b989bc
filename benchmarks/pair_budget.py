"""Would fewer pairs have served? Saved `ab` records, re-read with only their first pairs.

`ab`'s interval is over blocks (one process a side each), so its standard error falls
with more blocks, and with more pairs only as far as pairs steady each block's share of the estimate.
This script takes saved records (A/A ones: `results/gate/*/aa/`, or any `results/ab/`)
and recomputes every benchmark's standard error from the first 20-100% of its pairs, in
the order they were timed, as if the budget had ended there. It times nothing, so it
can run alongside anything. The root mean square over records is printed per benchmark.

Run as `python -m benchmarks.pair_budget RECORD.json ...`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

from backprop_bench import ab

SHARES = (0.2, 0.3, 0.4, 0.5, 0.6, 1.0)


def standard_errors(row: dict) -> dict[float, float]:
    """The benchmark's standard error from the first share of its pairs, for each share (at least a pair a block)."""
    pairs = list(zip(row["pair_blocks"], row["log_ratios"]))
    return {share: ab.standard_error(pairs[:max(row["blocks"], round(len(pairs) * share))]) for share in SHARES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", type=Path, help="saved ab records (JSON)")
    args = parser.parse_args()
    found: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    pairs: dict[str, list[int]] = defaultdict(list)
    for path in args.records:
        for row in json.loads(path.read_text())["benchmarks"]:
            pairs[row["name"]].append(row["pairs"])
            for share, se in standard_errors(row).items():
                found[row["name"]][share].append(se)
    print(f"standard error of the log-ratio (root mean square over {len(args.records)} records), "
          "from the first share of each benchmark's pairs:\n")
    print("| benchmark | pairs | " + " | ".join(f"{share:.0%}" for share in SHARES) + " |")
    print("|---|---|" + "---|" * len(SHARES))
    for name, by_share in found.items():
        rms = [math.sqrt(sum(se * se for se in by_share[share]) / len(by_share[share])) for share in SHARES]
        print(f"| {name} | {sorted(pairs[name])[len(pairs[name]) // 2]} | "
              + " | ".join(f"{value:.2%}" for value in rms) + " |")


if __name__ == "__main__":
    main()
