"""Time every backend's training loop on every workload: `pytest --benchmark-only`.

Each round trains from fresh initial parameters already on the device (`load` is the
untimed setup); the timed call returns only when the work is done. The first training
is timed apart, so compilation never leaks into the steady-state rounds, and the
trained result of the timed rounds is checked against the NumPy backend. The first two
set-ups are timed too: where a backend compiles ahead of time (JAX), the first one holds
the compilation.
"""

from __future__ import annotations

import numpy as np
import pytest

from backprop_bench.timing import BenchmarkId, Training
from benchmarks.conftest import case_params
from benchmarks.memory import peak_bytes

TARGET_SECONDS = 1.0       # timed work per benchmark; rounds follow from it
MIN_ROUNDS, MAX_ROUNDS = 5, 300


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(metafunc.config))


def test_train(benchmark, workload, case, numpy_reference):
    name, variant, device = case
    if workload.gpu_only and device != "cuda":
        pytest.skip(f"{workload.name} is a GPU-only workload, too large for {device}")
    spec = workload.spec
    if benchmark.disabled and workload.samples is not None:  # smoke test: few epochs on the sized workloads
        spec = spec.with_(epochs=min(spec.epochs, 2))
    identity = BenchmarkId(workload.name, name, variant, device, spec.dtype)
    benchmark.name = identity.name
    benchmark.group = workload.group(spec)

    training = Training(spec, workload.data, name, variant, device)
    rounds = 1
    if not benchmark.disabled:
        first_setup_s, setup_s = training.time_setup(), training.time_setup()
        first_call_s, _ = training.time_once()
        warm_s, _ = training.time_once()
        rounds = int(np.clip(TARGET_SECONDS / warm_s, MIN_ROUNDS, MAX_ROUNDS))

    trained = benchmark.pedantic(training.run, setup=lambda: ((training.fresh(),), {}), rounds=rounds)

    result = training.result(trained)
    training.check_against(result, numpy_reference(spec, workload.data), benchmark.name)
    if benchmark.disabled:
        return

    median = benchmark.stats.stats.median
    info = benchmark.extra_info
    info.update(
        **identity.fields(), layers=list(spec.layers), bias=spec.bias, activation=spec.activation, init=spec.init,
        lr=spec.lr,
        epochs=spec.epochs, samples=workload.n_samples, epoch_flops=workload.flops_per_epoch,
        gflops=workload.flops_per_epoch * spec.epochs / median / 1e9,
        time_per_epoch_s=median / spec.epochs,
        first_call_s=first_call_s, first_setup_s=first_setup_s, setup_s=setup_s,
        compiles_in=training.trainer.compiles_in,
        handwritten=training.trainer.handwritten,  # the variant this one's autograd cost is measured against
        final_loss=float(result.losses[-1]),
    )
    if workload.memory:
        info["working_set_bytes"] = workload.working_set_bytes()
        info["peak_memory_bytes"] = peak_bytes(name, variant, device, workload.source)
