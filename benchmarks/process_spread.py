"""Why `ab` never forks a side's workers from one parent: the spread between processes, fresh and forked.

Two processes running identical code time the same training a few percent apart, which
is why `ab`'s interval is taken over blocks of processes. Starting a worker costs its
imports (torch and JAX: about 2.5 s of CPU each here), so forking workers from a parent
that has imported the frameworks once would give a minute more blocks. It would also
share whatever the parent fixed before the fork (where the libraries were loaded, the
interpreter's own allocations) among all of a side's workers: a difference between the
two sides' parents would then be in every block alike, where the interval cannot see it.

This script measures that. In rounds, in a random order each round, it starts a fresh
interpreter and forks a child of a parent that imported numpy, torch and JAX; each
loads the benchmarks, as an `ab` worker does (ab_worker.Server), and times 15 turns of
0.1 s of each. Per benchmark and kind of process: the spread (standard deviation of the
log) of the processes' median turns, and the same from their median absolute deviation,
which a burst of load on one process's turns does not move. If forked children spread
less than fresh processes, part of the spread is fixed before the fork, and forking
would hide it.

The spread fixed before the fork is what each process draws at its start: `--kinds`
adds fresh processes with that fixed, one hash seed for all (PYTHONHASHSEED), no
randomized memory layout (`setarch -R`), or neither drawn, to tell which it is. `ab`
forks each block's two workers from one bare interpreter (ab.BlockParent) so that they
share that draw and each block draws its own (benchmarks/block_spread.py).

Run as `python -m benchmarks.process_spread [--processes N] [--only TEXT] [--kinds K,...]`
with nothing else running (the numbers are timings); the result is saved under
results/process-spread/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from backprop_bench import ab_worker, formatting, store
from benchmarks import dated

ROOT = Path(__file__).resolve().parent.parent
TURNS, TURN_S = 15, 0.1
DEFAULT_ONLY = ("seed-affine[numpy-handwritten", "seed-affine[torch-handwritten", "seed-affine[jax-jit-step")


def median_turns(only: list[str]) -> dict[str, float]:
    """In this process: each chosen benchmark loaded as an ab worker loads it, then its median turn, in seconds."""
    server = ab_worker.Server(ROOT, "cpu")
    found = {}
    for name in [name for name in server.benchmarks if any(text in name for text in only)]:
        server.load(name, check=False)
        training = server.trainings[name]
        per_turn = max(1, int(TURN_S / training.time_once()[0]))
        found[name] = float(np.median([np.median([training.time_once()[0] for _ in range(per_turn)])
                                       for _ in range(TURNS)]))
    return found


def fresh(only: list[str], prefix: tuple[str, ...] = (), env: dict[str, str] | None = None) -> dict[str, float]:
    """In a fresh interpreter (started by `prefix`, with `env` added to the environment)."""
    done = subprocess.run([*prefix, sys.executable, "-m", "benchmarks.process_spread", "--child", *only],
                          cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    return json.loads(done.stdout)


def forked(only: list[str]) -> dict[str, float]:
    """In a child forked from this process (which has imported the frameworks)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(median_turns(only)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as replies:
        found = json.loads(replies.read())
    os.waitpid(pid, 0)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=12, help="processes of each kind (default 12)")
    parser.add_argument("--only", action="append", help="benchmarks whose names contain TEXT (repeatable; default: "
                                                        "seed-affine's NumPy, hand-written torch and JAX jit-step)")
    parser.add_argument("--kinds", default="fresh,forked", help="comma-separated, of: fresh, forked, and fresh "
                        "processes with what is drawn at each start fixed: one-hash-seed (PYTHONHASHSEED=0), "
                        "layout-not-randomized (setarch -R), neither-drawn (both) (default fresh,forked)")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(median_turns(args.child)))
        return
    only = args.only or list(DEFAULT_ONLY)
    import jax  # noqa: F401  (the parent's imports, shared by every forked child)
    import torch  # noqa: F401

    kinds = {"fresh": fresh, "forked": forked,
             # what is drawn at each start: Python's hash seed, or where the process lands in memory
             "one-hash-seed": partial(fresh, env={"PYTHONHASHSEED": "0"}),
             "layout-not-randomized": partial(fresh, prefix=("setarch", "-R")),
             "neither-drawn": partial(fresh, prefix=("setarch", "-R"), env={"PYTHONHASHSEED": "0"})}
    kinds = {kind: kinds[kind] for kind in args.kinds.split(",")}
    found: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    rng = np.random.default_rng()
    for index in range(args.processes):
        for kind in rng.permutation(list(kinds)):
            found[kind].append(kinds[kind](only))
        print(f"round {index + 1} of {args.processes}", file=sys.stderr)
    machine = store.machine_label(store.this_machine())
    rows = []
    for name in next(iter(found.values()))[0]:
        for kind, runs in found.items():
            logs = np.log([run[name] for run in runs])
            rows.append({"benchmark": name, "processes": kind, "median_s": float(np.exp(np.median(logs))),
                         "spread": float(np.std(logs, ddof=1)),
                         "robust_spread": float(1.4826 * np.median(np.abs(logs - np.median(logs)))),
                         "range": float(logs.max() - logs.min())})
    path = dated("process-spread").with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "turns": TURNS, "turn_s": TURN_S, "rows": rows,
                                "median_turns": found}, indent=1))
    print(f"{args.processes} processes of each kind on {machine}; saved {path}\n")
    print(formatting.markdown(pd.DataFrame({
        "benchmark": [row["benchmark"] for row in rows],
        "processes": [row["processes"] for row in rows],
        "median turn": [f"{row['median_s'] * 1e3:.2f} ms" for row in rows],
        "spread between processes (sd of the log)": [f"{row['spread']:.2%}" for row in rows],
        "the same, robust (1.4826 MAD)": [f"{row['robust_spread']:.2%}" for row in rows],
        "range": [f"{row['range']:.2%}" for row in rows]})))


if __name__ == "__main__":
    main()
