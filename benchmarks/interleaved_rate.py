"""Is a share of the matmul rate above 100% the machine drifting, or a size that runs faster?

`compare` divides a training's GFLOP/s by the calibration matmul's, timed at another
moment of the run. This times, in one process and interleaved round by round, the
training, its framework's calibration matmul, and a matmul at the workload's own sizes
(samples x widest layer x widest layer): drift moves all three together, so the paired
ratio of training to calibration holds still; a size that runs faster shows as the third
above the second.

Run as `python -m benchmarks.interleaved_rate BACKEND VARIANT WORKLOAD [ROUNDS]` (CPU):
prints each one's median GFLOP/s and the paired ratio.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from backprop_bench.timing import Training
from benchmarks.bench_calibration import FLOPS, MATMULS, K, M, N
from benchmarks.workloads import workloads


def main(backend: str, variant: str, workload_name: str, rounds: int = 15) -> None:
    known = {w.name: w for w in workloads("full")}
    if workload_name not in known:
        sys.exit(f"no workload {workload_name!r}; one of {', '.join(known)}")
    workload = known[workload_name]
    training = Training(workload.spec, workload.data, backend, variant)
    own = (workload.n_samples, max(workload.spec.layers), max(workload.spec.layers))
    products = {f"calibration matmul {N}x{K}x{M}": (MATMULS[backend]("cpu"), FLOPS),
                "matmul {}x{}x{}".format(*own): (MATMULS[backend]("cpu", own), 2 * np.prod(own))}
    training.time_once()  # warm: compiled, thread pools up
    rates = {"training": [], **{name: [] for name in products}}
    for _ in range(rounds):
        seconds, _ = training.time_once()
        rates["training"].append(workload.flops_per_epoch * workload.spec.epochs / seconds / 1e9)
        for name, (product, flops) in products.items():
            start = time.perf_counter()
            product()
            rates[name].append(flops / (time.perf_counter() - start) / 1e9)
    for name, values in rates.items():
        print(f"{name}: median {np.median(values):.1f} GFLOP/s, quartiles {np.percentile(values, 25):.1f} to "
              f"{np.percentile(values, 75):.1f}")
    paired = np.array(rates["training"]) / np.array(rates[next(iter(products))])
    print(f"training / calibration, paired by round: median {np.median(paired):.2f}, "
          f"from {paired.min():.2f} to {paired.max():.2f}")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python -m benchmarks.interleaved_rate BACKEND VARIANT WORKLOAD [ROUNDS], "
                 "e.g. jax jit-loop mlp-1024x256")
    main(*sys.argv[1:4], *map(int, sys.argv[4:]))
