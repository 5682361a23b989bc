"""`backprop-bench bisect GOOD BAD --only NAME`: the first commit between GOOD and BAD where a benchmark got slower.

(Not named bisect.py: a script run from this folder, ab_worker.py, would import it as the standard library's bisect.)

Every step is an `ab` comparison (its workers, blocks, interval and temporary worktrees;
nothing else times a training) of GOOD against a commit between them, on the one
benchmark. A commit is bad when `ab` calls it a regression against GOOD, good when its
interval rules out a slowdown past the threshold (its upper end under 1 + threshold), and
otherwise undecided: it is then measured again, with fresh processes whose blocks join
the first ones, up to MEASUREMENTS times, rather than guessed. A commit where the
benchmark is missing or its side fails to start is skipped, as `git bisect skip` does;
so is one still undecided after every measurement. The commits are those of GOOD..BAD
along first parents, so a merged branch counts as its merge commit.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from backprop_bench import ab
from backprop_bench.ab import AbError
from backprop_bench.formatting import seconds_text
from backprop_bench.store import records

MEASUREMENTS = 3          # comparisons of one commit at most, each adding its blocks to the last
SECONDS_PER_STEP = 20.0   # the default budget of one comparison, start-up included


class BisectError(AbError):
    """A bisection that cannot be made; the message says why."""


def commits_between(repo: Path, good: str, bad: str) -> list[tuple[str, str]]:
    """(sha, subject) of every commit after GOOD up to BAD along first parents, oldest first."""
    good_sha, bad_sha = ab.resolve_commit(repo, good), ab.resolve_commit(repo, bad)
    if good_sha == bad_sha:
        raise BisectError(f"GOOD ({good}) and BAD ({bad}) are the same commit; nothing lies between them")
    ancestor = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", good_sha, bad_sha],
                              capture_output=True)
    if ancestor.returncode != 0:
        raise BisectError(f"GOOD ({good}) is not an ancestor of BAD ({bad}); give an older GOOD on BAD's history")
    log = ab._git(repo, "log", "--first-parent", "--reverse", "--format=%H %s", f"{good_sha}..{bad_sha}")
    return [tuple(line.split(" ", 1)) if " " in line else (line, "") for line in log.splitlines()]


class Bisection:
    """The state of one bisection: what each commit measured, and which commits are still in question."""

    def __init__(self, repo: Path, good: str, commits: list[tuple[str, str]], name: str, threshold: float,
                 budget: float, processes: int, out):
        self.repo, self.good, self.commits, self.name = repo, good, commits, name
        self.threshold, self.budget, self.processes, self.out = threshold, budget, processes, out
        self.steps: list[dict] = []
        self.state: dict[int, str] = {}  # commit index: good, bad or skip

    def compare(self, baseline: str, candidate: str) -> dict:
        """One `ab` comparison on the benchmark: its row (progress lines kept out of the bisection's output)."""
        found = ab.compare_sides(baseline, candidate, threshold=self.threshold, only=[self.name],
                                 budget=self.budget, processes=self.processes, here=self.repo, stream=io.StringIO())
        rows = found["benchmarks"]
        if len(rows) != 1:
            names = ", ".join(row["name"] for row in rows)
            raise BisectError(f"--only {self.name} matches {len(rows)} benchmarks ({names}); bisect follows one: "
                              "give its full name")
        return rows[0]

    def classify(self, pairs: list[ab.Pair]) -> tuple[str, tuple[float, float, float], str]:
        """(good, bad or undecided; the interval; ab's verdict) of a commit against GOOD."""
        found = ab.interval(pairs)
        verdict = ab.verdict(*found, self.threshold)
        if verdict == "regression":
            return "bad", found, verdict
        return ("good" if found[2] < 1 + self.threshold else "undecided"), found, verdict

    def measure(self, index: int) -> str:
        """Compare commit `index` with GOOD until decided (or MEASUREMENTS are spent); print and keep the step."""
        start, pairs = time.monotonic(), []
        for measurements in range(1, MEASUREMENTS + 1):  # noqa: B007 (read after the loop: how many were taken)
            try:
                row = self.compare(self.good, self.commits[index][0])
            except BisectError:
                raise
            except AbError as err:  # the benchmark missing there, or its side failing to start: git bisect skip
                return self._record(index, "skip", {}, f"skipped: {err}", start)
            offset = max((block for block, _ in pairs), default=-1) + 1
            pairs += [(block + offset, log_ratio) for block, log_ratio in zip(row["pair_blocks"], row["log_ratios"])]
            if self.classify(pairs)[0] != "undecided":
                break
        return self._measured(index, pairs, measurements, start)

    def start(self, pairs: list[ab.Pair], good: str, bad: str, since: float) -> None:
        """Take BAD's comparison with GOOD, begun at `since` (time.monotonic), as the first step; BisectError
        unless BAD is bad."""
        state, (ratio, low, high), verdict = self.classify(pairs)
        if state != "bad":
            raise BisectError(f"BAD ({bad}) is not slower than GOOD ({good}) past {self.threshold:.0%} on "
                              f"{self.name}: {ratio:.3f} [{low:.3f}, {high:.3f}], {verdict}; nothing to bisect")
        self._measured(len(self.commits) - 1, pairs, 1, since)

    def _measured(self, index: int, pairs: list[ab.Pair], measurements: int, start: float) -> str:
        state, (ratio, low, high), verdict = self.classify(pairs)
        text = f"{ratio:.3f} [{low:.3f}, {high:.3f}] after {len(pairs)} pairs: {state} ({verdict})"
        if state == "undecided":
            state, text = "skip", text + f"; still undecided after {measurements} measurements, skipped"
        return self._record(index, state, {"ratio": ratio, "ci_low": low, "ci_high": high, "pairs": len(pairs),
                                           "verdict": verdict, "measurements": measurements}, text, start)

    def _record(self, index: int, state: str, measured: dict, text: str, start: float) -> str:
        sha, subject = self.commits[index]
        self.state[index] = state
        self.steps.append({"commit": sha, "subject": subject, "state": state, "note": text,
                           "seconds": time.monotonic() - start, **measured})
        print(f"[{len(self.steps)}] {sha[:9]} {subject[:60]}: {text}; "
              f"{len(self.in_question())} commit(s) left in question", file=self.out, flush=True)
        return state

    def in_question(self) -> list[int]:
        """Indices between the last good commit and the first bad one that could still be the first bad."""
        last_good = max((i for i, s in self.state.items() if s == "good"), default=-1)
        first_bad = min((i for i, s in self.state.items() if s == "bad"), default=len(self.commits) - 1)
        return [i for i in range(last_good + 1, first_bad + 1)]

    def next_index(self) -> int | None:
        """The untested commit nearest the middle of those in question (none when only the first bad is left)."""
        left = self.in_question()
        untested = [i for i in left[:-1] if i not in self.state]
        if not untested:
            return None
        middle = (left[0] + left[-1] - 1) / 2
        return min(untested, key=lambda i: (abs(i - middle), i))


def search(good: str, bad: str, name: str, *, threshold: float = 0.05, budget: float | None = None,
           processes: int = ab.PROCESSES, here: Path | None = None, out=sys.stdout) -> dict:
    """Bisect GOOD..BAD on the benchmark `name`; the record of it (steps, first bad commit, the ratio across it)."""
    repo = ab.checkout_root(here or Path.cwd())
    ab.check_processes(processes)
    commits = commits_between(repo, good, bad)
    bisection = Bisection(repo, ab.resolve_commit(repo, good), commits, name, threshold,
                          budget if budget is not None else SECONDS_PER_STEP, processes, out)
    print(f"bisecting {len(commits)} commits after {good} up to {bad} on {name}, threshold {threshold:.0%}; "
          f"each step compares a commit with {good}", file=out, flush=True)
    since = time.monotonic()
    try:
        first = bisection.compare(bisection.good, commits[-1][0])
    except BisectError:
        raise
    except AbError as err:
        raise BisectError(f"cannot compare GOOD ({good}) with BAD ({bad}): {err}") from None
    bisection.start(list(zip(first["pair_blocks"], first["log_ratios"])), good, bad, since)
    while (index := bisection.next_index()) is not None:
        bisection.measure(index)
    return finish(bisection, good, bad)


def finish(bisection: Bisection, good: str, bad: str) -> dict:
    """The record: the first bad commit (or the skipped commits it may be among) and the ratio across it."""
    left = bisection.in_question()
    first_bad = bisection.commits[left[-1]]
    last_good_index = left[0] - 1
    last_good = bisection.good if last_good_index < 0 else bisection.commits[last_good_index][0]
    across = bisection.compare(last_good, first_bad[0])
    return {"backprop_bench_bisect": records.BISECT_SCHEMA, "datetime": datetime.now(timezone.utc).isoformat(),
            "machine_info": ab.machine_info(), "good": good, "bad": bad, "benchmark": bisection.name,
            "threshold": bisection.threshold, "commits": len(bisection.commits), "steps": bisection.steps,
            "first_bad": {"commit": first_bad[0], "subject": first_bad[1]},
            "candidates": [bisection.commits[i][0] for i in left],
            "across": {"from": last_good, "to": first_bad[0], **{key: across[key] for key in (
                "ratio", "ci_low", "ci_high", "pairs", "verdict", "baseline_median_s", "candidate_median_s")}}}


def summary(record: dict) -> str:
    """How the bisection ended, in a few lines."""
    first, across = record["first_bad"], record["across"]
    if len(record["candidates"]) > 1:
        head = (f"the first bad commit is one of {len(record['candidates'])} (the others were skipped): "
                + ", ".join(sha[:9] for sha in record["candidates"]))
    else:
        head = f"first bad commit: {first['commit']} {first['subject']}"
    return (f"{head}\nacross it ({across['from'][:9]} -> {across['to'][:9]}): {across['ratio']:.3f} "
            f"[{across['ci_low']:.3f}, {across['ci_high']:.3f}], {across['verdict']} "
            f"({seconds_text(across['baseline_median_s'])} -> {seconds_text(across['candidate_median_s'])})\n")


def save(record: dict, results: Path) -> Path:
    """Save as <results>/bisect/NNNN_<good>-<bad>.json."""
    return records.save(record, results / records.BISECT, f"{record['good']}-{record['bad']}")


