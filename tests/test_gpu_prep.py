"""What the GPU run needs and a CPU can check: the GPU sweep's shape and skips, and scripts/gpu-check."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop_bench.store.suite_runs import load_runs
from backprop_bench.workloads import GPU_SWEEP, SWEEPS, workloads

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check"


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


no_gpu_here = pytest.mark.skipif(has_cuda(), reason="this machine has a GPU: run scripts/gpu-check itself")


def run(*args, env=None, timeout=600):
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def test_default_sweep_is_unchanged_and_gpu_adds_only_gpu_only_workloads():
    assert [w.name for w in workloads("default")] == [
        "seed-linear", "seed-affine", "mlp-256x64", "mlp-1024x256", "mlp-4096x1024"]
    assert SWEEPS["gpu"] == SWEEPS["default"] + GPU_SWEEP
    assert GPU_SWEEP and all(w.gpu_only and w.memory for w in GPU_SWEEP)
    assert not any(w.gpu_only for w in SWEEPS["default"] + SWEEPS["full"])


@no_gpu_here
def test_gpu_sweep_skips_with_its_reasons_without_a_gpu():
    done = run(sys.executable, "-m", "pytest", "benchmarks", "--sweep", "gpu", "-k", "16384", "-q", "-rs",
               "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" not in done.stdout  # nothing of the GPU sweep ran on the CPU
    assert "mlp-16384x4096 is a GPU-only workload, too large for cpu" in done.stdout
    assert "torch cuda-graph needs a CUDA GPU" in done.stdout
    assert "device 'cuda' is not available to torch here" in done.stdout  # the GPU-size calibration and training


@no_gpu_here
def test_gpu_check_without_a_gpu_stops_with_one_line(tmp_path):
    done = run(str(SCRIPT), str(tmp_path), timeout=120)
    assert done.returncode == 1
    assert "gpu-check: torch sees no CUDA GPU here; on a machine without one, run scripts/gpu-check --dry-run" \
        in done.stdout
    assert "gpu-check: stopped" in done.stdout and "== backends" not in done.stdout


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """The whole script on the CPU (about 3 minutes on 2 cores): `pytest -m slow`."""
    done = run(str(SCRIPT), "--dry-run", str(tmp_path))
    summary = done.stdout.split("step(s) failed or did not finish")[-1]
    # Every step but `sync` must pass; sync's verdict rests on wall-clock timings of a shared CPU.
    for step in ("env", "backends", "cuda-graph", "tests", "bench", "compare", "compile"):
        assert f"  {step} " in summary and summary.split(f"  {step} ")[1].split("\n")[0].endswith("ok"), done.stdout
    assert {p.name for p in tmp_path.iterdir()} == {
        "gpu-check.log", "env.txt", "bench.json", "bench-compile.json", "sync.json", "compare.md", "compare.csv"}
    runs = load_runs([tmp_path / "bench.json"])
    assert {"numpy", "jax"} <= set(runs["backend"].dropna())
    assert runs["peak_memory_bytes"].notna().any()  # measured on the sweep
    rows = json.loads((tmp_path / "sync.json").read_text())["rows"]
    assert rows and all(r["long_wall_s"] > 0 and r["growth"] > 0 for r in rows)
    assert "largest gap from the reference" in (tmp_path / "gpu-check.log").read_text()


def test_sync_check_times_each_case_through_training(tmp_path):
    """The script's sync step on the CPU, in seconds: every runnable case measured at two lengths, rows written.

    Whether the longer training took long enough is the device's question; here only that each
    case was timed and reported (the check's verdict is not asserted: a loaded CPU can upset it).
    """
    from benchmarks import sync_check

    out = tmp_path / "sync.json"
    sync_check.main(["--device", "cpu", "--workloads", "seed-affine:20", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert {(r["backend"], r["variant"]) for r in rows} == {("torch", "eager"), ("torch", "handwritten"),
                                                            ("jax", "jit-loop"), ("jax", "jit-step"),
                                                            ("jax", "handwritten")}
    assert all(r["short_wall_s"] > 0 and r["long_wall_s"] > 0 and r["long_event_s"] is None for r in rows)
