"""A fourth backend, added from the tests alone (tests/extra_backend.py, registered through the environment):
the suite benchmarks it, `compare` and `report` show it, `ab` compares it. No other file knows its name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backprop_bench import backends

ROOT = Path(__file__).resolve().parent.parent
XP = "seed-linear[xp-handwritten-cpu-float64]"


@pytest.fixture
def xp_env(tmp_path) -> dict:
    """The environment of a user who registered tests/extra_backend.py as backend `xp`, from a folder of their own."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(Path(__file__).with_name("extra_backend.py"), plugins)
    return {**os.environ, "BACKPROP_BENCH_BACKENDS": "xp=extra_backend", "PYTHONPATH": str(plugins)}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backprop_bench.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_registry_takes_a_backend_from_the_environment(xp_env, tmp_path):
    code = ("from backprop_bench import backends; print(backends.available()['xp']); "
            "print([c[:3] for c in backends.cases() if c[0] == 'xp'])")
    done = subprocess.run([sys.executable, "-c", code], env=xp_env, capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.split("\n")[:2] == ["None", "[('xp', 'handwritten', 'cpu')]"], done.stderr


@pytest.mark.parametrize("entry, says", [("xp", "is not NAME=MODULE"), ("x-p=extra_backend", "is not NAME=MODULE"),
                                         ("xp=no_such_module", "No module named 'no_such_module'")])
def test_a_bad_registration_is_an_unavailable_backend_with_its_reason(entry, says, tmp_path):
    code = "from backprop_bench import backends; print([r for n, r in backends.available().items() if n not in " \
           f"{backends.BUILT_IN!r}])"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, backends.EXTRA: entry},
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and says in done.stdout and backends.EXTRA in done.stdout, done.stderr


@pytest.mark.slow
def test_an_extra_backend_is_benchmarked_compared_paged_and_ab_compared(xp_env, tmp_path):
    results = tmp_path / "results"
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q",
         f"--benchmark-storage=file://{results}", "benchmarks/bench_training.py", "benchmarks/bench_calibration.py",
         "-k", "(seed-linear and (xp or numpy)) or (matmul and (xp or numpy))"],
        cwd=ROOT, env=xp_env, capture_output=True, text=True, timeout=600)
    assert suite.returncode == 0, suite.stdout[-2000:]
    [run] = results.glob("*/*.json")
    saved = {bench["name"]: bench["extra_info"] for bench in json.loads(run.read_text())["benchmarks"]}
    assert saved[XP]["backend"] == "xp" and saved["matmul[xp-cpu-float32]"]["gflops"] > 0

    compared = cli(xp_env, "compare", "1", "--results", str(results))  # a partial run: named
    assert compared.returncode == 0 and "xp-handwritten-cpu" in compared.stdout, compared.stderr

    page = tmp_path / "page.html"
    paged = cli(xp_env, "report", "1", "--results", str(results), "--output", str(page))
    assert paged.returncode == 0, paged.stderr
    assert "xp-handwritten-cpu" in page.read_text()

    ab = cli(xp_env, "ab", "HEAD", "--candidate", "HEAD", "--only", XP, "--processes", "2", "--budget", "1",
             "--format", "json", "--results", str(results))
    assert ab.returncode == 0, ab.stderr
    [row] = json.loads(ab.stdout)["benchmarks"]
    assert row["name"] == XP and row["pairs"] >= 2
