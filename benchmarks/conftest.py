"""Benchmark fixtures: workloads, backend cases, the NumPy reference, and machine info."""

from __future__ import annotations

import os
import platform
import subprocess

import pytest

import backends
from backprop_bench import store
from benchmarks.workloads import SWEEPS, custom, workloads


def pytest_addoption(parser):
    parser.addoption("--sweep", choices=tuple(SWEEPS), default="default",
                     help="size sweep: default (3 sizes, up to 4096 samples x 1024 wide), full (adds 8192 x 2048) "
                          "or gpu (adds 16384 x 2048 and 16384 x 4096, timed on cuda devices only)")
    parser.addoption("--with-compile", action="store_true",
                     help="also time torch.compile on every workload (compiling adds about a minute)")
    parser.addoption("--workload", action="append", default=[], metavar="SPEC",
                     help="add a workload of your own (repeatable): widths, then optional :key=value settings "
                          "(activation, bias, init, lr, epochs, samples, dtype, name), "
                          "e.g. 3,128,128,1:activation=relu:samples=1024:epochs=100:dtype=float32")
    parser.addoption("--workloads-only", action="store_true",
                     help="time only the --workload workloads (and the matmul calibration), not the built-in ones")
    parser.addoption("--memory", action="store_true",
                     help="also measure the peak memory of --workload workloads (a fresh process per benchmark)")


def pytest_configure(config):
    """Build the chosen workloads once; a bad SPEC or a clash of names stops the run with one line."""
    try:
        extra = [custom(text, memory=config.getoption("memory")) for text in config.getoption("workload")]
    except ValueError as err:
        raise pytest.UsageError(f"--workload {err}") from None
    if config.getoption("workloads_only") and not extra:
        raise pytest.UsageError("--workloads-only needs at least one --workload SPEC")
    chosen = ([] if config.getoption("workloads_only") else workloads(config.getoption("sweep"))) + extra
    names = [w.name for w in chosen]
    if clash := sorted({name for name in names if names.count(name) > 1}):
        raise pytest.UsageError(f"--workload: two workloads are named {', '.join(clash)}; give each its own :name=")
    config.chosen_workloads = chosen


@pytest.hookimpl(trylast=True)  # after the root conftest has written the run's status
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """A run without the built-in workloads is partial: never the default run of compare or check."""
    if config.getoption("workloads_only"):
        status = output_json["backprop_bench_run"]
        status["partial"] = " ".join(filter(None, [status.get("partial"), "--workloads-only"]))


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
