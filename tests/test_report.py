"""compare and check on result files the tests write themselves: no timing is asserted anywhere."""

import pytest

from backprop_bench import report
from backprop_bench.cli import main
from tests.runs import BENCHMARKS, draws, write_run

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


def test_planted_slowdown_is_flagged_alone(results, capsys):
    same_runs(results, slow=BENCHMARKS[1])
    assert main(["check", "--baseline", "1", "--against", "2"]) == 1
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if "REGRESSION" in line]
    assert len(flagged) == 1 and BENCHMARKS[1] in flagged[0]
    assert "1 regression(s)" in out


def test_same_distribution_is_not_flagged(results, capsys):
    same_runs(results)
    assert main(["check", "--baseline", "1"]) == 0  # --against defaults to the latest run, 2
    out = capsys.readouterr().out
    assert "REGRESSION" not in out and "current box/0002" in out
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
    table, (baseline, current) = report.load(["1", "2"], results)
    from backprop_bench.regress import check
    verdicts = check(table, baseline, current)
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
    flagged = [line for line in capsys.readouterr().out.splitlines() if "REGRESSION" in line]
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
    write_run(results, 1, {BENCHMARKS[0]: [4e-3] * 5, BENCHMARKS[1]: [1e-3] * 5},
              calibration={"numpy": 0.5, "jax": 1.0})
    table = report.comparison(report.load_runs(results=results), "box/0001_abc_2026-11-25")
    jax = table[table["name"] == "jax-jit-loop-cpu-float64"].iloc[0]
    assert jax["time_per_epoch_s"] == pytest.approx(1e-6)          # 1 ms / 1000 epochs
    assert jax["vs_numpy"] == pytest.approx(4.0)                   # 4 ms / 1 ms
    assert jax["gflops"] == pytest.approx(80 * 1000 / 1e-3 / 1e9)  # 80 FLOPs x 1000 epochs in 1 ms
    assert jax["of_machine"] == pytest.approx(jax["gflops"] / 2.0)  # machine: the best, 1 / 0.5 s = 2 GFLOP/s
    assert jax["of_own_matmul"] == pytest.approx(jax["gflops"] / 1.0)  # jax's own: 1 / 1.0 s
    for fmt, marker in [("table", "4.00x"), ("markdown", "| jax-jit-loop-cpu-float64 |"), ("csv", "vs_numpy")]:
        assert main(["compare", "--format", fmt]) == 0
        assert marker in capsys.readouterr().out
