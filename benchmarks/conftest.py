"""Benchmark fixtures: workloads, backend cases, the NumPy reference, and machine info."""

from __future__ import annotations

import os
import platform
import subprocess

import pytest

import backends
from backprop_bench import store


def pytest_generate_tests(metafunc):
    if "workload" in metafunc.fixturenames:
        chosen = metafunc.config.chosen_workloads
        metafunc.parametrize("workload", chosen, ids=[w.name for w in chosen])


def case_params(config) -> list:
    """Every (backend, variant, device), skipped with its reason when it cannot run here."""
    params = []
    for name, variant, device, reason in backends.cases():
        if (name, variant) == ("torch", "compile") and not config.getoption("with_compile") and not reason:
            reason = "torch.compile is opt-in: pass --with-compile"
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
    import numpy as np

    info = {"machine": store.this_machine(), "python": platform.python_version(), "numpy": np.__version__,
            "cpu_count": os.cpu_count()}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict form of its config
        info["numpy_blas"] = "unknown"
    # Settings that change speed without changing code: thread counts, BLAS and XLA flags.
    info["env"] = {k: v for k, v in os.environ.items()
                   if k.endswith("_NUM_THREADS") or k.startswith(("OPENBLAS", "MKL_", "XLA_"))}
    if backends.available()["torch"] is None:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    if backends.available()["jax"] is None:
        import jax

        info["jax"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
    try:
        info["gpu_driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    machine_info["backprop_bench"] = info
