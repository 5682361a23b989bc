"""The regression gate around `ab`: `noise` (what it can see), the CI summary, the page's noise table.

No test asserts a timing: records are synthetic, or come from the tiny fake project of test_ab.
"""

import json

import numpy as np
import pytest

from backprop_bench import ab, noise
from backprop_bench.cli import main
from backprop_bench.store import records
from tests.runs import full_run
from tests.test_ab import TINY, fake  # noqa: F401 (fake is a fixture)


def row(name, verdict, ratio=1.0, blocks=4, per_block=5, spread=0.01, seed=0):
    rng = np.random.default_rng(seed)
    pairs = [(k, float(np.log(ratio) + rng.normal(0, spread))) for k in range(blocks) for _ in range(per_block)]
    estimate, low, high = ab.interval(pairs)
    return {"name": name, "baseline_median_s": 1e-3, "candidate_median_s": 1e-3 * ratio, "ratio": estimate,
            "ci_low": low, "ci_high": high, "pairs": len(pairs), "blocks": blocks, "se": ab.standard_error(pairs),
            "verdict": verdict, "pair_blocks": [b for b, _ in pairs], "log_ratios": [x for _, x in pairs],
            "baseline_s": [1e-3], "candidate_s": [1e-3 * ratio]}


def record(rows, threshold=0.05):
    side = {"python": "/usr/bin/python3", "versions": {"numpy": "2.4.6"}, "processes": 4}
    return {"backprop_bench_ab": records.AB_SCHEMA, "datetime": "2026-11-29T10:00:00+00:00", "threshold": threshold,
            "machine_info": {"node": "box", "cpu": {"brand_raw": "CPU"}, "backprop_bench": {}},
            "baseline": {"label": "main", "commit": "1" * 40, **side},
            "candidate": {"label": "working tree", "commit": "working tree", **side}, "benchmarks": rows}


def test_the_ci_summary_puts_changed_benchmarks_first_and_folds_the_rest():
    text = ab.markdown(record([row("a[numpy-x-cpu-float64]", "same"),
                               row("b[torch-x-cpu-float64]", "slower", 1.03),
                               row("c[jax-x-cpu-float64]", "regression", 1.2),
                               row("d[jax-y-cpu-float64]", "inconclusive")]))
    changed, folded = text.split("<details>")
    assert changed.index("c[jax-x") < changed.index("b[torch-x") and "a[numpy" not in changed
    assert "### Changed (2)" in changed and "Unchanged (2)" in folded and "a[numpy" in folded and "d[jax" in folded
    assert "1 regression(s)" in changed and "1 under the threshold" in changed
    assert "Ratio: the paired ratio" in folded and "not the ratio of the two medians shown" in folded


def test_the_ci_summary_without_changes_says_none():
    text = ab.markdown(record([row("a[numpy-x-cpu-float64]", "same")]))
    assert "### Changed (0)\n\nNone." in text


def test_a_busy_machine_is_named_in_the_output():
    """More than 5% of the pairs hit by bursts (more than 22% off their benchmark's estimate): a note says so."""
    quiet = row("a[numpy-x-cpu-float64]", "same", blocks=4, per_block=10)
    assert ab.burst_share([quiet]) == 0 and ab.busy_note([quiet]) == ""
    assert "Note" not in ab.markdown(record([quiet]))
    busy = row("a[numpy-x-cpu-float64]", "inconclusive", blocks=4, per_block=10)
    busy["log_ratios"][::8] = [0.5, -0.4, 0.6, -0.5, 0.45]  # 5 of 40 pairs hit by bursts
    assert ab.burst_share([busy]) == pytest.approx(5 / 40)
    note = ab.busy_note([busy])
    assert note.startswith("the machine was busy: 12% of the pairs stood more than 22% off")
    assert "> **Note**: The machine was busy: 6%" in ab.markdown(record([quiet, busy]))
    assert ab.burst_share([quiet, busy]) == pytest.approx(5 / 80)  # 6%: still over 5%


def test_noise_spreads_and_smallest_flagged_change():
    found = record([row("a[numpy-x-cpu-float64]", "same", spread=0.02, blocks=6, per_block=20)])
    found["benchmarks"][0].update(noise.spreads(found["benchmarks"][0]))
    bench = found["benchmarks"][0]
    assert bench["within_block"] == pytest.approx(0.02, rel=0.2)
    assert 0 < bench["between_blocks"] < 0.02  # medians of 20 pairs vary less than one pair
    bench["smallest_flagged"] = ab.smallest_flagged(bench["se"], 6, 0.05)
    assert bench["smallest_flagged"] > 0.05  # never under the threshold itself
    shown = noise.table(found)
    assert list(shown.columns) == ["benchmark", "A/A ratio", "pairs", "between processes", "one pair", "std error",
                                   "smallest flagged"]
    assert shown["one pair"].iloc[0].endswith("%")
    assert "A/A intervals exclude 1" in noise.summary(found)


