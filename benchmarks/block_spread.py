"""Why `ab` forks a block's two workers from one interpreter: A/A pairs in blocks started apart and forked.

Where a process lands in memory is drawn anew at every start (address-space layout
randomization), and identical code runs up to a few percent faster or slower in one
process than in another (benchmarks/process_spread.py). `ab` takes its interval over
blocks, a baseline and a candidate worker each, so that spread widens every interval. A
block whose two workers are forked from one interpreter that has imported nothing of
either side (ab.BlockParent) gives both the same draw: it cancels in their ratio, while
each block still draws its own, so the spread between blocks is still there for the
interval to see wherever a change moves it.

This script measures what that buys. It takes the two sides `ab HEAD` would (a temporary
worktree of HEAD, and this working tree), starts N blocks of each kind (ab.WorkerProcess
a side, and ab.BlockParent), loads the benchmarks as `ab` does (ab.load, turns of
ab.TURN_S), and then, in rounds, in a random order each round, takes one pair of every
benchmark in every block of both kinds, the two kinds' blocks interleaved, each pair as
`ab` takes it (ab.Pairs). Per benchmark and kind: the spread between blocks (standard deviation
of the blocks' median log-ratios), the estimate's standard error (ab.estimate) and the
interval (ab.bounds).

Run as `python -m benchmarks.block_spread [--blocks N] [--rounds R] [--only TEXT]` with
nothing else running (the numbers are timings); the result is saved under
results/block-spread/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from backprop_bench import ab, formatting, store
from benchmarks import dated

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("apart", "forked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=8, help="blocks of each kind (default 8)")
    parser.add_argument("--rounds", type=int, default=6, help="pairs of each benchmark in each block (default 6)")
    parser.add_argument("--only", default="seed-", help="benchmarks whose names contain TEXT (default: the presets)")
    args = parser.parse_args()
    rng = np.random.default_rng()
    with ExitStack() as stack:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        sides = [ab.Side("baseline", "HEAD", head, sys.executable, stack.enter_context(ab.revision_tree(ROOT, head))),
                 ab.Side("candidate", "working tree", "working tree", sys.executable, ROOT)]
        blocks: dict[str, list] = {kind: [] for kind in KINDS}
        for index in range(args.blocks):
            for kind in KINDS:
                blocks[kind].append(ab.start_block(stack, sides, "cpu", fork=kind == "forked"))
                for worker in blocks[kind][-1]:
                    worker.ready()
            names = [name for name in blocks["apart"][0][1].benchmarks if args.only in name]
            for kind in KINDS:
                for worker in blocks[kind][-1]:
                    ab.load(worker, names, check=False)
            print(f"block {index + 1} of {args.blocks} of each kind loaded", file=sys.stderr)
        first = blocks["apart"][0][0]
        per_turn = {name: ab.Pairs.turn_length(min(first.ask(op="time", name=name, n=3)["s"])) for name in names}
        # each kind's pairs as ab takes them (ab.Pairs: round its blocks, the sides in a random order)
        take = {kind: ab.Pairs([[block[side] for block in blocks[kind]] for side in (0, 1)], per_turn, rng)
                for kind in KINDS}
        pairs = {kind: {name: [] for name in names} for kind in KINDS}
        for round_ in range(args.rounds):
            for name in rng.permutation(names):
                for kind in rng.permutation(np.repeat(KINDS, args.blocks)):  # the two kinds' blocks interleaved
                    pairs[kind][name].append(take[kind](name))
            print(f"round {round_ + 1} of {args.rounds}", file=sys.stderr)
    machine = store.machine_label(store.this_machine())
    rows = []
    for name in names:
        for kind in KINDS:
            center, se, count = ab.estimate(pairs[kind][name])
            ratio, low, high = ab.bounds(center, se, count)
            rows.append({"benchmark": name, "blocks": kind, "between_blocks": float(np.std(
                ab.block_medians(pairs[kind][name]), ddof=1)), "se": se, "ratio": ratio, "ci_low": low,
                "ci_high": high})
    path = dated("block-spread").with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "blocks": args.blocks, "rounds": args.rounds, "rows": rows,
                                "pairs": pairs}, indent=1))
    print(f"{args.blocks} blocks of each kind, {args.rounds} pairs a block, identical code, on {machine}; "
          f"saved {path}\n")
    print(formatting.markdown(pd.DataFrame({
        "benchmark": [row["benchmark"] for row in rows],
        "blocks": [row["blocks"] for row in rows],
        "spread between blocks": [f"{row['between_blocks']:.2%}" for row in rows],
        "standard error": [f"{row['se']:.2%}" for row in rows],
        "ratio [95% interval]": [f"{row['ratio']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
                                 for row in rows]})))
    for kind in KINDS:
        ses = [row["se"] for row in rows if row["blocks"] == kind]
        print(f"{kind}: median standard error {np.median(ses):.2%}")


if __name__ == "__main__":
    main()
