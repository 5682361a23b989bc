"""Saved runs written by the tests themselves, shaped as pytest-benchmark saves them."""

import json

import numpy as np

BENCHMARKS = ["seed-affine[numpy-handwritten-cpu-float64]", "seed-affine[jax-jit-loop-cpu-float64]",
              "seed-affine[torch-eager-cpu-float64]"]


def write_run(results, number, timings, node="box", when="2026-11-25T10:00:00", epochs=1000, calibration=None,
              setup=None, status=None):
    """A run as pytest-benchmark saves it, with these raw timings (seconds) per benchmark name."""
    benchmarks = []
    for name, data in timings.items():
        backend, variant = name.split("[")[1].split("-")[:2]
        data = list(map(float, data))
        benchmarks.append({
            "group": "seed-affine", "name": name, "fullname": f"bench::{name}",
            "stats": {"median": float(np.median(data)), "mean": float(np.mean(data)), "min": min(data),
                      "max": max(data), "stddev": float(np.std(data)), "iqr": 0.0, "rounds": len(data), "data": data},
            "extra_info": {"backend": backend, "variant": variant, "device": "cpu", "dtype": "float64",
                           "workload": "seed-affine", "epochs": epochs, "epoch_flops": 80,
                           "gflops": 80 * epochs / float(np.median(data)) / 1e9},
        })
    for framework, seconds in (calibration or {}).items():  # a 1 GFLOP matmul per framework
        benchmarks.append({"group": "calibration", "name": f"matmul[{framework}-cpu-float32]", "stats": {
            "median": seconds, "data": [seconds] * 5, "rounds": 5},
            "extra_info": {"calibration": True, "backend": framework, "device": "cpu", "gflops": 1.0 / seconds}})
    path = results / node / f"{number:04d}_abc_{when[:10]}.json"
    path.parent.mkdir(exist_ok=True)
    suite = setup or {"python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0", "jax": "0.10.2", "env": {}}
    run = {"machine_info": {"node": node, "cpu": {"brand_raw": "CPU"}, "backprop_bench": suite},
           "commit_info": {"id": "abc"}, "datetime": when, "benchmarks": benchmarks}
    if status is not None:  # what conftest.py records: complete or not, partial or not
        run["backprop_bench_run"] = status
    path.write_text(json.dumps(run))
    return path


def draws(seed, median, rounds=40, noise=0.02):
    return median * np.exp(np.random.default_rng(seed).normal(0, noise, rounds))
