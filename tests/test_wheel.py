"""The wheel, installed (not editable) in a fresh environment and run outside the checkout, does its commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.runs import write_run

ROOT = Path(__file__).resolve().parent.parent


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel of this checkout; the frameworks are this environment's
    (on its path through a .pth file), so that nothing is downloaded."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")
    where = tmp_path_factory.mktemp("wheel")
    source = where / "source"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv*", "results", "build", "*.egg-info", "__pycache__"))
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", where / "dist",
                source)
    assert built.returncode == 0, built.stderr
    [wheel] = (where / "dist").glob("backprop_bench-*.whl")
    venv = where / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "frameworks.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(python, "-m", "pip", "install", "--no-deps", "-q", wheel)
    assert installed.returncode == 0, installed.stderr
    return venv


@pytest.mark.slow
def test_the_wheel_installs_the_package_alone(wheel_env, tmp_path):
    code = ("import importlib.util as u, backprop_bench.backends as b, backprop_bench.workloads; "
            "print(b.__file__); print([n for n in ('backends', 'benchmarks', 'tests', 'conftest') if u.find_spec(n)])")
    done = run(wheel_env / "bin" / "python", "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, stray = done.stdout.splitlines()
    assert str(wheel_env) in where and stray == "[]"


@pytest.mark.slow
def test_the_wheel_runs_train_compare_report_and_ab_outside_the_checkout(wheel_env, tmp_path):
    command = wheel_env / "bin" / "backprop-bench"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    trained = run(command, "train", "--model", "seed-affine", "--epochs", "20", cwd=tmp_path, env=env)
    assert trained.returncode == 0 and trained.stdout.strip(), trained.stderr

    results = tmp_path / "results"
    write_run(results, 1, {"seed-affine[numpy-handwritten-cpu-float64]": [0.01] * 5})
    compared = run(command, "compare", "--results", results, cwd=tmp_path, env=env)
    assert compared.returncode == 0 and "numpy-handwritten-cpu" in compared.stdout, compared.stderr
    paged = run(command, "report", "--results", results, "--output", tmp_path / "page.html", cwd=tmp_path, env=env)
    assert paged.returncode == 0 and (tmp_path / "page.html").is_file(), paged.stderr

    ab = run(command, "ab", "HEAD", "--candidate", "HEAD", "--only", "seed-linear[numpy", "--processes", "2",
             "--budget", "1", "--results", results, cwd=ROOT, env=env)  # ab compares revisions of a checkout
    assert ab.returncode == 0 and "seed-linear[numpy-handwritten-cpu-float64]" in ab.stdout, ab.stderr
