"""Shared fixtures: every backend, variant and device, each skipped with its reason when it cannot run."""

import numpy as np
import pytest

import backends

# Tolerances, per dtype, for comparing a backend's trained weights and losses with
# the NumPy backend's. The backends do the same maths in a different order (fused
# multiply-adds, BLAS blocking, pairwise sums), so every op may differ in its last
# bit, and each epoch starts from the last one's result: the gap grows with the
# number of epochs. float64 (eps 2.2e-16) leaves about 8 orders of magnitude of
# headroom after hundreds of epochs; float32 (eps 1.2e-7) leaves about 2. A wrong
# gradient, a float32 leak into a float64 run, or a missed update is far outside both.
TOLERANCES = {
    "float64": {"rtol": 1e-9, "atol": 1e-12},
    "float32": {"rtol": 2e-4, "atol": 2e-6},
}


def backend_params():
    """pytest params over every (backend, variant, device), each skipped with its reason if it cannot run."""
    return [
        pytest.param((name, variant, device), id=f"{name}-{variant}-{device}",
                     marks=[pytest.mark.skip(reason=reason)] if reason else [])
        for name, variant, device, reason in backends.cases()
    ]


@pytest.fixture(params=backend_params())
def backend(request):
    """(backend, variant, device) for one available combination."""
    return request.param


def assert_close(actual: dict, expected: dict, dtype: str, what: str = ""):
    tol = TOLERANCES[dtype]
    assert list(actual) == list(expected), f"{what}: parameter names differ"
    for name in expected:
        assert actual[name].dtype == np.dtype(dtype), f"{what} {name}: dtype {actual[name].dtype}, expected {dtype}"
        np.testing.assert_allclose(actual[name], expected[name], **tol, err_msg=f"{what} {name}")
