"""The results store keeps every run: exclusive saves, incomplete runs marked, hostile files skipped,
one-line errors."""

import copy
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop_bench import store
from backprop_bench.cli import main
from backprop_bench.store import suite_runs
from tests.runs import BENCHMARKS, draws, write_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkout here: the commands read ./results
    (tmp_path / "results").mkdir()
    return tmp_path / "results"


def two_runs(results):
    timings = {name: draws(i, 1e-3 * (i + 1)) for i, name in enumerate(BENCHMARKS)}
    return (write_run(results, 1, timings), write_run(results, 2, timings, when="2026-11-25T11:00:00"))


def digests(results):
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in results.rglob("*") if path.is_file()}


def one_line_error(capsys, *args) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


# 1. Nothing a reporting command writes replaces a run.

def test_compare_output_never_replaces_a_run(results, capsys):
    first, second = two_runs(results)
    before = digests(results)
    assert "is a saved run" in one_line_error(capsys, "compare", "1", "--output", str(second), "--force")
    assert "among the saved runs" in one_line_error(capsys, "compare", "--output", str(results / "box" / "new.md"))
    assert "among the saved runs" in one_line_error(capsys, "compare", "--output", str(results / "table.json"))
    assert "is a folder" in one_line_error(capsys, "compare", "--output", str(results))
    assert "no such folder" in one_line_error(capsys, "compare", "--output", "/nonexistent/dir/x.md")
    assert digests(results) == before
    out = results.parent / "table.md"
    assert main(["compare", "--output", str(out)]) == 0 and out.read_text().startswith("run box/0002")
    assert "exists; pass --force" in one_line_error(capsys, "compare", "--output", str(out))
    assert main(["compare", "1", "--output", str(out), "--force"]) == 0 and out.read_text().startswith("run box/0001")


# 2. An incomplete or partial run is never the default, and says what it is.

def test_incomplete_and_partial_runs_are_never_the_latest(results, capsys):
    two_runs(results)
    timings = {BENCHMARKS[0]: draws(0, 1e-3)}
    write_run(results, 3, timings, when="2026-11-25T12:00:00",
              status={"complete": False, "why": "interrupted", "collected": 3, "ran": 1})
    write_run(results, 4, timings, when="2026-11-25T13:00:00", status={"complete": True, "partial": "-k numpy"})
    assert main(["compare"]) == 0
    assert capsys.readouterr().out.startswith("run box/0002")
    assert main(["compare", "3"]) == 0
    assert capsys.readouterr().out.startswith("run box/0003_abc_2026-11-25 (incomplete: interrupted, 1 of 3 ran)")
    assert main(["check", "--baseline", "1", "--against", "3"]) == 0
    out = capsys.readouterr().out
    assert "note: run box/0003_abc_2026-11-25 is incomplete: interrupted, 1 of 3 ran" in out
    assert f"only in baseline (2, not compared): {', '.join(sorted(BENCHMARKS[1:]))}" in out
    assert "among 1 benchmarks in both runs" in out


def bench_file(tmp_path, body: str) -> Path:
    test = tmp_path / "test_tiny.py"
    test.write_text(body)
    return test


def run_suite(tmp_path, test: Path, storage: str, *args) -> subprocess.CompletedProcess:
    """pytest --benchmark-only on a tiny benchmark file, with this project's conftest as a plugin."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "--benchmark-only",
                           "-p", "no:cacheprovider", f"--benchmark-storage=file://{storage}",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(test), *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


TINY = """
import pytest

def test_first(benchmark):
    benchmark.pedantic(sum, args=([1, 2],), rounds=3)

def test_second(benchmark):
    benchmark.pedantic(sum, args=([1, 2],), rounds=3)
    {second}

def test_third(benchmark):
    benchmark.pedantic(sum, args=([1, 2],), rounds=3)

@pytest.mark.skip(reason="not meant to run here, so not counted")
def test_fourth(benchmark):
    pass
