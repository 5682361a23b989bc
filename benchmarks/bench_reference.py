"""The reference points beside the backends, on the notebook presets, in the same run."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from backprop_bench.model import TOLERANCES, init_params
from backprop_bench.timing import BenchmarkId
from backprop_bench.workloads import PRESET_WORKLOADS
from benchmarks.reference import compile_c_loop, notebook_affine, notebook_linear

ROUNDS = 100


def notebook(spec, data, params):
    """(setup, target, trained): the notebook's own code, with fresh weights each round."""
    names = spec.param_names()

    def setup():
        fresh = [params[name].copy() for name in names]
        if spec.bias:  # the notebook's biases are scalars
            fresh[1], fresh[3] = fresh[1][0], fresh[3][0]
        return (data.x, data.y, *fresh), {"epochs": spec.epochs, "lr": spec.lr}

    def trained(out):
        return dict(zip(names, (np.atleast_1d(v) for v in out)))

    return setup, notebook_affine if spec.bias else notebook_linear, trained


def c_loop(spec, data, params):
    """(setup, target, trained): the C loop, on arrays it updates in place."""
    train = compile_c_loop()
    if train is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    x, y, p, losses = data.x.ravel().copy(), data.y.ravel().copy(), np.empty(4), np.empty(spec.epochs)
    pointer = ctypes.POINTER(ctypes.c_double)

    def setup():
        p[:] = [params["W1"][0, 0], params["b1"][0] if spec.bias else 0.0,
                params["W2"][0, 0], params["b2"][0] if spec.bias else 0.0]
        args = (x, y, len(x), spec.epochs, spec.lr, int(spec.bias), p, losses)
        return tuple(a.ctypes.data_as(pointer) if isinstance(a, np.ndarray) else a for a in args), {}

    def trained(_):
        return {"W1": p[[0]].reshape(1, 1), "b1": p[[1]], "W2": p[[2]].reshape(1, 1), "b2": p[[3]]}

    return setup, train, trained


REFERENCES = {"notebook": notebook, "c-loop": c_loop}


@pytest.mark.parametrize("preset_workload", PRESET_WORKLOADS, ids=lambda w: w.name)
@pytest.mark.parametrize("reference", list(REFERENCES))
def test_reference(benchmark, preset_workload, reference, numpy_reference, request):
    if request.config.getoption("workloads_only"):
        pytest.skip("--workloads-only: the references run on the built-in presets")
    workload = preset_workload
    spec, data = workload.spec, workload.data
    identity = BenchmarkId(workload.name, "reference", reference, "cpu", spec.dtype)
    benchmark.name = identity.name
    benchmark.group = workload.group(spec)
    setup, target, trained = REFERENCES[reference](spec, data, init_params(spec))

    result = trained(benchmark.pedantic(target, setup=setup, rounds=1 if benchmark.disabled else ROUNDS))

    expected = numpy_reference(spec, data)
    for name in expected.params:
        np.testing.assert_allclose(result[name], expected.params[name], **TOLERANCES[spec.dtype], err_msg=name)
    if not benchmark.disabled:
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(
            **identity.fields(), epochs=spec.epochs, samples=workload.n_samples,
            epoch_flops=workload.flops_per_epoch, time_per_epoch_s=median / spec.epochs, reference=True,
        )
