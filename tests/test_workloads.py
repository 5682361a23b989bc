"""`pytest --benchmark-only --workload SPEC`: your own network in the benchmark suite."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from backprop_bench.model import ModelSpec, check_memory, epoch_flops, parse_spec, training_bytes
from backprop_bench.store import suite_runs
from backprop_bench.workloads import find


def test_spec_text_sets_every_key():
    spec, samples, name = parse_spec("3,128,128,1:activation=relu:bias=false:init=xavier:lr=0.5:epochs=7"
                                     ":samples=1024:dtype=float32:name=mine")
    assert spec == ModelSpec((3, 128, 128, 1), bias=False, activation="relu", lr=0.5, epochs=7,
                             dtype="float32", init="xavier")
    assert (samples, name) == (1024, "mine")


def test_spec_text_defaults():
    spec, samples, name = parse_spec("3,8,1:activation=relu")
    assert (spec.init, spec.dtype, spec.epochs, samples, name) == ("he", "float64", 1000, 64, "3-8-1")
    assert parse_spec("3,8,1")[0].init == "xavier"


@pytest.mark.parametrize("text, message", [
    ("3,x,1", "the widths must read like 3,128,1, got '3,x,1'"),
    ("3,8,1:act=relu", "'act=relu' is not key=value with key one of activation"),
    ("3,8,1:relu", "'relu' is not key=value"),
    ("3,8,1:samples=2048,epochs=50", "settings are separated by ':', not ',': write 'samples=2048:epochs=50'"),
    ("3,8,1:epochs=ten", "epochs take whole numbers"),
    ("3,8,1:bias=maybe", "bias true or false"),
    ("3,8,1:samples=0", "samples must be >= 1"),
    ("3,8,1:name=a/b", "a name takes letters"),
    ("3,8,1:activation=softmax", "unknown activation 'softmax'"),
    ("3,8,1:epochs=1000000000000", "need at least 1.6e+04 GB"),
])
def test_bad_spec_text_is_a_value_error(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_spec(text)


def test_memory_estimate_counts_data_parameters_activations_and_losses():
    spec = ModelSpec((2, 3, 1), epochs=10, dtype="float32")
    params = 2 * 3 + 3 + 3 * 1 + 1
    activations = 5 * (3 + 1)
    assert training_bytes(spec, 5) == (2 * params + activations) * 4 + 5 * 3 * (8 + 4) + 10 * (8 + 4)
    with pytest.raises(ValueError, match=r"layers 1-100000000-1 on 100000000 samples .* more than this machine's"):
        check_memory(ModelSpec((1, 100_000_000, 1)), 100_000_000)


def test_find_builds_builtin_and_custom_workloads():
    assert find("mlp-256x64").memory and find("seed-affine").samples is None
    mine = find("3,8,1:samples=5:name=mine")
    assert (mine.name, mine.n_samples, mine.source) == ("mine", 5, "3,8,1:samples=5:name=mine")


def pytest_run(*args):
    """pytest in the checkout with no path given, as `make bench ARGS=...` runs it: the options' values
    after a space must not be taken for paths."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)


def test_workload_option_adds_only_the_asked_workloads():
    done = pytest_run("--collect-only", "-q", "--workloads-only", "--workload", "2,4,1:name=mine",
                      "--workload", "3,8,1:activation=relu")
    assert done.returncode == 0, done.stdout + done.stderr
    trainings = [line for line in done.stdout.splitlines() if "test_train[" in line]
    assert trainings and all("-mine]" in line or "-3-8-1]" in line for line in trainings)
    assert any("-3-8-1]" in line for line in trainings)
    assert "test_matmul_rate" in done.stdout  # the calibration stays


def test_a_selection_that_matches_nothing_says_how_to_list_the_names():
    done = pytest_run("--benchmark-only", "-k", "nosuchbenchmark")
    assert done.returncode == 5
    assert ("backprop-bench: nothing matches -k 'nosuchbenchmark'; list the names with: "
            ".venv/bin/pytest --benchmark-only --collect-only -q") in done.stdout


def test_the_end_of_a_run_counts_the_skipped_by_reason_and_names_the_next_commands(tmp_path):
    done = pytest_run("--benchmark-only", f"--benchmark-storage=file://{tmp_path}",
                      "-k", "test_train and seed-linear and (numpy-handwritten-cpu or test_first_call)")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "the table above times one whole training per round (every epoch); for time per epoch, backends side " \
           "by side, run: .venv/bin/backprop-bench compare" in done.stdout
    assert "backprop-bench: next: .venv/bin/backprop-bench report" in done.stdout
    skipped = pytest_run("--benchmark-only", "-k", "test_report and machine", f"--benchmark-storage=file://{tmp_path}")
    assert "backprop-bench: skipped " in skipped.stdout and " tests, not benchmarks" in skipped.stdout


@pytest.mark.parametrize("args, message", [
    (["--workload", "3,8,1:act=relu"], "ERROR: --workload '3,8,1:act=relu': 'act=relu' is not key=value"),
    (["--workload", "2,4,1:name=a", "--workload", "3,8,1:name=a"], "two workloads are named a"),
    (["--workloads-only"], "--workloads-only needs at least one --workload SPEC"),
])
def test_bad_workload_option_is_one_line(args, message):
    done = pytest_run("--collect-only", "-q", *args)
    assert done.returncode == 4
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_memory_module_without_arguments_is_one_line():
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "usage: python -m benchmarks.memory BACKEND VARIANT DEVICE WORKLOAD (a built-in name or a --workload SPEC)"]
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory", "numpy", "handwritten", "cpu", "mlp-9"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "'mlp-9' is neither a built-in workload (seed-linear, seed-affine, mlp-256x64" in done.stderr


def test_a_custom_workload_is_timed_checked_and_measured_like_a_builtin(tmp_path):
    done = pytest_run("--benchmark-only", "--workloads-only", "--memory", "-k", "numpy and not matmul",
                      "--workload", "2,8,1:epochs=3:samples=16:name=mine", f"--benchmark-storage=file://{tmp_path}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    row = suite_runs.load_runs(results=tmp_path).set_index("benchmark").loc["mine[numpy-handwritten-cpu-float64]"]
    assert row["group"] == "mine: 2-8-1 identity bias float64, 16 samples, 3 epochs"
    assert row["epoch_flops"] == epoch_flops(ModelSpec((2, 8, 1)), 16) and row["init"] == "xavier"
    assert row["peak_memory_bytes"] >= 0 and row["working_set_bytes"] > 0
    assert row["status"] == "partial: -k numpy and not matmul --workloads-only"
