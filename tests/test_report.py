"""compare and check on result files the tests write themselves: no timing is asserted anywhere."""

import io

import pandas as pd
import pytest

from backprop_bench import check, compare
from backprop_bench.cli import main
from backprop_bench.store import suite_runs
from tests.runs import BENCHMARKS, GROUPS, draws, full_run, write_run


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    return tmp_path / "results"


def same_runs(results, slow=None, factor=1.10):
    base = {name: draws(i, 1e-3 * (i + 1)) for i, name in enumerate(BENCHMARKS)}
    cur = {name: draws(i + 10, 1e-3 * (i + 1)) * (factor if name == slow else 1) for i, name in enumerate(BENCHMARKS)}
    write_run(results, 1, base)
    write_run(results, 2, cur, when="2026-11-25T11:00:00")


def steady_history(results, runs, slow=None, factor=1.10, jumpy=None):
    """`runs` saved runs of one machine with a matmul calibration, the last with `slow` `factor` times slower;
    `jumpy` takes 1.6x its time in every third run (a benchmark whose process state moves it, as torch's did in
    runs 3 and 7 of 8 back-to-back runs here)."""
    for number in range(1, runs + 1):
        timings = {name: draws(100 * number + i, 1e-3 * (i + 1)) * (factor if number == runs and name == slow else 1)
                   * (1.6 if name == jumpy and number % 3 == 0 else 1) for i, name in enumerate(BENCHMARKS)}
        write_run(results, number, timings, when=f"2026-11-25T{10 + number}:00:00", calibration={"numpy": 0.01})


def test_planted_slowdown_is_flagged_alone(results, capsys):
    steady_history(results, 7, slow=BENCHMARKS[1])
    assert main(["check", "--baseline", "6", "--against", "7"]) == 1
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if line.endswith("regression")]
    assert len(flagged) == 1 and BENCHMARKS[1] in flagged[0]
    assert "1 regression(s)" in out


def test_two_runs_cannot_tell_a_change_from_run_to_run_drift(results, capsys):
    steady_history(results, 2, slow=BENCHMARKS[1])  # no earlier runs: how far it moves on its own is unknown
    assert main(["check", "--baseline", "1"]) == 3
    out = capsys.readouterr().out
    undecided = [line for line in out.splitlines() if line.endswith("undecided")]
    assert len(undecided) == 1 and BENCHMARKS[1] in undecided[0]
    assert not any(line.endswith("regression") for line in out.splitlines())
    assert "(or too few saved runs show how far that is)" in out
    assert "backprop-bench ab abc --candidate-python PYTHON" in out


def test_a_benchmark_that_jumps_from_run_to_run_is_not_flagged_for_a_jump(results, capsys):
    steady_history(results, 9, slow=BENCHMARKS[0], jumpy=BENCHMARKS[2])  # run 9: jumpy at 1.6x, numpy 1.10x
    assert main(["check", "--baseline", "8", "--against", "9"]) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("seed-")}
    assert rows[BENCHMARKS[0]].endswith("regression") and rows[BENCHMARKS[2]].endswith("undecided")
    assert main(["check", "--baseline", "8", "--against", "9", "--normalize", "none"]) == 1  # raw: both flagged
    assert "2 regression(s)" in capsys.readouterr().out


def test_same_distribution_is_not_flagged(results, capsys):
    same_runs(results)
    assert main(["check", "--baseline", "1"]) == 0  # --against defaults to the latest run, 2
    out = capsys.readouterr().out
    assert not any(line.endswith("regression") for line in out.splitlines()) and "current box/0002" in out
    assert "setup changes: none" in out


def test_check_names_what_changed_between_runs(results, capsys):
    timings = {name: draws(i, 1e-3) for i, name in enumerate(BENCHMARKS)}
    write_run(results, 1, timings, setup={"torch": "2.12.0", "jax": "0.10.2", "env": {}})
    write_run(results, 2, timings, when="2026-11-25T11:00:00",
              setup={"torch": "2.13.0", "jax": "0.10.2", "env": {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}})
    assert main(["check", "--baseline", "1"]) == 0
    out = capsys.readouterr().out
    assert "setup changes: $XLA_FLAGS (unset) -> --xla_cpu_enable_fast_math=true, torch 2.12.0 -> 2.13.0" in out


