"""What does autograd cost? Each autograd variant against its hand-written twin, interleaved in one process.

A suite run times the variants one after the other, so a ratio near 1 between them
can be the machine drifting between the two. Here each round times one training of
the autograd variant and one of its hand-written twin (Backend.handwritten: the same
framework and training, gradients by hand), in a random order, back to back: drift
moves both, and the paired ratio holds still. Printed per framework and workload: the
median paired ratio (autograd / hand-written; above 1, autograd costs time) with the
2.5th to 97.5th percentile of a bootstrap of that median over rounds.

Run as `python -m benchmarks.autograd_cost [--workloads seed-linear,seed-affine,mlp-4096x1024]
[--rounds 30] [--json FILE]` (CPU) from a checkout with nothing else running: the
numbers are timings. The JSON keeps every round.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from backprop_bench import backends, store
from backprop_bench.timing import Training
from backprop_bench.workloads import find


def autograd_variants() -> list[tuple[str, str]]:
    """(backend, variant) of each framework here whose default variant has a hand-written twin."""
    found = []
    for name, reason in backends.available().items():
        default = backends.get(name) if reason is None else None
        if default is not None and default.handwritten:
            found.append((name, default.variant))
    return found


def paired(autograd: Training, twin: Training, rounds: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(autograd seconds, hand-written seconds) per round, the two back to back in a random order."""
    for training in (autograd, twin):
        training.time_once()  # compiled, warm
    times = []
    for _ in range(rounds):
        order = [autograd, twin] if rng.random() < 0.5 else [twin, autograd]
        seconds = {id(training): training.time_once()[0] for training in order}
        times.append((seconds[id(autograd)], seconds[id(twin)]))
    return times


def summary(times: list[tuple[float, float]], rng: np.random.Generator) -> dict:
    ratios = np.array([a / h for a, h in times])
    boot = np.median(rng.choice(ratios, (2000, len(ratios))), axis=1)
    return {"ratio": float(np.median(ratios)), "low": float(np.percentile(boot, 2.5)),
            "high": float(np.percentile(boot, 97.5)), "autograd_s": float(np.median([a for a, _ in times])),
            "handwritten_s": float(np.median([h for _, h in times]))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="seed-linear,seed-affine,mlp-4096x1024")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", help="write every round here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    machine = store.machine_label(store.this_machine())
    print(f"autograd / hand-written, interleaved, {args.rounds} rounds each, on {machine}\n")
    print("| framework | autograd variant | workload | autograd | hand-written | ratio | 95% bootstrap |")
    print("|---|---|---|---|---|---|---|")
    found = []
    for workload_name in args.workloads.split(","):
        workload = find(workload_name)
        for name, variant in autograd_variants():
            twin = backends.get(name, variant).handwritten
            times = paired(Training(workload.spec, workload.data, name, variant),
                           Training(workload.spec, workload.data, name, twin), args.rounds, rng)
            row = {"framework": name, "variant": variant, "workload": workload_name, **summary(times, rng),
                   "rounds": times}
            found.append(row)
            per_epoch = workload.spec.epochs
            print(f"| {name} | {variant} | {workload_name} | {row['autograd_s'] / per_epoch * 1e6:.3g} us/epoch | "
                  f"{row['handwritten_s'] / per_epoch * 1e6:.3g} us/epoch | {row['ratio']:.3f}x | "
                  f"{row['low']:.3f} to {row['high']:.3f} |", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": machine, "rows": found}, out, indent=1)


if __name__ == "__main__":
    sys.exit(main())
