"""`backprop-bench ab`: its statistics on synthetic paired timings, its workers and worktrees on a tiny fake project.

No test asserts a timing: the fake project's trainings take microseconds and only the
shape of what comes back (names, counts, sides, clean-up) is checked.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from backprop_bench import ab
from backprop_bench.store import records
from benchmarks.gate_records import block_estimate_interval, block_median_interval
from tests.signals import popen_as_from_a_terminal

ROOT = Path(__file__).resolve().parent.parent
TINY = "tiny[numpy-handwritten-cpu-float64]"


# --- statistics ------------------------------------------------------------------------------------

def paired_log_ratios(rng, n, ratio, noise):
    """log(candidate / baseline) of n pairs: a true ratio under heavy-tailed noise (Student t, 3 dof)."""
    return np.log(ratio) + noise * rng.standard_t(3, size=n)


def block_pairs(rng, blocks, per_block, ratio, noise, process_sd=0.0):
    """(block, log-ratio) pairs: each block's two processes run at their own speed, a planted per-process offset."""
    offsets = process_sd * (rng.normal(size=blocks) - rng.normal(size=blocks))  # candidate's minus baseline's
    return [(k, float(x)) for k in range(blocks) for x in offsets[k] + paired_log_ratios(rng, per_block, ratio, noise)]


def pooled_interval(pairs):
    """The interval before blocks (commit 621797c): order statistics of all pairs, as if they were independent."""
    from scipy.stats import binom

    x, n = np.sort([log_ratio for _, log_ratio in pairs]), len(pairs)
    k = int(binom.ppf(0.025, n, 0.5))
    return np.exp(x[k - 1]), np.exp(x[n - k])


def coverage(draw, truth, intervals, draws=2000):
    """Per interval (a function of pairs ending in (low, high)), the share of `draws` draws of pairs whose interval
    holds the true ratio."""
    held = np.zeros(len(intervals))
    for _ in range(draws):
        pairs = draw()
        held += [low <= truth <= high for low, high in (interval(pairs)[-2:] for interval in intervals)]
    return held / draws


def test_the_interval_holds_its_95_percent_where_processes_differ_and_pooling_pairs_did_not():
    """A per-process offset of 2% (jax-jit-step's size here): pooled pairs call a change; blocks do not."""
    rng = np.random.default_rng(0)
    blocks, pooled = coverage(lambda: block_pairs(rng, 6, 8, 1.07, 0.01, process_sd=0.02), 1.07,
                              [ab.interval, pooled_interval])
    assert 0.93 <= blocks <= 0.97, blocks
    assert pooled < 0.8, pooled  # 0.63 with this seed: far from its promised 95%


def test_where_processes_differ_and_pairs_barely_do_the_interval_holds_a_little_under_its_95_percent():
    """A known limit: processes 2% apart, pairs within one 0.1% apart. Huber's estimate over all pairs, its scale set
    by the spread between processes, pulls far blocks in as if they were bursts, and the jackknife sees less spread
    than there is (0.919 with this seed). A t interval over each block's own estimate holds there (0.9515), but lost
    planted slowdowns to burst-hit blocks on a noisy machine, so `ab` keeps this one (docs/regressions.md)."""
    rng = np.random.default_rng(0)
    pooled, per_block = coverage(lambda: block_pairs(rng, 6, 12, 1.04, 0.001, process_sd=0.02), 1.04,
                                 [ab.interval, block_estimate_interval])
    assert 0.90 <= pooled <= 0.97, pooled
    assert 0.93 <= per_block <= 0.97, per_block


def test_the_interval_holds_its_95_percent_without_process_offsets():
    rng = np.random.default_rng(1)
    for blocks, per_block in ((4, 3), (6, 10), (12, 40)):
        (covered,) = coverage(partial(block_pairs, rng, blocks, per_block, 1.07, 0.05), 1.07, [ab.interval])
        assert 0.93 <= covered <= 0.985, (blocks, covered)