def test_large_noisy_change_is_not_flagged(results, capsys):
    base = {name: draws(i, 1e-3, rounds=5, noise=0.5) for i, name in enumerate(BENCHMARKS)}
    cur = {name: draws(i + 10, 1.2e-3, rounds=5, noise=0.5) for i, name in enumerate(BENCHMARKS)}
    write_run(results, 1, base)
    write_run(results, 2, cur, when="2026-11-25T11:00:00")
    table, (baseline, current) = suite_runs.load(["1", "2"], results)
    verdicts = check.regressions(table, baseline, current)
    assert (verdicts["verdict"] == "same").all()
    assert (verdicts["ratio"] > 1.05).any()  # the medians did move past the threshold


def test_other_machine_is_refused_unless_normalized(results, capsys):
    base = {name: draws(i, 1e-3 * (i + 1)) for i, name in enumerate(BENCHMARKS)}
    write_run(results, 1, base, node="laptop")
    # A CI runner twice as slow across the board, and jax slower still by 30%.
    cur = {name: draws(i + 10, 2e-3 * (i + 1)) * (1.3 if "jax" in name else 1) for i, name in enumerate(BENCHMARKS)}
    write_run(results, 1, cur, node="runner", when="2026-11-25T11:00:00")
    laptop, runner = (str(p) for p in sorted(results.rglob("*.json")))
    assert main(["check", "--baseline", laptop, "--against", runner]) == 2
    assert "different machines" in capsys.readouterr().err
    assert main(["check", "--baseline", laptop, "--against", runner, "--normalize", "numpy"]) == 1
    flagged = [line for line in capsys.readouterr().out.splitlines() if line.endswith("regression")]
    assert len(flagged) == 1 and "jax" in flagged[0]


def test_corrupt_files_are_skipped_and_kept(results, capsys):
    same_runs(results)
    truncated = results / "box" / "0003_abc_2026-11-25.json"
    truncated.write_text('{"machine_info": {"node": "bo')
    foreign = results / "notes.json"
    foreign.write_text('{"hello": 1}')
    assert main(["compare"]) == 0
    captured = capsys.readouterr()
    assert f"skipping {truncated}" in captured.err and f"skipping {foreign}" in captured.err
    assert truncated.read_text() == '{"machine_info": {"node": "bo' and foreign.read_text() == '{"hello": 1}'
    assert "run box/0002" in captured.out


@pytest.mark.parametrize("args, message", [
    (["compare"], "no saved runs"),
    (["check", "--baseline", "7"], "no saved runs"),
])
def test_empty_results_is_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "time some with `make bench` in the checkout" in err


def test_outside_a_checkout_the_message_says_where_to_go(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path / "results")  # no results/ below it, and no checkout above
    assert main(["compare"]) == 2
    err = capsys.readouterr().err
    assert "does not exist; run this inside the backprop-bench checkout (cd into it), or name a folder of saved " \
           "runs with --results DIR" in err and len(err.strip().splitlines()) == 1


def test_unknown_run_and_disjoint_runs(results, capsys):
    same_runs(results)
    assert main(["check", "--baseline", "9"]) == 2
    assert "no saved run '9'" in capsys.readouterr().err
    write_run(results, 3, {"seed-linear[numpy-handwritten-cpu-float64]": draws(0, 1e-3)}, when="2026-11-25T12:00")
    assert main(["check", "--baseline", "1", "--against", "3"]) == 2
    assert "share no benchmark" in capsys.readouterr().err
    assert main(["check", "--baseline", "1", "--threshold", "lots"]) == 2
    assert "--threshold takes a number" in capsys.readouterr().err


def test_comparison_numbers_by_hand(results, capsys):
    numpy, jax = "mlp-256x64[numpy-handwritten-cpu-float32]", "mlp-256x64[jax-jit-loop-cpu-float32]"
    write_run(results, 1, {numpy: [4e-3] * 5, jax: [1e-3] * 5}, calibration={"numpy": 0.5, "jax": 1.0})
    table = compare.comparison(suite_runs.load_runs(results=results), "box/0001_abc_2026-11-25")
    row = table[table["name"] == "jax-jit-loop-cpu-float32"].iloc[0]
    assert row["time_per_epoch_s"] == pytest.approx(1e-6)          # 1 ms / 1000 epochs
    assert row["vs_numpy"] == pytest.approx(4.0)                   # 4 ms / 1 ms
    assert row["gflops"] == pytest.approx(80 * 1000 / 1e-3 / 1e9)  # 80 FLOPs x 1000 epochs in 1 ms
    assert row["of_machine"] == pytest.approx(row["gflops"] / 2.0)  # machine: the best, 1 / 0.5 s = 2 GFLOP/s
    assert row["of_own_matmul"] == pytest.approx(row["gflops"] / 1.0)  # jax's own: 1 / 1.0 s
    for fmt, marker in [("table", "4.00x"), ("markdown", "| jax-jit-loop-cpu-float32 |"), ("csv", "vs_numpy")]:
        assert main(["compare", "--format", fmt]) == 0
        assert marker in capsys.readouterr().out


