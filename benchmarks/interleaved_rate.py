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
from backprop_bench.workloads import COMPUTE_BOUND, find
from benchmarks.bench_calibration import MATMULS, product_shape


def main(backend: str, variant: str, workload_name: str, rounds: int = 15) -> None:
    try:
        workload = find(workload_name)
    except ValueError as err:
        sys.exit(str(err))
    training = Training(workload.spec, workload.data, backend, variant)
    products = {f"{label} matmul {'x'.join(map(str, shape))}": (MATMULS[backend]("cpu", *shape), 2 * np.prod(shape))
                for label, shape in (("calibration", product_shape(COMPUTE_BOUND)), ("own", product_shape(workload)))}
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
