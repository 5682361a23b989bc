"""Saved runs and `ab` records written by the tests themselves, as the suite would save them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SWEEP = {"mlp-256x64": 2e6, "mlp-1024x256": 1e8, "mlp-4096x1024": 2e10}  # workload: FLOPs per epoch
GROUPS = {"seed-affine": "seed-affine: 1-1-1 identity bias float64, 10 samples, 1000 epochs",
          "mlp-256x64": "mlp-256x64: 16-64-64-1 tanh bias float32, 256 samples, 200 epochs",
          "mlp-1024x256": "mlp-1024x256: 64-256-256-16 tanh bias float32, 1024 samples, 50 epochs",
          "mlp-4096x1024": "mlp-4096x1024: 512-1024-1024-512 tanh bias float32, 4096 samples, 4 epochs"}
BENCHMARKS = ["seed-affine[numpy-handwritten-cpu-float64]", "seed-affine[jax-jit-loop-cpu-float64]",
              "seed-affine[torch-eager-cpu-float64]"]
CASES = ["numpy-handwritten-cpu", "torch-eager-cpu", "jax-jit-loop-cpu", "jax-jit-step-cpu"]


def write_run(results, number, timings, node="box", when="2026-11-25T10:00:00", epochs=1000, calibration=None,
              setup=None, extra=None, status=None, commit="abc"):
    """A run as pytest-benchmark saves it, with these raw timings (seconds) per benchmark name.

    The workload is the name's part before the bracket; `extra` adds extra_info per benchmark name;
    `status` is what conftest.py records of the run: complete or not, partial or not.
    """
    benchmarks = []
    for name, data in timings.items():
        workload, case = name.rstrip("]").split("[")
        backend, *variant, device, dtype = case.split("-")  # as the suite saves its BenchmarkId: jit-loop whole
        data = list(map(float, data))
        q1, median, q3 = np.percentile(data, [25, 50, 75])
        benchmarks.append({
            "group": GROUPS.get(workload, workload), "name": name, "fullname": f"bench::{name}",
            "stats": {"median": float(median), "mean": float(np.mean(data)), "min": min(data), "max": max(data),
                      "stddev": float(np.std(data)), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
                      "rounds": len(data), "total": float(np.sum(data)), "data": data},
            "extra_info": {"backend": backend, "variant": "-".join(variant), "device": device, "dtype": dtype,
                           "workload": workload, "epochs": epochs, "epoch_flops": 80,
                           "gflops": 80 * epochs / float(median) / 1e9, **(extra or {}).get(name, {})},
        })
    for framework, seconds in (calibration or {}).items():  # a 1 GFLOP matmul per framework
        benchmarks.append({"group": "calibration", "name": f"matmul[{framework}-cpu-float32]", "stats": {
            "median": seconds, "data": [seconds] * 5, "rounds": 5},
            "extra_info": {"calibration": True, "backend": framework, "device": "cpu", "dtype": "float32",
                           "gflops": 1.0 / seconds}})
    path = Path(results) / node / f"{number:04d}_abc_{when[:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    suite = setup or {"python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0", "jax": "0.10.2", "env": {}}
    run = {"machine_info": {"node": node, "cpu": {"brand_raw": "CPU"}, "backprop_bench": suite},
           "commit_info": {"id": commit}, "datetime": when, "benchmarks": benchmarks}
    if status is not None:
        run["backprop_bench_run"] = status
    path.write_text(json.dumps(run))
    return path


def draws(seed, median, rounds=40, noise=0.02):
    return median * np.exp(np.random.default_rng(seed).normal(0, noise, rounds))


def full_run(results, number, node="box", when="2026-11-25T10:00:00", speed=1.0, rounds=40, status=None):
    """A run like `make bench` saves: the notebook preset and the size sweep for every case, and calibration.

    `speed` scales every time (a faster or slower machine); each case has its own constant factor.
    """
    timings, extra = {}, {}
    for i, case in enumerate(CASES):
        timings[f"seed-affine[{case}-float64]"] = draws(number * 100 + i, 1e-2 * (i + 1) / speed, rounds)
        for j, (workload, flops) in enumerate(SWEEP.items()):
            name = f"{workload}[{case}-float32]"
            timings[name] = draws(number * 100 + 10 * j + i, flops * 1000 / 50e9 * (1 + i / 4) / speed, rounds)
            median = float(np.median(timings[name]))
            extra[name] = {"epoch_flops": flops, "gflops": 50 * speed / (1 + i / 4), "first_call_s": median * 1.5,
                           "first_setup_s": 0.1 * i, "setup_s": 0.01, "compiles_in": "load" if "jax" in case else None,
                           "working_set_bytes": flops / 100, "peak_memory_bytes": flops / 100 * (1 + i)}
    return write_run(results, number, timings, node=node, when=when, extra=extra, status=status,
                     calibration={"numpy": 1 / (80 * speed), "torch": 1 / (100 * speed)})


def write_ab(results, name, verdicts, when="2026-11-26T09:00:00"):
    """An `ab` comparison record under <results>/ab/, one benchmark per (name, ratio, verdict)."""
    path = Path(results) / "ab" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    side = {"python": "/usr/bin/python3", "versions": {"numpy": "2.4.6"}}
    path.write_text(json.dumps({
        "backprop_bench_ab": 1, "datetime": when, "threshold": 0.05,
        "machine_info": {"node": "box", "cpu": {"brand_raw": "CPU"}, "backprop_bench": {}},
        "baseline": {"label": "HEAD~1", "commit": "1111111111111111", **side},
        "candidate": {"label": "working tree", "commit": "working tree", **side},
        "benchmarks": [{"name": bench, "baseline_median_s": 1e-3, "candidate_median_s": 1e-3 * ratio, "ratio": ratio,
                        "ci_low": ratio * 0.97, "ci_high": ratio * 1.03, "pairs": 10, "verdict": verdict,
                        "baseline_s": [1e-3] * 10, "candidate_s": [1e-3 * ratio] * 10}
                       for bench, ratio, verdict in verdicts],
    }))
    return path
