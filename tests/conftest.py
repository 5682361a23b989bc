"""Shared fixtures: every backend, variant and device, each skipped with its reason when it cannot run."""

import numpy as np
import pytest

import backends
from backprop_bench.model import TOLERANCES

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
