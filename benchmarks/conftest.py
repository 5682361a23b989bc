"""Benchmark fixtures: workloads, backend cases, the NumPy reference, and machine info."""

from __future__ import annotations

import os
import platform

import pytest

from backprop_bench import backends, store


def pytest_generate_tests(metafunc):
    if "workload" in metafunc.fixturenames:
        chosen = metafunc.config.chosen_workloads
        metafunc.parametrize("workload", chosen, ids=[w.name for w in chosen])


def case_params(config) -> list:
    """Every (backend, variant, device), skipped with its reason when it cannot run here."""
    params = []
    for name, variant, device, reason in backends.cases():
        if not reason and backends.get(name, variant).opt_in and not config.getoption("with_compile"):
            reason = f"{name}-{variant} is opt-in: pass --with-compile"
        params.append(pytest.param((name, variant, device), id=f"{name}-{variant}-{device}",
                                   marks=[pytest.mark.skip(reason=reason)] if reason else []))
    return params


@pytest.fixture(scope="session")
def numpy_reference():
    """The NumPy backend's result for a (spec, data), computed once per session."""
    cache = {}

    def reference(spec, data):
        if spec not in cache:
            cache[spec] = backends.train(spec, data, "numpy")
        return cache[spec]

    return reference


def pytest_benchmark_update_machine_info(config, machine_info):
    """What a comparison between runs needs: versions, BLAS, threads, CPU and GPU."""
    info = {"machine": store.this_machine(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    for name, reason in backends.available().items():
        if reason is None:
            info.update(backends.framework(name).machine_info())
    # Settings that change speed without changing code: thread counts, BLAS and XLA flags.
    info["env"] = {k: v for k, v in os.environ.items()
                   if k.endswith("_NUM_THREADS") or k.startswith(("OPENBLAS", "MKL_", "XLA_"))}
    if driver := store.nvidia_smi("name,driver_version"):
        info["gpu_driver"] = "\n".join(driver)
    machine_info["backprop_bench"] = info