def bursty_pairs(rng, blocks, per_block, ratio, burst_share=0.09):
    """Pairs as measured here: a 2% middle spread, a 1% per-process offset, and bursts of load that throw a share of
    the pairs 30% off (in 40 A/A comparisons of the presets, 5% of pairs stood more than 20% off)."""
    found = []
    for block, x in block_pairs(rng, blocks, per_block, ratio, 0.0, process_sd=0.01):
        burst = rng.random() < burst_share
        found.append((block, x + 0.02 * rng.normal() + (0.3 * rng.normal() if burst else 0.0)))
    return found


@pytest.mark.parametrize("blocks, per_block", [(6, 3), (4, 3), (6, 10), (12, 5)])
def test_the_interval_holds_its_95_percent_under_bursts_of_load(blocks, per_block):
    rng = np.random.default_rng(2)
    (covered,) = coverage(lambda: bursty_pairs(rng, blocks, per_block, 1.05), 1.05, [ab.interval], draws=1500)
    assert 0.93 <= covered <= 0.97, covered


def test_two_bursts_in_one_block_do_not_hide_a_slowdown():
    """A 6% slowdown, read 5-7% by every pair but two of one block, thrown 30% low by bursts of load: the blocks'
    medians let that block widen the interval past the threshold (a planted slowdown missed so, in 9817041)."""
    pairs = [(block, np.log(1.05 + 0.01 * (i % 3))) for block in range(6) for i in range(3)]
    pairs[0], pairs[1] = (0, np.log(0.70)), (0, np.log(0.72))
    assert ab.verdict(*block_median_interval(pairs), 0.03) != "regression"
    assert ab.verdict(*block_estimate_interval(pairs), 0.03) == "inconclusive"  # nor do the blocks' own estimates
    assert ab.verdict(*ab.interval(pairs), 0.03) == "regression"


def bursty_turn(rng, trainings, speed, burst_share=0.3):
    """One turn's training times: a 0.5% spread, and in a share of the turns a burst of load that slows a run of
    consecutive trainings (up to all of them) by 20-60%."""
    times = speed * np.exp(0.005 * rng.normal(size=trainings))
    if rng.random() < burst_share:
        start = rng.integers(trainings)
        times[start:start + rng.integers(1, trainings + 1)] *= 1 + rng.uniform(0.2, 0.6)
    return list(times)


def turn_pairs(rng, blocks, per_block, ratio, trainings=6):
    """(block, log-ratio) pairs read from bursty turns, each process at its own speed (1% apart)."""
    pairs = []
    for block in range(blocks):
        baseline, candidate = np.exp(0.01 * rng.normal(size=2))
        pairs += [(block, ab.pair_log_ratio(bursty_turn(rng, trainings, baseline),
                                            bursty_turn(rng, trainings, ratio * candidate)))
                  for _ in range(per_block)]
    return pairs


def test_the_interval_holds_its_95_percent_on_pairs_read_from_bursty_turns():
    rng = np.random.default_rng(3)
    (covered,) = coverage(lambda: turn_pairs(rng, 6, 3, 1.04), 1.04, [ab.interval], draws=1500)
    assert 0.93 <= covered <= 0.97, covered


class ScriptedWorker:
    """A worker whose turns are given: each `time` request answers the next turn's training times."""

    def __init__(self, turns):
        self.turns = iter(turns)

    def ask(self, op, name, n):
        return {"s": next(self.turns)}


def test_a_pair_is_read_from_each_turns_fastest_training():
    """A 5% slower candidate whose turn a burst of load covered but for its first training: the medians of the
    turns would read 1.6, the fastest trainings read the change."""
    workers = [[ScriptedWorker([[1.0, 1.01, 1.0, 1.02]])], [ScriptedWorker([[1.05, 1.6, 1.62, 1.7]])]]
    pairs = ab.Pairs(workers, {"b": 4}, np.random.default_rng(0))
    block, log_ratio = pairs("b")
    assert block == 0 and log_ratio == pytest.approx(np.log(1.05))
    assert np.median([1.05, 1.6, 1.62, 1.7]) / np.median([1.0, 1.01, 1.0, 1.02]) > 1.5
    assert pairs.timings["b"] == ([1.0, 1.01, 1.0, 1.02], [1.05, 1.6, 1.62, 1.7])


