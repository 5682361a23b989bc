"""pytest set-up shared by tests/ and benchmarks/.

`pytest` runs every benchmark once, untimed, as a smoke test. `pytest --benchmark-only`
times them and saves the run, raw round timings included, as a new numbered file
under results/ (never overwriting one), unless told otherwise on the command line.
"""

from pathlib import Path

import pytest
from pytest_benchmark.utils import get_tag

RESULTS = Path(__file__).parent / "results"


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads the options
def pytest_configure(config):
    option = config.option
    if not (option.benchmark_only or option.benchmark_enable):
        option.benchmark_disable = True
        return
    if option.benchmark_storage == "file://./.benchmarks":  # pytest-benchmark's default
        option.benchmark_storage = f"file://{RESULTS}"
    if not (option.benchmark_save or option.benchmark_json):
        option.benchmark_autosave = get_tag()  # NNNN_<commit>_<date>.json, as --benchmark-autosave names it
    option.benchmark_save_data = True
    if not option.benchmark_columns:  # the columns a comparison needs, narrow enough for a terminal
        option.benchmark_columns = ["median", "iqr", "min", "rounds"]
