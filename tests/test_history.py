"""`backprop-bench history`: change points in a machine's saved runs, through the machine's own drift."""

from __future__ import annotations

import numpy as np
import pytest

from backprop_bench import cli, history, report, store
from backprop_bench.store import records, suite_runs
from tests.runs import write_run

STEPPED = "seed-affine[torch-eager-cpu-float64]"
LOOP = "seed-affine[reference-c-loop-cpu-float64]"
BASE_S = {  # seconds per training (1000 epochs for the preset, 200 for the mlp) on an unhurried machine
    "seed-affine[numpy-handwritten-cpu-float64]": 0.010, STEPPED: 0.090, "seed-affine[jax-jit-loop-cpu-float64]": 5e-5,
    LOOP: 2e-5, "mlp-256x64[numpy-handwritten-cpu-float32]": 0.038, "mlp-256x64[torch-eager-cpu-float32]": 0.075,
}
MATMUL_S = 0.02


def synthetic_history(results, seed: int, runs: int = 40, step_at: int = 25, step: float = 1.15, noise: float = 0.01):
    """`runs` saved runs of one machine: each run's times, calibration included, times a machine factor between
    0.6 and 1.6; each benchmark's median with its own noise; STEPPED slower by `step` from run `step_at` on."""
    rng = np.random.default_rng(seed)
    for number in range(1, runs + 1):
        factor = rng.uniform(0.6, 1.6)
        timings, extra = {}, {}
        for name, seconds in BASE_S.items():
            level = seconds * factor * (step if name == STEPPED and number >= step_at else 1.0)
            timings[name] = level * np.exp(rng.normal(0, noise) + rng.normal(0, 0.01, 20))
            extra[name] = {"epochs": 200 if name.startswith("mlp") else 1000}
        extra[LOOP].update(backend="reference-c-loop", variant="c-loop")  # as runs before schema 2 saved it
        write_run(results, number, timings, when=f"2026-10-{1 + number // 2:02d}T{10 + number % 2}:00:00",
                  extra=extra, calibration={"numpy": MATMUL_S * factor * rng.lognormal(0, noise)},
                  commit=commit(number))


def commit(number: int) -> str:
    return f"{number:02d}" + "c" * 38


@pytest.fixture(autouse=True)
def this_machine_is_box(monkeypatch):
    monkeypatch.setattr(store, "this_machine", lambda: {"node": "box", "cpu": "CPU", "cores": None, "gpu": None})


@pytest.mark.parametrize("seed", range(20))
def test_the_planted_step_and_nothing_else_across_machine_drift(tmp_path, seed):
    synthetic_history(tmp_path, seed)
    frame = suite_runs.load_runs(results=tmp_path)
    raw = frame[frame["benchmark"] == STEPPED]["median"]
    assert raw.max() / raw.min() > 1.5  # the machine's drift alone dwarfs the step
    rows, points = history.history(frame, [], 0.05)
    assert [(p["benchmark"], p["first_run_after"].split("_")[0]) for p in points] == [(STEPPED, "box/0025")]
    point = points[0]
    assert point["ratio"] == pytest.approx(1.15, abs=0.03) and point["latest"]
    assert (point["runs_before"], point["runs_after"]) == (24, 16)
    assert history.bisect_command(point) == (f"backprop-bench bisect {commit(24)[:9]} {commit(25)[:9]} "
                                             f"--only '{STEPPED}'")
    assert history.regressed(points) == [point]


@pytest.mark.parametrize("seed", range(10))
def test_with_three_times_the_noise_the_step_is_placed_within_a_run(tmp_path, seed):
    """At 3% noise on every median (the reference's too), a 15% step is 3.3 of the ratio's spreads: a run next to
    it can fall on the wrong side, but the step is still the only one found."""
    synthetic_history(tmp_path, seed, noise=0.03)
    rows, points = history.history(suite_runs.load_runs(results=tmp_path), [], 0.05)
    assert [p["benchmark"] for p in points] == [STEPPED]
    assert points[0]["first_run_after"].split("_")[0] in ("box/0024", "box/0025", "box/0026")


def test_the_raw_times_would_not_do(tmp_path):
    """Without the reference, the machine's drift hides the step or invents others: the normalization is doing work."""
    synthetic_history(tmp_path, 0)
    frame = suite_runs.load_runs(results=tmp_path)
    raw = frame[frame["benchmark"] == STEPPED].sort_values("datetime")["median"].to_numpy()
    assert history.change_points(raw, 0.05) != [24]


def test_the_bisect_command_is_quoted_for_the_shell():
    point = {"commit_before": "abc;rm -rf", "commit_after": "def", "benchmark": "x'; touch pwned; echo '",
             "setup_changes": []}
    assert history.bisect_command(point) == (
        "backprop-bench bisect 'abc;rm -r' def --only 'x'\"'\"'; touch pwned; echo '\"'\"''")


def test_one_disturbed_run_is_not_a_change_point():
    values = np.exp(np.random.default_rng(3).normal(0, 0.02, 30))
    values[12] *= 2.0
    assert history.change_points(values, 0.05) == []
    values[12:17] *= 1.3  # five runs in a row: a segment of its own, up and back down
    assert history.change_points(values, 0.05) == [12, 17]


def test_a_step_under_the_threshold_is_not_reported():
    values = np.exp(np.random.default_rng(4).normal(0, 0.005, 30))
    values[15:] *= 1.03
    assert history.change_points(values, 0.05) == []
    assert history.change_points(values, 0.02) == [15]


def test_the_command_prints_each_point_and_exits_1_for_a_latest_slowdown(tmp_path, capsys):
    synthetic_history(tmp_path, 1)
    assert cli.main(["history", "--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "6 benchmarks over 40 saved runs" in out and f"{STEPPED}: 1.1" in out and "(latest level)" in out
    assert f"next:   backprop-bench bisect {commit(24)[:9]} {commit(25)[:9]} --only '{STEPPED}'" in out
    assert cli.main(["history", "--results", str(tmp_path), "--only", "numpy"]) == 0
    assert "no change point" in capsys.readouterr().out


@pytest.mark.parametrize("runs, args, message", [
    (9, [], "history needs at least 10 saved runs of this machine (a change must hold 5 runs on each side); "
            "there are 9"),
    (12, ["--only", "nunpy"], "no training benchmark matches nunpy"),
    (0, [], "no saved runs of this machine under results/"),
    (12, ["--threshold", "fast"], "--threshold takes a number like 5% or 0.05"),
])
def test_errors_are_one_line(tmp_path, capsys, runs, args, message):
    if runs:
        synthetic_history(tmp_path, 2, runs=runs, step_at=runs + 1)
    assert cli.main(["history", "--results", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_page_marks_the_change_point(tmp_path):
    synthetic_history(tmp_path, 5)
    frame = suite_runs.load_runs(results=tmp_path)
    html = report.build(frame, [frame.sort_values("datetime")["run"].iloc[-1]], records.load_comparisons(tmp_path))
    assert f"{STEPPED} 1.1" in html and "A dashed line is a change point" in html