def test_first_call_and_compile_where_each_happens(results):
    rounds = [1.0, 1.0, 1.1, 1.2, 1.0]  # median 1 s, slowest 1.2 s
    names = {"numpy": "seed-affine[numpy-handwritten-cpu-float64]", "eager": "seed-affine[torch-eager-cpu-float64]",
             "jax": "seed-affine[jax-jit-loop-cpu-float64]", "compile": "seed-affine[torch-compile-cpu-float64]"}
    extra = {names["numpy"]: {"first_call_s": 1.1},  # no slower than a timed round: noise
             names["eager"]: {"first_call_s": 1.5},
             names["jax"]: {"first_call_s": 1.3, "first_setup_s": 2.5, "setup_s": 0.5, "compiles_in": "load"},
             names["compile"]: {"first_call_s": 9.0, "compiles_in": "run"}}
    write_run(results, 1, {name: rounds for name in names.values()}, extra=extra)
    table = compare.comparison(suite_runs.load_runs(results=results), "box/0001_abc_2026-11-25").set_index("name")
    row = {key: table.loc[name.split("[")[1].rstrip("]")] for key, name in names.items()}
    assert row["numpy"]["overhead_in_noise"] and pd.isna(row["numpy"]["compile_s"])
    assert row["eager"]["first_call_overhead_s"] == pytest.approx(0.5) and pd.isna(row["eager"]["compile_s"])
    assert row["jax"]["compile_s"] == pytest.approx(2.0) and row["jax"]["first_call_overhead_s"] == pytest.approx(0.3)
    assert row["compile"]["compile_s"] == pytest.approx(8.0) and pd.isna(row["compile"]["first_call_overhead_s"])
    shown = compare.formatted(table.reset_index()).set_index("backend")
    assert shown.loc["numpy-handwritten-cpu-float64", "first call +"] == "noise"
    assert shown.loc["torch-compile-cpu-float64", ["first call +", "compile"]].tolist() == ["", "8 s"]
    extra[names["compile"]]["first_call_s"] = 1.2  # a first call no slower than a round: no compile to see
    write_run(results, 2, {name: rounds for name in names.values()}, extra=extra)
    table = compare.comparison(suite_runs.load_runs(results=results), "box/0002_abc_2026-11-25")
    assert compare.formatted(table).set_index("backend").loc["torch-compile-cpu-float64", "compile"] == "noise"


def test_each_number_at_the_precision_that_shows_it(results):
    tiny = "seed-affine[numpy-handwritten-cpu-float64]"
    small, fast = "mlp-256x64[numpy-handwritten-cpu-float32]", "mlp-256x64[jax-jit-loop-cpu-float32]"
    write_run(results, 1, {tiny: [1e-2] * 5, small: [1e-2] * 5, fast: [1e-3] * 5}, calibration={"jax": 0.02},
              extra={small: {"peak_memory_bytes": 221184, "working_set_bytes": 174600},
                     fast: {"gflops": 80.0, "epoch_flops": 2e6}})
    shown = compare.formatted(compare.comparison(suite_runs.load_runs(results=results), "box/0001_abc_2026-11-25"))
    shown = shown.set_index("backend")
    f64, f32 = shown.loc["numpy-handwritten-cpu-float64"], shown.loc["numpy-handwritten-cpu-float32"]
    assert f64["GFLOP/s"] == "0.00800"            # 80 FLOPs x 1000 epochs in 10 ms, not "0.0"
    assert f64["% matmul"] == f64["% own"] == ""  # float64 is no share of a float32 calibration
    assert (f32["peak MB"], f32["working set MB"]) == ("0.22", "0.17")
    assert shown.loc["jax-jit-loop-cpu-float32", "% own"] == "160!"  # 80 GFLOP/s against jax's 50: flagged