def test_the_jackknife_error_shrinks_with_blocks_not_with_pairs_in_a_block():
    """The unit of replication is the block: pairs that repeat their block's offset add nothing."""
    offsets = [0.03, -0.01, 0.02, 0.0, -0.02, 0.01]
    once = [(block, offset) for block, offset in enumerate(offsets)]
    _, se_once, blocks = ab.estimate(once)
    _, se_five, _ = ab.estimate([pair for pair in once for _ in range(5)])
    assert blocks == 6 and se_five == pytest.approx(se_once)


def test_one_block_gives_no_interval():
    assert ab.interval([(0, 0.1)] * 5)[1:] == (0.0, float("inf"))
    assert ab.interval([(0, 0.0), (1, 0.2)])[0] == pytest.approx(np.exp(0.1))


@pytest.mark.parametrize("ratio, noise, per_block, expected", [
    (1.10, 0.02, 30, "regression"),
    (1 / 1.10, 0.02, 30, "improvement"),
    (1.00, 0.02, 30, "same"),
    (1.03, 0.02, 30, "slower"),         # a real change, seen, but under the threshold
    (1 / 1.03, 0.02, 30, "faster"),
    (1.10, 0.50, 3, "inconclusive"),    # too noisy to tell in 3 pairs a block
])
def test_verdicts_on_known_ratios(ratio, noise, per_block, expected):
    estimate, low, high = ab.interval(block_pairs(np.random.default_rng(1), 6, per_block, ratio, noise))
    assert ab.verdict(estimate, low, high, threshold=0.05) == expected


def test_verdict_needs_both_the_interval_and_the_threshold():
    assert ab.verdict(1.04, 1.01, 1.06, 0.05) == "slower"       # significant, but smaller than the threshold
    assert ab.verdict(0.96, 0.94, 0.99, 0.05) == "faster"
    assert ab.verdict(1.047, 1.039, 1.055, 0.05) == "slower"    # a planted +4.5%: never "same"
    assert ab.verdict(1.01, 0.99, 1.03, 0.05) == "same"
    assert ab.verdict(1.08, 0.99, 1.12, 0.05) == "inconclusive"  # past the threshold, but 1 is in the interval
    assert ab.verdict(0.95, 0.864, 0.994, 0.05) == "faster"     # wide, and only just misses 1: a change, not its size
    assert ab.verdict(1.5, 1.2, 2.0, 0.05) == "regression"      # wide, but wholly past the threshold
    assert ab.verdict(0.6, 0.4, 0.9, 0.05) == "improvement"


def test_a_change_needs_an_interval_that_resolves_the_threshold():
    """At a 3% threshold, a planted 4% slowdown measured to +-2.3% is a regression (half-width under the threshold);
    the same estimate measured to +-3.5% is only slower (it could be 0.5%)."""
    assert ab.verdict(1.040, 1.017, 1.064, 0.03) == "regression"
    assert ab.verdict(1.040, 1.005, 1.076, 0.03) == "slower"
    assert ab.verdict(1 / 1.040, 1 / 1.064, 1 / 1.017, 0.03) == "improvement"


def test_same_means_within_the_threshold_on_both_sides():
    """An equivalence test: the interval holds 1 and lies within [1 / (1 + threshold), 1 + threshold]."""
    assert ab.verdict(1.00, 0.96, 1.04, 0.05) == "same"          # wider than 5%, but no change past 5% fits it
    assert ab.verdict(1.01, 0.97, 1.06, 0.05) == "inconclusive"  # a 6% slowdown still fits
    assert ab.verdict(0.99, 0.94, 1.02, 0.05) == "inconclusive"


@pytest.mark.parametrize("sd, thresholds", [(0.01, (0.0, 0.03, 0.05)), (0.002, (0.0, 0.03, 0.05))])
def test_the_smallest_flagged_change_is_flagged_80_percent_of_the_time(sd, thresholds):
    """Where intervals are wider than the threshold (sd 1%) and narrower (sd 0.2%)."""
    rng, blocks, per_block, noise = np.random.default_rng(8), 6, 10, 0.02
    se = np.std([ab.estimate(block_pairs(rng, blocks, per_block, 1.0, noise, sd))[0] for _ in range(2000)])
    for threshold in thresholds:
        effect = ab.smallest_flagged(se, blocks, threshold)
        flagged = [ab.verdict(*ab.interval(block_pairs(rng, blocks, per_block, 1 + effect, noise, sd)), threshold)
                   == "regression" for _ in range(1000)]
        assert 0.7 <= np.mean(flagged) <= 0.92, (threshold, effect, np.mean(flagged))
    assert ab.smallest_flagged(float("inf"), blocks, 0.05) == float("inf")


