"""What this machine can do: the float32 matrix-product rate at the compute-bound workload's sizes.

Every result can then be read as a fraction of it. Each framework's own matmul is
timed, on every device it has; the best of them is the machine's rate.
"""

from __future__ import annotations

import numpy as np
import pytest

import backends
from benchmarks.workloads import COMPUTE_BOUND

# The largest product of one epoch of the compute-bound workload: (samples x 1024) @ (1024 x 1024).
N, K, M = COMPUTE_BOUND.n_samples, max(COMPUTE_BOUND.spec.layers), max(COMPUTE_BOUND.spec.layers)
FLOPS = 2 * N * K * M


def matmul_numpy(device, shape=(N, K, M)):
    n, k, m = shape
    a, b = np.ones((n, k), np.float32), np.ones((k, m), np.float32)
    return lambda: a @ b


def matmul_torch(device, shape=(N, K, M)):
    import torch

    n, k, m = shape
    a = torch.ones((n, k), dtype=torch.float32, device=device)
    b = torch.ones((k, m), dtype=torch.float32, device=device)
    if device == "cuda":
        return lambda: (a @ b, torch.cuda.synchronize())
    return lambda: a @ b


def matmul_jax(device, shape=(N, K, M)):
    import jax

    n, k, m = shape
    target = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    a, b = (jax.device_put(np.ones(size, np.float32), target) for size in ((n, k), (k, m)))
    with jax.default_matmul_precision("highest"):  # no TF32: the same arithmetic as the training
        product = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
    return lambda: product(a, b).block_until_ready()


MATMULS = {"numpy": matmul_numpy, "torch": matmul_torch, "jax": matmul_jax}  # (device, shape) -> a product


def calibration_cases():
    seen, params = set(), []
    for name, _, device, reason in backends.cases():
        if (name, device) not in seen:
            seen.add((name, device))
            params.append(pytest.param((name, device), id=f"{name}-{device}",
                                       marks=[pytest.mark.skip(reason=reason)] if reason else []))
    return params


@pytest.mark.parametrize("case", calibration_cases())
def test_matmul_rate(benchmark, case):
    name, device = case
    benchmark.name = f"matmul[{name}-{device}-float32]"
    benchmark.group = f"calibration: float32 matmul ({N} x {K}) @ ({K} x {M})"
    product = MATMULS[name](device)
    product()  # warm-up: thread pools, compilation
    benchmark.pedantic(product, rounds=1 if benchmark.disabled else 20)
    if not benchmark.disabled:
        benchmark.extra_info.update(
            backend=name, device=device, dtype="float32", calibration=True, flops=FLOPS,
            gflops=FLOPS / benchmark.stats.stats.median / 1e9,
        )