"""


def saved(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.rglob("*.json"))]


def test_a_run_stopped_by_ctrl_c_is_saved_marked_incomplete(tmp_path):
    done = run_suite(tmp_path, bench_file(tmp_path, TINY.format(second="raise KeyboardInterrupt")), tmp_path / "out")
    assert done.returncode == 2, done.stdout[-2000:]
    [run] = saved(tmp_path / "out")
    assert run["backprop_bench_run"].pop("wall_s") > 0
    assert run["backprop_bench_run"] == {"complete": False, "why": "interrupted", "collected": 3, "ran": 2}
    assert suite_runs.run_status(run) == "incomplete: interrupted, 2 of 3 ran"
    [path] = (tmp_path / "out").rglob("*.json")
    assert (f"backprop-bench: interrupted; the benchmarks that finished are kept in {path}, "
            "marked incomplete") in done.stdout


def test_a_whole_run_is_complete_and_a_selection_is_partial(tmp_path):
    test = bench_file(tmp_path, TINY.format(second=""))
    assert run_suite(tmp_path, test, tmp_path / "out").returncode == 0
    assert run_suite(tmp_path, test, tmp_path / "out", "-k", "first").returncode == 0
    whole, selection = saved(tmp_path / "out")
    assert whole["backprop_bench_run"].pop("wall_s") > 0
    assert whole["backprop_bench_run"] == {"complete": True, "collected": 3, "ran": 3}
    assert selection["backprop_bench_run"]["partial"] == "-k first"
    [folder] = (tmp_path / "out").iterdir()
    assert folder.name == store.machine_id(store.this_machine())


def test_a_run_number_is_not_read_as_the_end_of_a_name(results, capsys):
    timings = {BENCHMARKS[0]: draws(0, 1e-3)}
    write_run(results, 1, timings, when="2026-11-01T10:00:00")
    write_run(results, 2, timings, when="2026-11-21T10:00:00")  # its name ends in 1
    assert main(["compare", "1"]) == 0 and capsys.readouterr().out.startswith("run box/0001_abc_2026-11-01")
    assert main(["compare", "0002_abc_2026-11-21"]) == 0 and "run box/0002" in capsys.readouterr().out
    assert main(["compare", "box/0002_abc_2026-11-21"]) == 0 and "run box/0002" in capsys.readouterr().out


# 3. Saves at the same moment each get their own number, whole.

def save_many(folder, tag, count):
    return [str(store.save_new(Path(folder), tag, json.dumps({"tag": tag, "i": i, "pad": "x" * 50_000})))
            for i in range(count)]


def test_concurrent_saves_never_overwrite_or_tear(tmp_path):
    folder = tmp_path / "machine"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        paths = sum(pool.starmap(save_many, [(folder, f"tag{n}", 25) for n in range(4)]), [])
    assert len(set(paths)) == 100
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(Path(p).name for p in paths)
    assert sorted(int(Path(p).name[:4]) for p in paths) == list(range(1, 101))
    contents = {(run["tag"], run["i"]) for run in map(json.loads, (Path(p).read_text() for p in paths))}
    assert len(contents) == 100
    for path in paths:
        assert Path(path).name.split("_", 1)[1].startswith(json.loads(Path(path).read_text())["tag"])


# 4. An unwritable results folder is found before any benchmark runs; a failed save keeps the table.

def test_unwritable_results_stop_the_run_before_it_starts(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    done = run_suite(tmp_path, bench_file(tmp_path, TINY.format(second="")), blocker / "results")
    assert done.returncode == 4 and "cannot write to" in done.stderr and "Traceback" not in done.stderr
    assert "test_first" not in done.stdout


def test_a_save_that_fails_at_the_end_still_prints_the_table(tmp_path):
    storage = tmp_path / "out"
    sabotage = f"import shutil; shutil.rmtree({str(storage)!r}); open({str(storage)!r}, 'w').close()"
    done = run_suite(tmp_path, bench_file(tmp_path, TINY.format(second=sabotage)), storage)
    assert done.returncode == 1
    assert "backprop-bench: error: the run could not be saved" in done.stdout
    assert "test_third" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_plot_and_output_into_a_folder_that_cannot_be_written(results, tmp_path, capsys):
    two_runs(results)
    (results / "plots").write_text("")  # a file where the figures' folder would go
    assert "cannot write to" in one_line_error(capsys, "plot")


# 5 and 7. Runs that cannot be judged or read are skipped with one warning each, and the rest still work.

def mangled(run: dict, change) -> dict:
    run = copy.deepcopy(run)
    change(run)
    return run


BAD_RUNS = {
    "nan median": lambda r: r["benchmarks"][0]["stats"].update(median=float("nan")),
    "null median": lambda r: r["benchmarks"][0]["stats"].update(median=None),
    "no timings": lambda r: r["benchmarks"][0]["stats"].update(data=[]),
    "no datetime": lambda r: r.pop("datetime"),
    "bad datetime": lambda r: r.update(datetime="yesterday"),
    "stats a list": lambda r: r["benchmarks"][0].update(stats=[1, 2]),
    "machine_info a string": lambda r: r.update(machine_info="vm"),
    "backprop_bench a list": lambda r: r["machine_info"].update(backprop_bench=[1]),
    "commit_info a string": lambda r: r.update(commit_info="abc"),
    "extra_info a list": lambda r: r["benchmarks"][0].update(extra_info=[1]),
    "data a string": lambda r: r["benchmarks"][0]["stats"].update(data="0.1"),
    "data strings": lambda r: r["benchmarks"][0]["stats"].update(data=["0.1"]),
    "median a string": lambda r: r["benchmarks"][0]["stats"].update(median="0.1"),
    "epochs a string": lambda r: r["benchmarks"][0]["extra_info"].update(epochs="1000"),
    "name an int": lambda r: r["benchmarks"][0].update(name=7),
    "benchmark a string": lambda r: r["benchmarks"].append("x"),
}


@pytest.mark.parametrize("what", BAD_RUNS)
def test_a_bad_run_is_skipped_and_the_others_still_work(results, capsys, what):
    first, second = two_runs(results)
    bad = results / "box" / "0003_abc_2026-11-26.json"
    bad.write_text(json.dumps(mangled(json.loads(second.read_text()), BAD_RUNS[what]), allow_nan=True))
    before = digests(results)
    assert main(["compare"]) == 0  # the bad run is the newest; the latest readable one is shown
    captured = capsys.readouterr()
    assert captured.out.startswith("run box/0002") and f"skipping {bad}" in captured.err
    assert main(["check", "--baseline", "1", "--against", "2"]) == 0
    assert "error" not in capsys.readouterr().err
    assert "is not a benchmark run this suite can read" in one_line_error(capsys, "compare", "3")
    assert digests(results) == before


def test_deeply_nested_json_is_skipped(results, capsys):
    two_runs(results)
    deep = results / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    assert main(["check", "--baseline", "1"]) == 0
    assert f"skipping {deep}: nested too deeply" in capsys.readouterr().err


# 6. --alpha and --threshold must mean something.

@pytest.mark.parametrize("alpha", ["0", "-1", "nan", "2", "1"])
def test_alpha_outside_0_1_is_refused(results, capsys, alpha):
    two_runs(results)
    assert "--alpha must be between 0 and 1" in one_line_error(capsys, "check", "--baseline", "1", f"--alpha={alpha}")


def test_negative_threshold_is_explained(results, capsys):
    two_runs(results)
    assert "joined to its option with '='" in one_line_error(capsys, "check", "--baseline", "1", "--threshold", "-5%")
    assert "between 0% and 1000%" in one_line_error(capsys, "check", "--baseline", "1", "--threshold=-5%")


def test_check_of_a_run_against_itself_is_refused(results, capsys):
    two_runs(results)
    assert "both name run box/0002" in one_line_error(capsys, "check", "--baseline", "2")


# 8. A link to a run is the same run.

def test_a_symlinked_run_counts_once(results, capsys):
    first, second = two_runs(results)
    (results / "again.json").symlink_to(second)
    (results / "loop.json").symlink_to(results / "loop.json")
    assert len(store.run_files(results)) == 2
    assert main(["check", "--baseline", "1"]) == 0 and main(["compare", "2"]) == 0


# 9. Runs outside results/ and outputs in odd places: one line or a clean result, never a traceback.

def test_plot_of_a_run_outside_results(results, tmp_path, capsys):
    first, _ = two_runs(results)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(first.read_text())
    assert main(["plot", str(outside)]) == 0
    assert (results / "plots" / "elsewhere" / "time_per_epoch.png").is_file()
    assert not (results / "ext.json").exists()


# 11. Messages that say what is wrong.

def test_a_foreign_json_named_on_the_command_line(results, tmp_path, capsys):
    two_runs(results)
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"hello": 1}')
    assert f"{foreign} is not a benchmark run this suite can read" in one_line_error(capsys, "compare", str(foreign))


def test_no_such_run_among_many_is_one_short_line(results, capsys):
    timings = {BENCHMARKS[0]: [1e-3] * 3}
    for number in range(1, 301):
        write_run(results, number, timings)
    err = one_line_error(capsys, "compare", "999")
    assert "300 saved run(s), numbered 0001 to 0300" in err and len(err) < 200


# 12. The C reference loop leaves nothing behind.

def test_the_c_loop_leaves_no_files(tmp_path, monkeypatch):
    from benchmarks.reference import compile_c_loop

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    if compile_c_loop() is None:
        pytest.skip("no C compiler")
    assert list(tmp_path.glob("backprop-bench-*")) == []