def measure_one(next_pair, time_left=lambda: 1e9, blocks=4):
    """ab.measure of one benchmark whose pairs go round `blocks` blocks."""
    count = iter(range(10**6))
    found = ab.measure(lambda name: (next(count) % blocks, next_pair()), ["one"], time_left,
                       np.random.default_rng(0), ab.PAIRS_PER_BLOCK * blocks)
    return found["one"]


@pytest.mark.parametrize("time_for, expected", [(3, ab.PAIRS_PER_BLOCK * 4), (25, 25)])
def test_measuring_stops_when_the_time_is_spent_but_not_before_the_minimum(time_for, expected):
    rng, pairs = np.random.default_rng(3), []

    def next_pair():
        pairs.append(paired_log_ratios(rng, 1, 1.0, 0.5)[0])
        return pairs[-1]

    assert len(measure_one(next_pair, lambda: time_for - len(pairs))) == expected  # a pair takes a second


@pytest.mark.parametrize("time_for, expected", [(25, 24), (24, 24), (23, 20), (2, 4)])
def test_measuring_ends_on_a_whole_cycle_of_blocks_within_the_time(time_for, expected):
    """Every block gets as many pairs as the others, and a cycle starts only if it fits: with a second a pair,
    4 blocks and 25 s, 24 pairs, 6 a block (not 28, 3 s late); the first cycle is taken whatever the time."""
    blocks, taken = 4, []
    found = ab.measure(lambda name: (len(taken) % blocks, taken.append(0.0) or 0.0), ["one"],
                       lambda: time_for - len(taken), np.random.default_rng(0), ab.PAIRS_PER_BLOCK * blocks,
                       cycle=blocks)
    assert len(found["one"]) == expected
    assert np.bincount([block for block, _ in found["one"]]).tolist() == [expected // blocks] * blocks


@pytest.mark.parametrize("seed", range(5))
def test_a_last_cycle_is_taken_by_the_benchmarks_the_time_left_holds(seed):
    """Pairs of 1, 2 and 3 s, 2 blocks: a cycle of all three takes 12 s. With 30 s, two whole cycles leave 6 s,
    which hold a last cycle of some (2, 4 or 6 s each), not of all: each ends on a whole cycle, by the deadline."""
    cost, clock = {"one": 1.0, "two": 2.0, "three": 3.0}, [0.0]

    def next_pair(name):
        clock[0] += cost[name]
        return 0, 0.0  # the block: measure leaves blocks to next_pair

    found = ab.measure(next_pair, list(cost), lambda: 30 - clock[0], np.random.default_rng(seed), 2, cycle=2)
    assert clock[0] == 30
    assert {len(pairs) for pairs in found.values()} == {4, 6}


def test_measuring_never_stops_on_what_the_pairs_show():
    """Quiet or noisy, changed or not: every benchmark takes pairs until the time is up."""
    noise = {"quiet": (1.0, 0.001), "noisy": (1.0, 0.2), "huge": (3.0, 0.001)}
    rng, calls = np.random.default_rng(6), []

    def next_pair(name):
        calls.append(name)
        ratio, spread = noise[name]
        return calls.count(name) % 4, paired_log_ratios(rng, 1, ratio, spread)[0]

    found = ab.measure(next_pair, list(noise), lambda: 300 - len(calls), np.random.default_rng(7), 8)
    assert len(found["quiet"]) == len(found["noisy"]) == len(found["huge"]) == 100
    rounds = [calls[i:i + 3] for i in range(0, 30, 3)]
    assert all(sorted(r) == sorted(noise) for r in rounds) and len({tuple(r) for r in rounds}) > 1


def narrower_than(found: tuple[float, float, float], threshold: float) -> bool:
    return found[2] / found[1] <= 1 + threshold


def test_stopping_once_the_interval_is_narrow_would_break_its_promise():
    """Why measure has no such rule: in simulation it held about 91% of the time, not 95%."""
    rng = np.random.default_rng(10)
    held = {"fixed": [], "narrow": []}
    for _ in range(1500):
        pairs = []
        stopped = None
        for i in range(60):
            pairs.append((i % 6, 0.05 * rng.standard_t(3)))
            if stopped is None and i >= 11 and i % 6 == 5 and narrower_than(ab.interval(pairs), 0.05):
                stopped = list(pairs)
        for rule, kept in (("fixed", pairs), ("narrow", stopped or pairs)):
            low, high = ab.interval(kept)[1:]
            held[rule].append(low <= 1 <= high)
    assert np.mean(held["fixed"]) >= 0.935 and np.mean(held["narrow"]) < 0.93, {k: np.mean(v) for k, v in held.items()}


# --- a tiny fake project: the real model and NumPy backend, one workload of 3 epochs ---------------

TINY_WORKLOADS = '''
from dataclasses import dataclass, field
from backprop_bench.model import preset


@dataclass
class Workload:
    name: str
    spec: object = field(default_factory=lambda: preset("seed-affine").spec.with_(epochs=3))
    data: object = field(default_factory=lambda: preset("seed-affine").data)


def workloads(sweep):
    return [Workload("tiny")]
'''


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def commit_all(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A git checkout with the real model and backends, NumPy only, and one tiny workload; temp folders watched."""
    repo = tmp_path / "project"
    for folder in ("backends", "backprop_bench"):
        shutil.copytree(ROOT / folder, repo / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    with open(repo / "backends" / "__init__.py", "a") as init:
        init.write('\nBACKENDS = {"numpy": BACKENDS["numpy"]}  # the fake: no torch or jax to import\n')
    (repo / "backprop_bench" / "workloads.py").write_text(TINY_WORKLOADS)
    git(tmp_path, "init", "-q", str(repo))
    commit_all(repo, "tiny")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    return repo


def state(repo):
    """What ab must never change: the worktrees, the branches, the status, the index."""
    return (git(repo, "worktree", "list"), git(repo, "branch", "-a", "-v"), git(repo, "status", "--porcelain"),
            (repo / ".git" / "index").read_bytes())


def assert_clean(repo, before):
    assert state(repo) == before
    assert not list((repo.parent / "temp").glob("backprop-bench-ab-*")), "a temporary worktree was left behind"


def run_fake(repo, baseline="HEAD", **options):
    options.setdefault("budget", 3.0)
    return ab.compare_sides(baseline, here=repo, stream=options.pop("stream", sys.stderr), **options)


def test_ab_times_both_sides_of_the_tiny_project_and_cleans_up(fake):
    (fake / "backends" / "numpy_backend.py").write_text((fake / "backends" / "numpy_backend.py").read_text() + "\n")
    before = state(fake)
    record = run_fake(fake)
    assert_clean(fake, before)
    assert record["baseline"]["commit"] == git(fake, "rev-parse", "HEAD")
    assert record["candidate"]["commit"] == "working tree"
    assert record["baseline"]["versions"]["numpy"] == record["candidate"]["versions"]["numpy"]
    assert record["baseline"]["processes"] == record["candidate"]["processes"] == ab.PROCESSES
    [row] = record["benchmarks"]
    assert row["name"] == TINY and row["verdict"] in records.VERDICTS
    assert row["pairs"] >= ab.PAIRS_PER_BLOCK * ab.PROCESSES
    assert row["blocks"] == ab.PROCESSES and sorted(set(row["pair_blocks"])) == list(range(ab.PROCESSES))
    assert len(row["baseline_s"]) == len(row["candidate_s"]) >= row["pairs"]
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"]


def started(kind, fake, stack):
    """Both workers of a block on the fake checkout: started on their own, or forked from one interpreter."""
    sides = [ab.Side(role, "working tree", "working tree", sys.executable, fake) for role in ("baseline", "candidate")]
    return ab.start_block(stack, sides, "cpu", fork=kind == "forked")


def mapped_at(pid: int, name: str) -> list[str]:
    """Where each of a process's mappings of files whose path contains `name` starts."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return [line.split("-")[0] for line in lines if line.split()[-1:] and name in line.split()[-1]]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads memory maps from /proc")
def test_a_blocks_two_workers_share_one_memory_layout_and_blocks_do_not(fake):
    """Forked from one interpreter, the two workers' libraries loaded after the fork (NumPy's) land at the same
    addresses; another block, and workers started on their own, draw other addresses (where the kernel randomizes)."""
    with ExitStack() as stack:
        blocks = [started("forked", fake, stack) for _ in range(2)]
        alone = started("exec", fake, stack)
        for worker in (*blocks[0], *blocks[1], *alone):
            worker.ready()
        assert all(isinstance(worker, ab.ForkedWorker) for block in blocks for worker in block)
        numpy_at = [[mapped_at(worker.pid, "_multiarray_umath") for worker in block] for block in (*blocks, alone)]
        assert numpy_at[0][0] and numpy_at[0][0] == numpy_at[0][1] and numpy_at[1][0] == numpy_at[1][1]
        if Path("/proc/sys/kernel/randomize_va_space").read_text().strip() != "0":
            assert numpy_at[0][0] != numpy_at[1][0]
            assert numpy_at[2][0] != numpy_at[2][1]


def test_which_side_is_forked_first_is_drawn_for_each_block(fake):
    """An order effect, if forking first had one, must vary between blocks, where the interval sees it."""
    with ExitStack() as stack:
        blocks = [started("forked", fake, stack) for _ in range(10)]
        baseline_first = [baseline.pid < candidate.pid for baseline, candidate in blocks]  # pids count up
    assert any(baseline_first) and not all(baseline_first)  # each a 1 in 1024 chance by luck


def test_a_blocks_workers_are_forked_only_where_both_sides_run_one_interpreter(tmp_path):
    def sides(baseline_python, candidate_python):
        return [ab.Side("baseline", "x", "x", baseline_python, tmp_path), ab.Side("candidate", "x", "x",
                                                                                    candidate_python, tmp_path)]
    assert ab.forks_blocks(sides(sys.executable, sys.executable))
    assert not ab.forks_blocks(sides(sys.executable, "/opt/venv-new/bin/python"))


def test_ab_starts_workers_on_their_own_where_it_cannot_fork_them(fake, monkeypatch):
    assert run_fake(fake)["forked_blocks"]
    monkeypatch.setattr(ab, "forks_blocks", lambda sides: False)
    record = run_fake(fake)
    assert not record["forked_blocks"]
    assert record["benchmarks"][0]["blocks"] == ab.PROCESSES


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("kind", ["exec", "forked"])
def test_a_worker_is_stopped_between_its_turns(fake, kind):
    """Only the side being timed runs: an idle worker's spinning thread pools would take its CPUs."""
    with ExitStack() as stack:
        worker, other = started(kind, fake, stack)
        other.ready()
        worker.ready()
        # a stop takes effect a moment after the signal
        assert worker.benchmarks == [TINY] and state_within(worker.pid, "T") and state_within(other.pid, "T")
        assert worker.ask(op="load", name=TINY)["warm_s"] > 0 and state_within(worker.pid, "T")
        assert len(worker.ask(op="time", name=TINY, n=3)["s"]) == 3 and state_within(worker.pid, "T")
    assert ended(worker.pid) and ended(other.pid)


def process_state(pid: int) -> str:
    """The process's state letter (R running, T stopped, Z zombie...), X once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


def state_within(pid: int, letters: str) -> bool:
    """Whether the process comes to one of the states `letters` within 2 s."""
    for _ in range(200):
        if process_state(pid) in letters:
            return True
        time.sleep(0.01)
    return False


def ended(pid: int) -> bool:
    """Whether the process is gone or a zombie, within 2 s."""
    return state_within(pid, "ZX")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("kind", ["exec", "forked"])
def test_a_parent_killed_outright_leaves_no_worker(fake, kind):
    parent = subprocess.Popen([sys.executable, "-c", (
        "import contextlib, time; from pathlib import Path; from tests.test_ab import started; "
        f"workers = started({kind!r}, Path({str(fake)!r}), contextlib.ExitStack()); "
        "[w.ready() for w in workers]; print(*[w.pid for w in workers], flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    parent.kill()
    parent.wait()
    assert len(pids) == 2 and all(ended(pid) for pid in pids), "a worker outlived ab"


def test_the_record_is_saved_numbered_and_never_overwritten(fake, tmp_path):
    record = run_fake(fake)
    first = ab.save_record(record, tmp_path / "results")
    second = ab.save_record(record, tmp_path / "results")
    assert [first.name, second.name] == ["0001_HEAD-vs-working-tree.json", "0002_HEAD-vs-working-tree.json"]
    saved = json.loads(first.read_text())
    assert saved["backprop_bench_ab"] == records.AB_SCHEMA and saved["benchmarks"][0]["name"] == TINY
    read = records.load_comparisons(tmp_path / "results")  # what the page reads
    assert list(read["benchmark"]) == [TINY, TINY] and set(read["verdict"]) <= set(records.VERDICTS)
    assert sorted(p.name for p in (tmp_path / "results" / "ab").glob("*.json")) == [first.name, second.name]


def test_a_revision_against_a_revision(fake):
    (fake / "backprop_bench" / "workloads.py").write_text(TINY_WORKLOADS.replace('"tiny"', '"tiny"), Workload("tiny2"'))
    commit_all(fake, "a second workload")
    before = state(fake)
    lines = []
    record = run_fake(fake, "HEAD~1", candidate="HEAD", stream=Collect(lines))
    assert_clean(fake, before)
    assert [row["name"] for row in record["benchmarks"]] == [TINY]
    assert record["candidate"]["commit"] == git(fake, "rev-parse", "HEAD")
    assert any("not on the baseline (HEAD~1), left out: tiny2[" in line for line in lines)
    assert any(line.startswith("workers started and loaded in ") for line in lines)  # where the budget went


class Collect:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.append(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def test_a_baseline_from_before_the_backends_moved_into_the_package(fake):
    """A commit with a top-level `backends` package and benchmarks/workloads.py is still compared."""
    (fake / "backprop_bench" / "backends").unlink()
    (fake / "benchmarks").mkdir()
    (fake / "benchmarks" / "__init__.py").write_text("")
    (fake / "backprop_bench" / "workloads.py").rename(fake / "benchmarks" / "workloads.py")
    for module in (fake / "backends").glob("*.py"):
        module.write_text(module.read_text().replace("backprop_bench.backends", "backends"))
    commit_all(fake, "the layout before backends installed as backprop_bench.backends")
    before = state(fake)
    record = run_fake(fake, "HEAD", candidate="HEAD~1")
    assert_clean(fake, before)
    assert [row["name"] for row in record["benchmarks"]] == [TINY]
    assert record["baseline"]["versions"]["numpy"] == record["candidate"]["versions"]["numpy"]


def test_an_unknown_revision_is_one_line(fake):
    before = state(fake)
    with pytest.raises(ab.AbError, match="unknown revision 'no-such-branch'"):
        run_fake(fake, "no-such-branch")
    assert_clean(fake, before)


def test_a_side_whose_code_fails_to_import_is_named(fake):
    init = fake / "backends" / "__init__.py"
    init.write_text(init.read_text() + "import no_such_framework\n")
    commit_all(fake, "broken")
    before = state(fake)
    with pytest.raises(ab.AbError, match=r"the baseline \(HEAD, .*\) failed: .*No module named 'no_such_framework'"):
        run_fake(fake, "HEAD", candidate="HEAD~1")
    assert_clean(fake, before)


def test_a_revision_older_than_the_suite_is_refused(fake):
    (fake / "backprop_bench" / "workloads.py").unlink()
    commit_all(fake, "before the suite")
    before = state(fake)
    with pytest.raises(ab.AbError, match=r"the baseline \(HEAD\) predates the suite's workloads"):
        run_fake(fake)
    assert_clean(fake, before)


def test_a_benchmark_that_fails_to_train_is_named(fake):
    numpy_backend = fake / "backends" / "numpy_backend.py"
    code = numpy_backend.read_text()
    assert "params.vector -= lr * grads.vector" in code
    numpy_backend.write_text(code.replace("params.vector -= lr * grads.vector",
                                          "params.vector -= 1e300 * grads.vector"))
    before = state(fake)
    with pytest.raises(ab.AbError, match=r"^the candidate \(working tree\): training diverged"):
        run_fake(fake)
    assert_clean(fake, before)


def test_no_benchmark_to_compare_is_one_line(fake):
    with pytest.raises(ab.AbError, match="no benchmark to compare matches nothing-like-this"):
        run_fake(fake, only=["nothing-like-this"])


def test_an_interpreter_that_cannot_start_the_workers_is_one_line(fake):
    before = state(fake)
    with pytest.raises(ab.AbError, match=r"^the workers \(/bin/false\) could not start: exit status 1$"):
        run_fake(fake, baseline_python="/bin/false", candidate_python="/bin/false")
    assert_clean(fake, before)


def test_another_interpreter_that_is_not_there(fake):
    with pytest.raises(ab.AbError, match="no Python interpreter at /no/python"):
        run_fake(fake, baseline_python="/no/python")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_ends_the_workers_and_removes_the_worktree(fake, tmp_path, sig):
    before = state(fake)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "temp")}
    # -P: the fake's own backprop_bench folder must not hide the command being tested
    command = popen_as_from_a_terminal([sys.executable, "-P", "-m", "backprop_bench.cli", "ab", "HEAD",
                                        "--budget", "60", "--threshold", "0", "--results", str(tmp_path / "results")],
                                       cwd=fake, env=env, stderr=subprocess.PIPE, text=True)
    while len(git(fake, "worktree", "list").splitlines()) < 2 and command.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # into the timing
    command.send_signal(sig)
    _, err = command.communicate(timeout=30)
    assert command.returncode == 130, err
    assert "Traceback" not in err  # progress lines, then one line
    assert err.strip().splitlines()[-1] == (
        "backprop-bench: ab interrupted; workers ended, temporary worktrees removed, nothing saved")
    assert_clean(fake, before)
    assert not list((tmp_path / "results").rglob("*.json")), "an interrupted comparison saved a record"


# --- check's drift line: how far the machine moved between two saved runs --------------------------

@pytest.mark.parametrize("calibration_now, expected", [
    (0.52, "machine drift: the matmul calibration took 1.04x the baseline's time\n"),
    (0.80, "machine drift: the matmul calibration took 1.60x the baseline's time, more than the threshold: "),
    (None, "machine drift: unknown (a run has no matmul calibration)\n"),
])
def test_check_says_how_far_the_machine_moved(tmp_path, capsys, calibration_now, expected):
    from backprop_bench.cli import main
    from tests.runs import BENCHMARKS, draws, write_run

    results = tmp_path / "results"
    timings = {name: draws(i, 1e-3) for i, name in enumerate(BENCHMARKS)}
    write_run(results, 1, timings, calibration={"numpy": 0.5, "torch": 0.7})  # the fastest decides
    write_run(results, 2, timings, when="2026-11-25T11:00:00",
              calibration=calibration_now and {"numpy": calibration_now, "torch": 0.7 * calibration_now / 0.5})
    # The trainings kept their times while the matmul took 1.6x: against it, they would be 0.62x, an improvement
    # that the saved runs cannot tell from the machine's move: undecided (3).
    expected_status = 3 if calibration_now == 0.80 else 0
    assert main(["check", "--baseline", "1", "--results", str(results)]) == expected_status
    out = capsys.readouterr().out
    assert expected in out
    assert ("backprop-bench ab abc" in out) == (calibration_now == 0.80)


def test_a_name_that_matches_nothing_ends_before_the_other_workers_start(fake, monkeypatch):
    blocks = []
    real_start = ab.start_block

    def counted(stack, sides, device, fork=None):
        blocks.append([side.role for side in sides])
        return real_start(stack, sides, device, fork)

    monkeypatch.setattr(ab, "start_block", counted)
    with pytest.raises(ab.AbError, match="no benchmark to compare matches numpyy"):
        run_fake(fake, only=["numpyy"])
    assert blocks == [["baseline", "candidate"]]
