"""Shared fixtures: every backend, variant and device, each skipped with its reason when it cannot run.

`pytest --gaps` also prints, per check, case and dtype, the largest gap seen from the
reference and how much of the tolerance it used: what held, and by how much.
"""

import numpy as np
import pytest

from backprop_bench import backends
from backprop_bench.model import TOLERANCES

# (check, case, dtype) -> the largest absolute and relative gap seen, and the largest
# share of the tolerance used, |actual - expected| / (atol + rtol |expected|): above 1 fails.
GAPS: dict[tuple[str, str, str], dict] = {}


def pytest_addoption(parser):
    parser.addoption("--gaps", action="store_true",
                     help="print the largest gap each check saw from its reference, against its tolerance")


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


def check_close(actual, expected, tol: dict, check: str, case: str, dtype: str, what: str = ""):
    """np.testing.assert_allclose, after noting the gap in GAPS under (check, case, dtype)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    gap = np.abs(actual - expected)
    scale = np.abs(expected)
    worst = GAPS.setdefault((check, case, dtype), {"abs": 0.0, "rel": 0.0, "used": 0.0, "tol": tol})
    with np.errstate(divide="ignore", invalid="ignore"):  # expected 0 with atol 0: inf, a failure anyway
        worst["abs"] = max(worst["abs"], float(np.nanmax(gap)))
        worst["rel"] = max(worst["rel"], float(np.nanmax(gap / np.where(scale > 0, scale, np.inf))))
        allowed = tol.get("atol", 0.0) + tol.get("rtol", 0.0) * scale
        worst["used"] = max(worst["used"], float(np.nanmax(gap / allowed)))
    np.testing.assert_allclose(actual, expected, **tol, err_msg=what)


def assert_close(actual: dict, expected: dict, dtype: str, check: str, case: str):
    """Every parameter of `actual` has the dtype and, within TOLERANCES, the values of `expected`."""
    assert list(actual) == list(expected), f"{case}: parameter names differ"
    for name in expected:
        assert actual[name].dtype == np.dtype(dtype), f"{case} {name}: dtype {actual[name].dtype}, expected {dtype}"
        check_close(actual[name], expected[name], TOLERANCES[dtype], check, case, dtype, f"{case} {name}")


def pytest_terminal_summary(terminalreporter, config):
    if not (config.getoption("gaps") and GAPS):
        return
    write = terminalreporter.write_line
    terminalreporter.section("largest gap from the reference, per check, case and dtype")
    write(f"{'check':<28} {'case':<26} {'dtype':<8} {'abs gap':>9} {'rel gap':>9}  {'tolerance':<22} {'used':>8}")
    for (check, case, dtype), worst in sorted(GAPS.items()):
        tol = ", ".join(f"{k} {v:g}" for k, v in worst["tol"].items())
        write(f"{check:<28} {case:<26} {dtype:<8} {worst['abs']:>9.2e} {worst['rel']:>9.2e}  {tol:<22} "
              f"{worst['used']:>8.1e}")
