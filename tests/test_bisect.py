"""`backprop-bench bisect`: the search over commits (on synthetic comparisons), its errors and its record."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from backprop_bench import ab, bisection, cli, report, store
from backprop_bench.store import records, suite_runs
from tests.test_ab import TINY, block_pairs, commit_all, fake, git  # noqa: F401 (fake is a fixture)

COMMITS = [(f"{i:02d}" + "a" * 38, f"commit {i}") for i in range(16)]


class Synthetic(bisection.Bisection):
    """A bisection whose comparisons are drawn, not timed: commits from `first_bad` on are `slowdown` slower."""

    def __init__(self, first_bad: int, slowdown: float = 1.10, failing=(), noisy=(), seed: int = 0):
        super().__init__(None, "good", COMMITS, TINY, 0.05, 1.0, 6, io.StringIO())
        self.first_bad, self.slowdown, self.failing, self.noisy = first_bad, slowdown, failing, noisy
        self.rng = np.random.default_rng(seed)
        self.compared: list[str] = []

    def compare(self, baseline: str, candidate: str) -> dict:
        self.compared.append(candidate)
        index = next(i for i, (sha, _) in enumerate(COMMITS) if sha == candidate)
        if index in self.failing:
            raise ab.AbError("the candidate (x) failed: ImportError: planted")
        since = -1 if baseline == "good" else next(i for i, (sha, _) in enumerate(COMMITS) if sha == baseline)
        ratio = self.slowdown if index >= self.first_bad > since else 1.0
        pairs = block_pairs(self.rng, 6, 8, ratio, 0.01, 0.3 if index in self.noisy else 0.0)  # noisy: processes differ
        found = ab.interval(pairs)
        return {"name": TINY, "pair_blocks": [b for b, _ in pairs], "log_ratios": [x for _, x in pairs],
                **dict(zip(("ratio", "ci_low", "ci_high"), found)), "verdict": ab.verdict(*found, self.threshold),
                "baseline_median_s": 0.01, "candidate_median_s": 0.01 * found[0], "pairs": len(pairs)}


def search(state: Synthetic) -> dict:
    since = time.monotonic()
    row = state.compare("good", COMMITS[-1][0])
    state.start(list(zip(row["pair_blocks"], row["log_ratios"])), "good", "bad", since)
    while (index := state.next_index()) is not None:
        state.measure(index)
    return bisection.finish(state, "good", "bad")


@pytest.mark.parametrize("first_bad", range(16))
def test_it_names_the_first_bad_commit_in_log2_steps(first_bad):
    state = Synthetic(first_bad)
    record = search(state)
    assert record["first_bad"]["commit"] == COMMITS[first_bad][0] and record["candidates"] == [COMMITS[first_bad][0]]
    assert len(record["steps"]) <= 1 + 4  # BAD itself, then halving 16
    assert record["across"]["to"] == COMMITS[first_bad][0]
    assert record["across"]["from"] == ("good" if first_bad == 0 else COMMITS[first_bad - 1][0])


def test_a_commit_that_fails_is_skipped_and_the_right_one_still_named():
    state = Synthetic(first_bad=9, failing=(7,))
    record = search(state)
    assert record["first_bad"]["commit"] == COMMITS[9][0]
    skipped = [step for step in record["steps"] if step["state"] == "skip"]
    assert [step["commit"] for step in skipped] == [COMMITS[7][0]] and "ImportError: planted" in skipped[0]["note"]
    assert "skipped: the candidate (x) failed: ImportError: planted" in state.out.getvalue()


def test_an_undecided_commit_is_measured_again_then_skipped_and_the_end_names_every_candidate():
    state = Synthetic(first_bad=8, noisy=(7,))
    record = search(state)
    [step] = [step for step in record["steps"] if step["commit"] == COMMITS[7][0]]
    assert step["state"] == "skip" and step["measurements"] == bisection.MEASUREMENTS
    assert state.compared.count(COMMITS[7][0]) == bisection.MEASUREMENTS
    assert step["pairs"] == bisection.MEASUREMENTS * 6 * 8  # each measurement's blocks joined the last
    assert record["candidates"] == [COMMITS[7][0], COMMITS[8][0]]
    assert "one of 2 (the others were skipped)" in bisection.summary(record)


def test_bad_must_be_slower_than_good():
    state = Synthetic(first_bad=99)
    with pytest.raises(bisection.BisectError, match=r"BAD \(bad\) is not slower than GOOD \(good\) past 5%"):
        search(state)


def test_each_step_is_printed_like_git_bisect():
    state = Synthetic(first_bad=5)
    record = search(state)
    lines = state.out.getvalue().splitlines()
    assert len(lines) == len(record["steps"])
    assert lines[0].startswith(f"[1] {COMMITS[15][0][:9]} commit 15: 1.1") and "bad (regression)" in lines[0]
    assert any(": good (same)" in line for line in lines)
    assert lines[-1].endswith("1 commit(s) left in question")


@pytest.mark.parametrize("args, message", [
    (["HEAD", "HEAD~1"], "is not an ancestor of BAD"),
    (["HEAD", "HEAD"], "are the same commit"),
    (["nope", "HEAD"], "unknown revision 'nope'"),
])
def test_errors_are_one_line(fake, capsys, monkeypatch, args, message):
    (fake / "note.txt").write_text("a second commit\n")
    commit_all(fake, "second")
    monkeypatch.chdir(fake)
    assert cli.main(["bisect", *args, "--only", "tiny", "--results", str(fake / "results")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_benchmark_missing_at_both_ends_is_one_line(fake, capsys, monkeypatch):
    (fake / "note.txt").write_text("a second commit\n")
    commit_all(fake, "second")
    monkeypatch.chdir(fake)
    before = git(fake, "worktree", "list")
    assert cli.main(["bisect", "HEAD~1", "HEAD", "--only", "nunpy", "--processes", "2",
                     "--results", str(fake / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["backprop-bench: error: cannot compare GOOD (HEAD~1) with BAD (HEAD): no benchmark to compare "
                   f"matches nunpy; the candidate has: {TINY}"]
    assert git(fake, "worktree", "list") == before


def test_a_saved_bisection_is_on_the_page_as_text_and_a_bad_record_is_skipped(tmp_path):
    from tests.runs import full_run

    state = Synthetic(first_bad=6)
    record = search(state)
    record["first_bad"]["subject"] = '<img src=x onerror="window.pwned=1"> speed-up'
    saved = bisection.save(record, tmp_path)
    assert saved.parent == tmp_path / "bisect" and saved.name.startswith("0001_good-bad")
    (tmp_path / "bisect" / "0002_broken.json").write_text('{"backprop_bench_bisect": 1, "good": 3}')
    with pytest.warns(store.SkippedRun, match="0002_broken.json"):
        found = records.load_bisections(tmp_path)
    assert list(found["first_bad"]) == [COMMITS[6][0]] and found["ratio"].iloc[0] == pytest.approx(1.1, abs=0.01)
    full_run(tmp_path, 1)
    frame = suite_runs.load_runs(results=tmp_path)
    html = report.build(frame, [frame["run"].iloc[0]], records.load_comparisons(tmp_path), None, found)
    assert f"{COMMITS[6][0][:12]} &lt;img src=x onerror=&#34;window.pwned=1&#34;&gt; speed-up" in html
    assert '<img src=x' not in html and "good..bad" in html