def test_noise_of_the_tiny_project_is_saved_and_shown_on_the_page(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(fake)
    results = tmp_path / "results"
    assert main(["noise", "--budget", "3", "--processes", "2", "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    assert TINY in out and "smallest flagged" in out and "A/A intervals exclude 1" in out
    [saved] = (results / "noise").glob("*.json")
    assert saved.name == "0001_working-tree.json" and f"saved {saved}" in err
    bench = json.loads(saved.read_text())["benchmarks"][0]
    assert bench["blocks"] == 2 and bench["smallest_flagged"] > 0.05
    full_run(results, 1)
    assert main(["report", "--results", str(results), "--output", str(tmp_path / "page.html")]) == 0
    page = (tmp_path / "page.html").read_text()
    assert 'id="noise"' in page and TINY in page and "smallest flagged" in page
    frame = records.load_comparisons(results, "noise")
    assert list(frame["benchmark"]) == [TINY] and frame["smallest_flagged"].iloc[0] == pytest.approx(
        bench["smallest_flagged"])


def test_a_noise_record_without_its_spreads_is_shown_with_dashes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    full_run(results, 1)
    bare = record([row("a[numpy-x-cpu-float64]", "same")])
    del bare["benchmarks"][0]["se"]
    bare["benchmarks"][0]["smallest_flagged"] = 0.05  # a third probe found this shape ending report in a KeyError
    (results / "noise").mkdir()
    (results / "noise" / "0001_working-tree.json").write_text(json.dumps(bare))
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    page = (tmp_path / "page.html").read_text()
    assert 'id="noise"' in page and "a[numpy-x-cpu-float64]" in page and "nan%" not in page


def in_turns(found):
    """The row's trainings as turns of three, the candidate's each its pair's ratio slower: whether read by the
    turns' fastest or their medians, its pairs are its log-ratios."""
    turn = [1e-3, 1.001e-3, 1.002e-3]
    found["baseline_s"] = turn * len(found["log_ratios"])
    found["candidate_s"] = [t * np.exp(x) for x in found["log_ratios"] for t in turn]
    return found


def test_saved_gate_records_are_recounted_under_each_method(tmp_path, capsys, monkeypatch):
    """benchmarks/gate_records.py: a burst-hit block hides a planted 6% from the blocks' own estimates and medians,
    not from ab.interval, whether the pairs are read from the turns' fastest trainings or their medians; identical
    code stays quiet under all. The packed pairs (docs/data) count the same."""
    from benchmarks import gate_records
    from benchmarks.gate_check import PLANTED_BENCHMARK

    planted = row(PLANTED_BENCHMARK, "regression", ratio=1.06, blocks=6, per_block=3, spread=0.005, seed=1)
    planted["log_ratios"][0:2] = [np.log(0.70), np.log(0.72)]  # two bursts of load in block 0
    quiet = [row(name, "same") for name in (TINY, "other")]
    for found in quiet:  # identical code: pairs of -1%, 0 and +1% in turn
        found["log_ratios"] = [0.01 * (i % 3 - 1) + 0.001 * (i // 3 % 2) for i in range(len(found["log_ratios"]))]
    for kind, rows in (("aa", quiet), ("planted", [planted, row(TINY, "same", seed=4)])):
        (tmp_path / kind / "ab").mkdir(parents=True)
        (tmp_path / kind / "ab" / "0001_HEAD-vs-HEAD.json").write_text(json.dumps(record([in_turns(r) for r in rows])))
    packed = tmp_path / "pairs.json.gz"
    shown = []
    for argv in ([str(tmp_path)], [str(tmp_path), "--pack", str(packed)], [str(packed)]):
        monkeypatch.setattr("sys.argv", ["gate_records", *argv])
        gate_records.main()
        shown.append(capsys.readouterr().out)
    table = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in shown[0].splitlines()}
    fastest, block_estimates, median, block_medians = (table[name] for name in gate_records.METHODS)
    assert fastest == median == ["1", "0 of 2", "0", "1", "1 |"]  # Huber's estimate over all pairs pulls bursts in
    assert block_estimates == block_medians == ["1", "0 of 2", "0", "1", "0 |"]  # block 0 is thrown off with them
    assert shown[1].startswith(f"wrote {packed}: 1 A/A and 1 planted")
    assert shown[2].split("\n\n")[0] == shown[0].split("\n\n")[0]  # the table; then each set, named by its source
    assert f"{tmp_path}: 0 of 2 (0.0%)" in shown[0] and f"{packed}: 0 of 2 (0.0%)" in shown[2]
    assert "all: 0 of 2 (0.0%; 95% interval of the share 0.0%-84.2%)" in shown[0]
