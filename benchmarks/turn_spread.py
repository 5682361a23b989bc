"""Why `ab` reads a pair from each turn's fastest training: pairs within one process and across two, read both ways.

An `ab` pair is two turns, one in a baseline worker and one in a candidate worker. Two
turns taken back to back in the same process show what the code's speed does from one
turn to the next; two turns in two processes (as `ab` takes them) add whatever the
machine does to one turn and not the other. This script starts one worker a side on this
checkout (identical code), loads the benchmarks as `ab` does (ab.load, turns of
ab.TURN_S), and then, in rounds, in a random order each round, takes for every benchmark
one pair within a worker (chosen at random) and one pair across the two (the sides in a
random order, read as the second worker's over the first's, as `ab` reads candidate over
baseline). Each pair is read two ways (gate_records.READINGS): from the turns' medians
and from their fastest trainings (ab.pair_log_ratio). Per benchmark and way: the pairs'
spread (1.4826 median absolute deviation of the log-ratio, which bursts hardly move) and
the share of pairs more than ab.BURST (about 22%) off their median, as ab.busy_note
counts bursts.

Run as `python -m benchmarks.turn_spread [--seconds S] [--only TEXT]` with nothing else
running (the numbers are timings); the result is saved under results/turn-spread/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from backprop_bench import ab, formatting, store
from benchmarks import dated
from benchmarks.gate_records import READINGS

ROOT = Path(__file__).resolve().parent.parent


def pairs(seconds: float, only: list[str]) -> dict[str, dict[str, list[float]]]:
    """{benchmark: {"within, median": [...], "across, fastest": [...], ...}}: log-ratios of identical code."""
    rng = np.random.default_rng()
    with ExitStack() as stack:
        workers = []
        for role in ("baseline", "candidate"):
            worker = ab.WorkerProcess(ab.Side(role, "this checkout", "working tree", sys.executable, ROOT), "cpu")
            stack.callback(worker.close)
            worker.ready()
            workers.append(worker)
        names = [name for name in workers[1].benchmarks if any(text in name for text in only)]
        warm_s = [ab.load(worker, names, check=False) for worker in workers]
        per_turn = {name: ab.Pairs.turn_length(max(each[i] for each in warm_s)) for i, name in enumerate(names)}
        found = {name: {f"{where}, {way}": [] for where in ("within", "across") for way in READINGS}
                 for name in names}

        def turn(index: int, name: str) -> list[float]:
            return workers[index].ask(op="time", name=name, n=per_turn[name])["s"]

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for name in rng.permutation(names):
                for where in rng.permutation(["within", "across"]):
                    if where == "within":
                        index = int(rng.integers(2))
                        first, second = turn(index, name), turn(index, name)
                    else:
                        taken = {index: turn(index, name) for index in rng.permutation(2)}
                        first, second = taken[0], taken[1]
                    for way, read in READINGS.items():
                        found[name][f"{where}, {way}"].append(read(first, second))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long to take pairs (default 120)")
    parser.add_argument("--only", action="append", help="benchmarks whose names contain TEXT (repeatable; default: "
                                                        "seed-affine's)")
    args = parser.parse_args()
    found = pairs(args.seconds, args.only or ["seed-affine"])
    machine = store.machine_label(store.this_machine())
    rows = []
    for name, kinds in found.items():
        for kind, log_ratios in kinds.items():
            x = np.asarray(log_ratios)
            off = np.abs(x - np.median(x))
            rows.append({"benchmark": name, "pairs": kind, "count": len(x),
                         "spread": float(1.4826 * np.median(off)), "burst_share": float(np.mean(off > ab.BURST))})
    path = dated("turn-spread").with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "seconds": args.seconds, "rows": rows, "pairs": found}))
    print(f"identical code, one worker a side, {args.seconds:.0f} s of pairs on {machine}; saved {path}\n")
    print(formatting.markdown(pd.DataFrame({
        "benchmark": [row["benchmark"] for row in rows],
        "pairs": [row["pairs"] for row in rows],
        "count": [row["count"] for row in rows],
        "spread (1.4826 MAD)": [f"{row['spread']:.2%}" for row in rows],
        f"more than {math.expm1(ab.BURST):.0%} off": [f"{row['burst_share']:.0%}" for row in rows]})))


if __name__ == "__main__":
    main()
