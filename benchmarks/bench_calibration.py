"""What this machine can do: the float32 matrix-product rate at the compute-bound workloads' sizes.

Every result can then be read as a fraction of it. Each framework's own matmul is
timed (its backend's Framework.matmul), on every device it has; the best of them is the machine's rate. With
`--sweep gpu` the GPUs are also timed at the GPU-only compute-bound workload's sizes,
where they reach their own rate (at the CPU sweep's sizes launches still count).
"""

from __future__ import annotations

import numpy as np
import pytest

from backprop_bench import backends
from backprop_bench.workloads import COMPUTE_BOUND, GPU_COMPUTE_BOUND, Workload


def product_shape(workload: Workload) -> tuple[int, int, int]:
    """(N, K, M) of the largest product of one epoch: (samples x widest) @ (widest x widest)."""
    widest = max(workload.spec.layers)
    return workload.n_samples, widest, widest


def operands(N: int, K: int, M: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded normal float32 operands: a GPU multiplies constant data faster than real data
    (fewer bits switch, so it draws less power and keeps a higher clock)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, K), np.float32), rng.standard_normal((K, M), np.float32)


def calibration_cases(config) -> list:
    """(backend, device, workload) for each framework's devices at COMPUTE_BOUND's sizes, and its
    cuda device at GPU_COMPUTE_BOUND's too with --sweep gpu; each skipped with its reason if it cannot run."""
    sizes = [COMPUTE_BOUND] + ([GPU_COMPUTE_BOUND] if config.getoption("sweep") == "gpu" else [])
    seen, params = set(), []
    for name, _, device, reason in backends.cases():
        for workload in sizes:
            if (name, device, workload.name) in seen or (workload.gpu_only and device != "cuda"):
                continue
            seen.add((name, device, workload.name))
            size = "" if workload is COMPUTE_BOUND else "x".join(map(str, product_shape(workload)))
            params.append(pytest.param((name, device, workload), id="-".join(filter(None, (name, device, size))),
                                       marks=[pytest.mark.skip(reason=reason)] if reason else []))
    return params


def pytest_generate_tests(metafunc):
    if "calibration" in metafunc.fixturenames:
        metafunc.parametrize("calibration", calibration_cases(metafunc.config))


def test_matmul_rate(benchmark, calibration):
    name, device, workload = calibration
    N, K, M = product_shape(workload)
    flops = 2 * N * K * M
    # COMPUTE_BOUND keeps the plain name, so runs saved before the GPU sizes existed still compare.
    size = "" if workload is COMPUTE_BOUND else f"-{N}x{K}x{M}"
    benchmark.name = f"matmul{size}[{name}-{device}-float32]"
    benchmark.group = f"calibration: float32 matmul ({N} x {K}) @ ({K} x {M})"
    product = backends.framework(name).matmul(device, *operands(N, K, M))
    if product is None:
        pytest.skip(f"{name} has no matrix product of its own to calibrate")
    product()  # warm-up: thread pools, compilation
    benchmark.pedantic(product, rounds=1 if benchmark.disabled else 20)
    if not benchmark.disabled:
        benchmark.extra_info.update(
            backend=name, device=device, dtype="float32", calibration=True, flops=flops,
            gflops=flops / benchmark.stats.stats.median / 1e9,
        )