def test_compare_shows_runs_side_by_side_sorted_by_size(results, capsys):
    full_run(results, 1)
    full_run(results, 2, when="2026-11-25T11:00:00", speed=2.0)
    assert main(["compare", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "run box/0001_abc_2026-11-25 on box (, ? cores): columns 0001" in out and "columns 0002" in out
    headings = [line for line in out.splitlines() if line.startswith(("seed-", "mlp-"))]
    assert headings == list(GROUPS.values())  # smallest work first, architecture shown
    block = out.split(GROUPS["mlp-4096x1024"])[1]
    assert block.splitlines()[1].split() == ["backend", "0001", "0002"]  # one column group per run
    assert main(["compare", "1", "2", "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    one, two = (csv[csv["run"] == label].set_index("name")["time_per_epoch_s"] for label in ("0001", "0002"))
    assert (one / two).round(6).eq(2.0).all()  # run 2 is the same suite, twice as fast


def test_compare_of_two_machines_is_normalized_on_request(results, capsys):
    laptop, runner = full_run(results, 1, node="laptop"), full_run(results, 1, node="runner", speed=3.0)
    err = capsys.readouterr().err
    assert main(["compare", str(laptop), str(runner)]) == 2
    err = capsys.readouterr().err
    assert "different machines" in err and "--normalize numpy|matmul" in err and len(err.splitlines()) == 1
    assert main(["compare", str(laptop), str(runner), "--normalize", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "vs numpy" in out and "time/epoch" not in out and "GFLOP/s" not in out
    assert main(["compare", str(laptop), str(runner), "--normalize", "matmul"]) == 0
    out = capsys.readouterr().out
    assert "columns laptop/0001" in out and "time / matmul" in out and "time/epoch" not in out
    assert main(["compare", str(laptop), str(runner), "--normalize", "matmul", "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    # A machine 3x faster at everything, calibration included, is the same machine relative to its matmul.
    one, two = (csv[csv["run"] == label].set_index("name")["relative"] for label in ("laptop/0001", "runner/0001"))
    assert (one / two).round(6).eq(1.0).all()


def test_columns_are_explained_in_help(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["compare", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for column in ("time/epoch:", "vs numpy:", "GFLOP/s:", "% matmul:", "first call +:", "compile:", "peak MB:"):
        assert column in out


def test_plot_of_two_runs_draws_each(results, capsys):
    full_run(results, 1)
    full_run(results, 2, when="2026-11-25T11:00:00")
    assert main(["plot", "1", "2"]) == 0
    for run in ("0001", "0002"):
        for figure in ("time_per_epoch", "sweep"):
            assert (results / "plots" / "box" / f"{run}_abc_2026-11-25" / f"{figure}.png").stat().st_size > 0


def test_runs_are_named_by_number_not_by_the_digits_their_names_end_in(results, capsys):
    for number, clock in ((1, "10:00:00"), (2, "11:00:01"), (3, "12:00:21")):  # ids end in 0, 1 and 1
        full_run(results, number, when=f"2026-11-25T{clock}")
        path = results / "box" / f"{number:04d}_abc_2026-11-25.json"
        path.rename(path.with_name(f"{number:04d}_abc_2026-11-25_{clock.replace(':', '')}.json"))
    assert main(["compare", "1", "2", "box/0003"]) == 0
    out = capsys.readouterr().out
    columns = [line.split(": columns ")[1] for line in out.splitlines() if ": columns " in line]
    assert columns == ["0001", "0002", "0003"]


def drifted_runs(results, machine=1.0, code=None, factor=1.2, commits=("abc", "abc"), first=1):
    """Two runs of one machine, numbered from `first`; the second with the machine `machine` times slower, `code`
    `factor` times slower."""
    for number, speed, commit in ((first, 1.0, commits[0]), (first + 1, machine, commits[1])):
        changed = factor if number == first + 1 else 1
        timings = {name: draws(10 * number + i, 1e-3 * (i + 1)) * speed * (changed if name == code else 1)
                   for i, name in enumerate(BENCHMARKS)}
        write_run(results, number, timings, when=f"2026-11-26T{10 + number}:00:00", commit=commit,
                  calibration={"numpy": 0.01 * speed, "torch": 0.012 * speed})


def test_a_machine_that_drifted_is_not_a_regression(results, capsys):
    drifted_runs(results, machine=1.6)  # the same code, every time 1.6x: the machine moved, not the code
    assert main(["check", "--baseline", "1", "--normalize", "none"]) == 1  # raw seconds call it a regression
    assert "5 regression(s)" in capsys.readouterr().out  # the 3 trainings and the 2 calibrations
    assert main(["check", "--baseline", "1"]) == 0  # read against the matmul calibration, which drifted as much
    out = capsys.readouterr().out
    assert "0 regression(s), 0 improvement(s), 0 undecided" in out and "1.60x" in out


def test_a_change_while_the_machine_moved_is_undecided_and_names_ab(results, capsys):
    drifted_runs(results, machine=1.3, code=BENCHMARKS[2], commits=("1a2b3c4d5e6f", "9f8e7d6c5b4a"))
    assert main(["check", "--baseline", "1"]) == 3
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("seed-affine", " "))]
    undecided = [line for line in rows if "undecided" in line]
    assert len(undecided) == 1 and BENCHMARKS[2] in undecided[0]
    assert not any(line.endswith("regression") for line in out.splitlines())
    assert f"backprop-bench ab 1a2b3c4d5e --candidate 9f8e7d6c5b --only '{BENCHMARKS[2]}'" in out


def test_a_change_on_a_steady_machine_is_a_regression(results, capsys):
    steady_history(results, 6)  # runs 1-6: how far each benchmark moves on its own
    drifted_runs(results, machine=1.03, code=BENCHMARKS[0], first=7)  # the machine moved less than the threshold
    assert main(["check", "--baseline", "7", "--against", "8"]) == 1
    flagged = [line for line in capsys.readouterr().out.splitlines() if line.endswith("regression")]
    assert len(flagged) == 1 and BENCHMARKS[0] in flagged[0]


def test_same_commit_undecided_points_to_environments(results, capsys):
    drifted_runs(results, machine=1.3, code=BENCHMARKS[2])  # both runs timed commit abc
    assert main(["check", "--baseline", "1"]) == 3
    assert "(both timed commit abc)" in capsys.readouterr().out


def test_autograd_cost_is_each_autograd_variant_over_its_handwritten_twin(results, capsys):
    timings = {"seed-affine[torch-eager-cpu-float64]": [3e-3] * 5,
               "seed-affine[torch-handwritten-cpu-float64]": [1e-3] * 5,
               "seed-affine[jax-jit-loop-cpu-float64]": [2e-3] * 5,
               "seed-affine[jax-handwritten-cpu-float64]": [2.5e-3] * 5,
               "seed-affine[jax-jit-step-cpu-float64]": [9e-3] * 5,
               "seed-affine[numpy-handwritten-cpu-float64]": [1e-3] * 5}
    extra = {"seed-affine[torch-eager-cpu-float64]": {"handwritten": "handwritten", "peak_memory_bytes": 6e6},
             "seed-affine[torch-handwritten-cpu-float64]": {"peak_memory_bytes": 2e6},
             "seed-affine[jax-jit-loop-cpu-float64]": {"handwritten": "handwritten"}}
    write_run(results, 1, timings, extra=extra)
    frame, [run] = suite_runs.load(["1"], results)
    table = compare.comparison(frame, run).set_index("name")
    assert table.at["torch-eager-cpu-float64", "autograd_cost"] == pytest.approx(3.0)
    assert table.at["torch-eager-cpu-float64", "autograd_memory"] == pytest.approx(3.0)
    assert table.at["jax-jit-loop-cpu-float64", "autograd_cost"] == pytest.approx(0.8)  # hand-written slower here
    assert table.drop(["torch-eager-cpu-float64", "jax-jit-loop-cpu-float64"])["autograd_cost"].isna().all()
    assert main(["compare", "1"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if "-cpu-float64" in line}
    assert "3.00x" in rows["torch-eager-cpu-float64"] and "0.800x" in rows["jax-jit-loop-cpu-float64"]


def test_spread_comes_from_the_latest_runs_even_when_the_baseline_is_older(results, capsys, monkeypatch):
    monkeypatch.setattr(check, "SPREAD_RUNS", 6)
    steady_history(results, 8, slow=BENCHMARKS[1])  # run 1, the baseline, is not among the latest 6
    assert main(["check", "--baseline", "1", "--against", "8"]) == 1
    flagged = [line for line in capsys.readouterr().out.splitlines() if line.endswith("regression")]
    assert len(flagged) == 1 and BENCHMARKS[1] in flagged[0]


def test_a_run_read_twice_under_two_names_counts_once_in_the_spread(results):
    steady_history(results, 8, jumpy=BENCHMARKS[2])
    saved = suite_runs.load_runs(results=results)
    once = check.run_to_run([saved], list(saved["machine_id"].unique()))
    assert once.notna().all() and len(once) == len(BENCHMARKS)
    renamed = saved.assign(run=saved["run"] + "-as-named-elsewhere")  # as `check` names a run given by its path
    assert check.run_to_run([saved, renamed], list(saved["machine_id"].unique())).equals(once)
