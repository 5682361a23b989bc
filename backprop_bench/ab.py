"""`backprop-bench ab`: which benchmarks got slower or faster from one code version or environment to another.

Runs made at different times measure the machine's state as much as the code, so the
two sides are measured interleaved: worker processes of each side
(backprop_bench/ab_worker.py), in blocks of a baseline and a candidate worker forked from
one interpreter (BlockParent), each benchmark loaded and warmed up in all of them, then
turns of single trainings alternating in a random order for each pair, so that both
sides see the same machine (Abedi and Brecht, ICPE 2017; Bulej et al., duet
benchmarking, 2020).

The statistics are pure functions of the paired log-ratios log(candidate / baseline),
each tagged with the block (a baseline process and a candidate process) that timed it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from backprop_bench import ab_worker, store
from backprop_bench.errors import UserError
from backprop_bench.formatting import seconds_text
from backprop_bench.store import records

CONFIDENCE = 0.95
PAIRS_PER_BLOCK = 1       # every block times every benchmark at least this often, budget or not (2 took the
                          # whole default suite, whose start-up spends its budget, to 310 s here)
MAX_PAIRS = 2000
TURN_S = 0.1              # a side's turn: enough trainings of a fast benchmark to last this long
MAX_TURN = 100
SECONDS_PER_BENCHMARK = 4.5  # the default budget, per benchmark compared, start-up included: the presets (12) in
                          # under a minute, about 3 pairs a block. The interval's width comes from the spread between
                          # blocks: in 17 saved comparisons of 37 pairs, the first 50-60% of each benchmark's pairs
                          # gave nearly the same standard error (benchmarks/pair_budget.py; docs/regressions.md)
PROCESSES = 6             # worker processes per side: blocks (see interval)
HUBER_K = 1.345           # pairs past this many (scaled) median absolute deviations count as that far: the usual
                          # choice, 95% as efficient as the mean on normal pairs
BURST = 0.2               # a pair this far (log-ratio, about 20%) from its benchmark's estimate: hit by a burst of load
BUSY_SHARE = 0.05         # more of a comparison's pairs than this hit: the machine was busy (see busy_note)
WORKER_BYTES = 410e6      # one worker's memory with every framework loaded, measured here (peak RSS)
TREE_PREFIX = "backprop-bench-ab-"  # a temporary worktree's folder: TREE_PREFIX<pid of its ab>-<random>

Pair = tuple[int, float]  # (block, log(candidate / baseline))


class AbError(UserError):
    """A comparison that cannot be made; the message says why and what to do."""


# --- statistics: pure functions of paired log-ratios in blocks ------------------------------------

def pair_log_ratio(baseline: list[float], candidate: list[float]) -> float:
    """One pair's log(candidate / baseline), from the two turns' trainings (seconds each): their fastest.

    A turn's trainings run the same code from the same fresh parameters, so they differ
    only by what the machine did to them, and load only ever adds time. Here it comes in
    bursts that cover part of a turn, and hit the two processes of a pair apart: with
    identical code (benchmarks/turn_spread.py), NumPy seed-affine's pairs spread 3.0%
    across two processes read by the turns' medians, 1.0% read by their fastest
    trainings (1.5% and 0.8% for two turns of one process). The fastest training of a
    turn is the one a burst spared, where the median moves once a burst covers half the
    turn. In the gate checks (docs/regressions.md), reading the turns' fastest caught a
    planted 4-7% slowdown alone at a 3% threshold in 62 of the 80 comparisons made since
    where the medians of the same turns caught 47 (172 and 139 of all 200 saved), with
    A/A intervals outside 1 in 39 of 960 (4.1%; the medians 27) and 112 of 2400 of all
    (4.7%). What it cannot see: a change that slows only some trainings of a turn (the
    median missed those in under half of them too); a turn of one training (torch eager
    on the presets) is that training either way.
    """
    return math.log(min(candidate) / min(baseline))


def blocks_of(pairs: list[Pair]) -> list[np.ndarray]:
    """Each block's log-ratios, in block order."""
    blocks: dict[int, list[float]] = {}
    for block, log_ratio in pairs:
        blocks.setdefault(block, []).append(log_ratio)
    return [np.array(blocks[block]) for block in sorted(blocks)]


def block_medians(pairs: list[Pair]) -> np.ndarray:
    """Each block's median log-ratio, in block order: how far apart the processes ran (noise's between_blocks)."""
    return np.array([np.median(log_ratios) for log_ratios in blocks_of(pairs)])


def huber(log_ratios: np.ndarray) -> float:
    """Huber's M-estimate of location: the mean of the pairs, with those far out (past HUBER_K scaled median
    absolute deviations from the middle) pulled in to that distance, found by reweighting."""
    center = float(np.median(log_ratios))
    scale = 1.4826 * float(np.median(np.abs(log_ratios - center)))
    if scale == 0:
        return center
    for _ in range(100):
        weights = np.minimum(1.0, HUBER_K * scale / np.maximum(np.abs(log_ratios - center), 1e-300))
        moved = float(np.sum(weights * log_ratios) / np.sum(weights))
        if abs(moved - center) <= 1e-9 * scale:
            return moved
        center = moved
    return center


def estimate(pairs: list[Pair]) -> tuple[float, float, int]:
    """(log-ratio, its standard error, blocks): Huber's estimate over all pairs, its error by leaving out one
    block at a time (the delete-a-group jackknife; inf with fewer than 2 blocks)."""
    blocks, log_ratios = np.array([b for b, _ in pairs], dtype=int), np.array([x for _, x in pairs])
    if len(pairs) == 0:
        return math.nan, math.inf, 0
    groups = np.unique(blocks)
    center = huber(log_ratios)
    if len(groups) < 2:
        return center, math.inf, len(groups)
    left_out = np.array([huber(log_ratios[blocks != group]) for group in groups])
    spread = float(np.sum((left_out - left_out.mean()) ** 2))
    return center, math.sqrt((len(groups) - 1) / len(groups) * spread), len(groups)


def interval(pairs: list[Pair]) -> tuple[float, float, float]:
    """The ratio and its 95% confidence interval: a robust estimate over the pairs, a t interval over the blocks.

    The unit of replication is the block, not the pair. A process runs the same code
    several percent faster or slower than another (memory layout, where its threads
    land): an A/A comparison here found jax-jit-step on seed-linear 1.075x with one
    process a side, and pairs pooled over four processes a side still gave "95%"
    intervals that held on only 42 of 48 benchmarks (0.969 [0.938, 0.984] for identical
    code). Pairs from the same processes share their speed, so they are not independent.
    Each block is a baseline process and a candidate process of their own (forked from
    one interpreter, so that the memory layout they share drops out of their ratio:
    BlockParent), so the standard error comes from leaving out one block at a time (the
    delete-a-group jackknife), and a t quantile with blocks - 1 degrees of freedom:
    between-process spread widens the interval, as a two-level (pairs within processes)
    design needs.

    The estimate itself is Huber's over all pairs, not the mean of the blocks' medians
    (`ab` until commit 23e9951). Pairs here are heavy-tailed: in 40 A/A comparisons of
    the presets (8364 pairs), the middle spread was 2% but 5% of pairs stood more than
    20% off, from bursts of load; two such pairs in a block of three moved its median,
    and one block 25-32% off the other five missed planted slowdowns. Huber's estimate
    pulls in any far pair, wherever it falls. Re-reading those saved records, it caught
    36 of 40 planted 4-7% slowdowns at a 3% threshold where block medians caught 28,
    with 20 of 480 A/A intervals excluding 1 (23 before) and no false alarm; measured
    afresh, 18 of 20 where the medians of the same pairs caught 20, and 12 of 240 A/A
    intervals outside 1 (docs/regressions.md, benchmarks/gate_records.py). Its known
    limit: where processes differ and pairs within one barely do, Huber's scale is set
    by the processes' spread, far blocks are pulled in as if burst-hit, and the
    jackknife sees less spread than there is (92% of "95%" intervals held in
    tests/test_ab.py's simulation). A t interval over each block's own Huber estimate
    holds there, but a block most of whose pairs a burst threw off is then off itself:
    tried at commit 3dfe157, on a new gate check it caught 10 planted slowdowns of 20
    where this interval caught 16 from the same pairs, with A/A intervals outside 1 in
    13 of 240 against 10, and was reverted.
    With fewer than 2 blocks there is no interval: (0, inf).
    """
    return bounds(*estimate(pairs))


def bounds(center: float, se: float, blocks: int) -> tuple[float, float, float]:
    """The ratio and its 95% interval from an estimate's log-ratio, standard error and blocks (see interval)."""
    from scipy.stats import t

    if not math.isfinite(se):
        return math.exp(center), 0.0, math.inf
    half = t.ppf((1 + CONFIDENCE) / 2, blocks - 1) * se
    return math.exp(center), math.exp(center - half), math.exp(center + half)


def standard_error(pairs: list[Pair]) -> float:
    """The standard error of the estimated log-ratio (inf with fewer than 2 blocks)."""
    return estimate(pairs)[1]


def smallest_flagged(se: float, blocks: int, threshold: float, power: float = 0.8) -> float:
    """The smallest slowdown (as a ratio - 1) that `verdict` calls a regression with probability `power`,
    given the standard error `se` of the log-ratio over `blocks` blocks: the minimal detectable effect.

    Where the interval resolves the threshold, the estimate must pass the threshold and
    the interval clear 1; where it does not, the whole interval must lie past the
    threshold. Each `power` of the time, by a normal approximation of the estimate.
    """
    from scipy.stats import norm, t

    if not (np.isfinite(se) and blocks >= 2):
        return math.inf
    z, half, step = norm.ppf(power), t.ppf((1 + CONFIDENCE) / 2, blocks - 1) * se, math.log1p(threshold)
    needed = max(step, half) + z * se if half <= step else step + half + z * se
    return math.expm1(needed)


def resolves(low: float, high: float, threshold: float) -> bool:
    """Whether the interval is precise to the threshold: its half-width, in log-ratio, is at most log(1 + threshold)."""
    return low > 0 and high / low <= (1 + threshold) ** 2


def verdict(ratio: float, low: float, high: float, threshold: float) -> str:
    """regression, improvement; slower, faster; same or inconclusive.

    A change needs its estimate past the threshold and its whole interval on that side of
    1, and then either an interval that resolves the threshold (half-width at most the
    threshold) or one lying wholly past it: a wide interval that only just misses 1 is
    what a few unlucky pairs give (an A/A comparison here called mlp-4096x1024 0.950
    [0.864, 0.994] after 10 pairs). Requiring an interval narrower than the threshold
    itself, as `ab` did, flagged 7 of 12 planted 4-7% slowdowns at a 3% threshold in
    benchmarks/gate_check.py, where this flags 15 of 20, with no A/A false alarm at 5%
    under either (docs/regressions.md). An
    interval wholly on one side of 1 that is not such a change is still a change seen:
    `slower` or `faster`, never `same` (as asv and pyperf mark "significant but small"
    apart). `same` is an interval holding 1 and lying within the threshold on both sides
    (an equivalence test): whatever changed is smaller than the threshold.
    """
    clear = resolves(low, high, threshold)
    if low > 1 and ratio > 1 + threshold and (clear or low > 1 + threshold):
        return "regression"
    if high < 1 and ratio < 1 / (1 + threshold) and (clear or high < 1 / (1 + threshold)):
        return "improvement"
    if low > 1:
        return "slower"
    if high < 1:
        return "faster"
    return "same" if 1 / (1 + threshold) <= low and high <= 1 + threshold else "inconclusive"


def measure(next_pair: Callable[[str], Pair], names: list[str], time_left: Callable[[], float],
            rng: np.random.Generator, min_pairs: int,
            progress: Callable[[str, list, bool], None] = lambda *_: None, cycle: int = 1) -> dict[str, list[Pair]]:
    """Paired log-ratios per benchmark, in rounds, in whole cycles of `cycle` rounds, while the time left
    (`time_left()`, in seconds) holds another cycle, and until each benchmark has `min_pairs`.

    Each round takes one pair of every benchmark still measuring, in a random order
    (randomized multiple interleaved trials): a benchmark's pairs spread over the whole
    run, so that a burst of load on the machine does not fall on consecutive pairs of one
    benchmark. Nothing the pairs show ends a benchmark early, not even the interval's
    width: stopping once the interval is narrow stops when the spread happens to look
    small, and the interval then holds less often than it promises. With six blocks a
    t interval that stopped so held 90.8% of the time in simulation against 95.5% for a
    fixed number of pairs, and 6 of 64 A/A intervals here excluded 1, four of them
    stopped at or near the minimum of pairs.

    `cycle` is the number of blocks: a benchmark's pairs go round its blocks, so ending
    on a whole cycle gives every block as many pairs as the others, and leaving out any
    one block (see estimate) leaves out as many pairs as any other. The budget is a
    deadline: a cycle of every benchmark starts only if the last one, as long again,
    fits in the time left; where it does not, a last cycle is taken by the benchmarks it
    holds, in a random order, each counted at what its last cycle took. (Running on to
    finish a cycle took the presets up to 10 s past their budget here; ending everything
    at the last whole cycle left up to 10 s unused.)
    """
    pairs: dict[str, list[Pair]] = {name: [] for name in names}
    active, last = list(names), False
    while active:
        spent = dict.fromkeys(active, 0.0)  # what each benchmark's cycle took, in seconds
        for _ in range(cycle):
            for name in rng.permutation(active):
                before = time_left()
                pairs[name].append(next_pair(name))
                spent[name] += before - time_left()
                progress(name, pairs[name], False)
        another = set()
        if not last:
            left = time_left()
            if sum(spent.values()) <= left:
                another = set(active)
            else:
                last = True
                for name in rng.permutation(active):
                    if spent[name] <= left:
                        another.add(name)
                        left -= spent[name]
        still = [name for name in active
                 if (name in another and len(pairs[name]) < MAX_PAIRS) or len(pairs[name]) < min_pairs]
        for name in active:
            if name not in still:
                progress(name, pairs[name], True)
        active = still
    return pairs


# --- sides: revisions in temporary worktrees, interpreters -----------------------------------------

@dataclass
class Side:
    role: str     # baseline or candidate
    label: str    # as the user named it: HEAD~1, working tree
    commit: str   # the commit's sha, or "working tree"
    python: str
    root: Path

    def describe(self) -> dict:
        return {"label": self.label, "commit": self.commit, "python": self.python}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode:
        raise AbError(f"git {' '.join(args)} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout.strip()


def checkout_root(here: Path) -> Path:
    """The backprop-bench git checkout holding `here`."""
    done = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    root = Path(done.stdout.strip()) if done.returncode == 0 else None
    if root is None or not (root / "backends" / "__init__.py").is_file():
        raise AbError(f"{here} is not inside a git checkout of backprop-bench; run ab from one")
    return root


def resolve_commit(repo: Path, revision: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode:
        raise AbError(f"unknown revision {revision!r}; give a branch, tag, commit or HEAD~N of {repo}")
    return done.stdout.strip()


def interpreter(path: str | None) -> str:
    if path is None:
        return sys.executable
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AbError(f"no Python interpreter at {path}; give e.g. .venv-new/bin/python")
    return str(Path(path).absolute())


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Ctrl-C waits until the block is done: a clean-up must not be cut short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def revision_tree(repo: Path, commit: str) -> Iterator[Path]:
    """`commit` checked out in a temporary worktree outside the user's tree; removed afterwards, whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=f"{TREE_PREFIX}{os.getpid()}-"))
    tree = folder / "tree"
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield tree
    finally:
        with uninterruptible():
            _remove_tree(repo, tree)


def _remove_tree(repo: Path, tree: Path) -> None:
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)
    shutil.rmtree(tree.parent, ignore_errors=True)
    subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)


def prune_stale_trees(repo: Path) -> list[Path]:
    """Remove the temporary worktrees of `ab` runs that died without cleaning up (SIGKILL, a lost machine).

    A tree is stale when the process named in its folder is gone; trees of an `ab` still
    running are left alone. Returns the trees removed.
    """
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list", "--porcelain"], capture_output=True, text=True)
    stale = []
    for line in listed.stdout.splitlines():
        tree = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
        match = re.fullmatch(re.escape(TREE_PREFIX) + r"(\d+)-[^/]+", tree.parent.name) if tree else None
        if match and tree.name == "tree" and not _alive(int(match[1])):
            _remove_tree(repo, tree)
            stale.append(tree)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def check_processes(processes: int) -> None:
    """Raise AbError unless `processes` workers a side fit in this machine's available memory."""
    if processes < 1:
        raise AbError(f"--processes must be at least 1, got {processes}")
    available = _available_memory()
    most = max(1, int(available // (2 * WORKER_BYTES)))
    if available and processes > most:
        raise AbError(f"--processes {processes} starts {2 * processes} workers of about {WORKER_BYTES / 1e6:.0f} MB "
                      f"each, more than this machine's {available / 1e9:.1f} GB available hold; use at most {most}")


def _available_memory() -> float:
    """Bytes of memory available to new processes (MemAvailable), 0 where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def check_device(device: str) -> None:
    """Raise AbError unless `device` can be timed here, before any worker starts."""
    if device not in ("cpu", "cuda"):
        raise AbError(f"unknown --device {device!r}; give cpu or cuda")
    if device == "cuda" and not store.this_machine()["gpu"]:
        raise AbError("--device cuda: no NVIDIA GPU here (nvidia-smi finds none); compare on the CPU with --device cpu")


def side(stack: ExitStack, repo: Path, role: str, revision: str | None, python: str | None) -> Side:
    """A side of the comparison: a revision (checked out for the duration of `stack`) or the working tree."""
    python = interpreter(python)
    if revision is None:
        return Side(role, "working tree", "working tree", python, repo)
    commit = resolve_commit(repo, revision)
    tree = stack.enter_context(revision_tree(repo, commit))
    if not any((tree / folder / "workloads.py").is_file() for folder in ("backprop_bench", "benchmarks")):
        raise AbError(f"the {role} ({revision}) predates the suite's workloads (workloads.py, commit "
                      f"0405493); ab compares revisions from there on")
    return Side(role, revision, commit, python, tree)


# --- workers --------------------------------------------------------------------------------------

def last_line(log) -> str:
    """The last line a process wrote to `log` (a file it shared with us), stripped; "" if it wrote none."""
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class WorkerProcess:
    """One side's persistent worker process, asked one JSON line at a time.

    Between requests the worker is stopped (SIGSTOP), so that only one side runs at a time:
    OpenMP and BLAS thread pools keep spinning for a while after their work, and a
    spinning idle worker took the CPUs from the timed one (torch eager on mlp-256x64 ran
    10x slower than alone on a 2-core machine).
    """

    def __init__(self, side: Side, device: str):
        self.side = side
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [side.python, ab_worker.__file__, str(side.root), device], cwd=side.root,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.pid, self.stdin, self.stdout = self.process.pid, self.process.stdin, self.process.stdout

    def ready(self) -> None:
        """Wait for the worker's first line (it imports the frameworks meanwhile), then stop it."""
        hello = self._receive()
        self._signal(signal.SIGSTOP)
        self.benchmarks, self.versions = hello["benchmarks"], hello["versions"]

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:  # it ended: the next read says why
            pass

    def _end(self) -> str:
        """Kill the worker; how it ended."""
        self.process.kill()
        self.process.wait()
        return f"exit status {self.process.returncode}"

    def _failed(self) -> AbError:
        ended = self._end()
        return AbError(f"the {self.side.role} ({self.side.label}, {self.side.python}) failed: "
                       f"{last_line(self.log) or ended}")

    def _receive(self) -> dict:
        line = self.stdout.readline()
        if not line:
            raise self._failed()
        return json.loads(line)

    def ask(self, **request) -> dict:
        self.send([request])
        return self.collect(1)[0]

    def send(self, requests: list[dict]) -> None:
        """Wake the worker and hand it `requests`, answered in order; collect() the replies."""
        self._signal(signal.SIGCONT)
        try:
            self.stdin.write("".join(json.dumps(request) + "\n" for request in requests))
            self.stdin.flush()
        except OSError:
            raise self._failed() from None

    def collect(self, count: int) -> list[dict]:
        """The next `count` replies; then the worker is stopped until the next request."""
        replies = [self._receive() for _ in range(count)]
        self._signal(signal.SIGSTOP)
        for reply in replies:
            if "error" in reply:
                raise AbError(f"the {self.side.role} ({self.side.label}): {reply['error']}")
        return replies

    def close(self) -> None:
        with uninterruptible():
            self._end()
            self.log.close()


class ForkedWorker(WorkerProcess):
    """A worker forked with its block's other worker by one `ab_worker.py --block` process (see BlockParent)."""

    def __init__(self, side: Side, parent: BlockParent, pid: int, stdin, stdout, log):
        self.side, self.parent, self.pid, self.stdin, self.stdout, self.log = side, parent, pid, stdin, stdout, log

    def _signal(self, signum: int) -> None:
        if self.parent.process.poll() is None:  # once the parent has ended, the pid may be anybody's
            super()._signal(signum)

    def _end(self) -> str:
        self._signal(signal.SIGKILL)
        for pipe in (self.stdin, self.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        return "it ended without a message"


class BlockParent:
    """The two workers of a block, forked from one interpreter that imported nothing of either side (see
    ab_worker.block): they share its memory layout, which would otherwise set them apart.

    With identical code, 8 blocks of each kind interleaved here
    (`python -m benchmarks.block_spread`, twice), the NumPy backend's seed-affine pairs
    stood 1.95% and 2.84% apart from block to block where each worker was started on its
    own, 0.59% and 0.55% where the block's two were forked so (standard errors 0.86% and
    1.07%, 0.22% and 0.20%). Elsewhere the gain varies: every preset's standard error was
    smaller forked in the first run (the median 0.57% against 0.27%), 7 of 12 in the
    second (0.55% against 0.47%; seed-linear torch eager's 0.62% then 1.33%). Which side
    is forked first is drawn for each block, so that an order effect, if any, is spread
    between blocks where the interval sees it.
    """

    def __init__(self, sides: list[Side], device: str):
        self.log = tempfile.TemporaryFile("w+")
        logs = [tempfile.TemporaryFile("w+") for _ in sides]
        children, ends = [], []
        order = [int(index) for index in np.random.default_rng().permutation(len(sides))]
        for index in order:
            side, log = sides[index], logs[index]
            (stdin_r, stdin_w), (stdout_r, stdout_w) = os.pipe(), os.pipe()
            children.append({"root": str(side.root), "fds": [stdin_r, stdout_w, log.fileno()]})
            ends.append((stdin_w, stdout_r))
        try:
            self.process = subprocess.Popen(
                [sides[0].python, ab_worker.__file__, "--block", device, json.dumps(children)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                pass_fds=[fd for child in children for fd in child["fds"]])
        finally:
            for child in children:
                os.close(child["fds"][0])
                os.close(child["fds"][1])
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            why = last_line(self.log) or f"exit status {self.process.returncode}"
            self.close()
            for fd in (fd for pair in ends for fd in pair):
                os.close(fd)
            for log in logs:
                log.close()
            raise AbError(f"the workers ({sides[0].python}) could not start: {why}")
        forked = {index: ForkedWorker(sides[index], self, pid, os.fdopen(stdin_w, "w"), os.fdopen(stdout_r),
                                      logs[index])
                  for index, pid, (stdin_w, stdout_r) in zip(order, json.loads(line), ends)}
        self.workers = tuple(forked[index] for index in range(len(sides)))

    def close(self) -> None:
        """End it, after its workers: it ends at the end of its stdin, and its workers with it (PR_SET_PDEATHSIG)."""
        with uninterruptible():
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()


def forks_blocks(sides: list[Side]) -> bool:
    """Whether a block's two workers can be forked from one interpreter: the sides run the same one (a path as the
    user gave it: two virtual environments' pythons may be one file with other packages), and os.fork exists."""
    return sides[0].python == sides[1].python and hasattr(os, "fork")


def start_block(stack: ExitStack, sides: list[Side], device: str,
                fork: bool | None = None) -> tuple[WorkerProcess, WorkerProcess]:
    """A block: a worker a side, ended with `stack`; forked from one interpreter if `fork` (default: forks_blocks)."""
    if forks_blocks(sides) if fork is None else fork:
        parent = BlockParent(sides, device)
        stack.callback(parent.close)
        workers = parent.workers
    else:
        workers = tuple(WorkerProcess(each, device) for each in sides)
    for worker in workers:
        stack.callback(worker.close)
    return workers


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) end a comparison as Ctrl-C does: workers ended, worktrees removed."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # A SIGHUP already ignored (nohup) stays ignored: the user asked the comparison to outlive the terminal.
    watched = [signal.SIGTERM] + ([signal.SIGHUP] if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, interrupt) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- one comparison -------------------------------------------------------------------------------

class Progress:
    """Where a comparison is, on stderr: rewritten in place on a terminal, a line per finished benchmark elsewhere."""

    def __init__(self, stream, total: int):
        self.stream, self.total, self.finished, self.shown = stream, total, 0, 0.0
        self.live = stream.isatty()

    def loading(self, workers: int) -> None:
        self.stream.write(f"loading, warming up and checking {self.total} benchmarks in each of {workers} workers\n")
        self.stream.flush()

    def loaded(self, took_s: float, budget_s: float) -> None:
        left = (f"pairs until {budget_s:.0f} s, the budget" if took_s < budget_s else
                f"the budget ({budget_s:.0f} s) is spent: one pair a block of each")
        self.stream.write(f"workers started and loaded in {took_s:.0f} s; {left}\n")
        self.stream.flush()

    def __call__(self, name: str, pairs: list, finished: bool) -> None:
        if finished:
            self.finished += 1
            self.stream.write(("\r\033[K" if self.live else "") + f"[{self.finished}/{self.total} done] "
                              f"{self._line(name, pairs)}\n")
        elif self.live and time.monotonic() - self.shown > 0.5:
            self.shown = time.monotonic()
            self.stream.write(f"\r\033[K[{self.finished}/{self.total} done] {self._line(name, pairs)}")
        self.stream.flush()

    @staticmethod
    def _line(name: str, pairs: list) -> str:
        ratio, low, high = interval(pairs)
        return f"{name}: {len(pairs)} pairs, ratio {ratio:.3f} [{low:.3f}, {high:.3f}]"


def load(worker: WorkerProcess, names: list[str], check: bool) -> list[float]:
    """Load, warm up (and `check`) every benchmark of `names` in `worker`; each one's last warm-up, in seconds."""
    worker.send([{"op": "load", "name": name, "check": check} for name in names])
    return [reply["warm_s"] for reply in worker.collect(len(names))]


def load_blocks(firsts: tuple[WorkerProcess, WorkerProcess], launch: Callable[[], tuple[WorkerProcess, ...]],
                names: list[str], blocks: int) -> dict[str, int]:
    """Every benchmark loaded in every worker, block by block; the trainings per turn of each benchmark.

    The first block loads first, with nothing else running: its workers' warm-ups, timed
    alone, size the turns (Pairs.turn_length), and each checks its side's results against
    NumPy's (the side's other workers run the same code). Then each block starts importing
    while the one before it loads, a worker at a time: an import is one thread, and a
    worker loading the presets another, so the two cores stay busy (the presets' 12
    workers here: ready after 24-25 s with every import before any load, 21 s so). Loads never
    overlap: the larger trainings run on every core, and all twelve workers loading at once
    took the mlp- benchmarks 306 s here, a block's two at a time 167 s, one at a time 132 s.
    """
    warm_s = [load(worker, names, check=True) for worker in firsts]
    per_turn = {name: Pairs.turn_length(max(each[i] for each in warm_s)) for i, name in enumerate(names)}
    following = launch() if blocks > 1 else ()
    for k in range(1, blocks):
        block, following = following, (launch() if k + 1 < blocks else ())
        for worker in block:
            worker.ready()
            load(worker, names, check=False)
    return per_turn


class Pairs:
    """Paired turns of the two sides in blocks, one pair at a time, each benchmark loaded in every worker.

    Block k is the k-th baseline worker and the k-th candidate worker, each a process of
    its own: a pair is timed in one block, and a benchmark's pairs go round its blocks in
    a shuffled order, so each block times it about equally often (see interval).
    """

    def __init__(self, workers: list[list[WorkerProcess]], per_turn: dict[str, int], rng: np.random.Generator):
        self.workers, self.per_turn, self.rng = workers, per_turn, rng
        self.blocks = len(workers[0])
        self.order = {name: [] for name in per_turn}  # the blocks still to visit in this benchmark's current round
        self.timings = {name: ([], []) for name in per_turn}

    @staticmethod
    def turn_length(alone_s: float) -> int:
        """Trainings per turn: as many as last TURN_S, from a warmed-up training timed alone in each side's
        first worker (its last warm-up, with no other worker running).

        Not from a warm-up that shared the CPUs: with every worker loading at once, those
        times were up to 12x too long and made every turn a single training.
        """
        return int(np.clip(TURN_S / max(alone_s, 1e-9), 1, MAX_TURN))

    def __call__(self, name: str) -> Pair:
        """(block, log(candidate / baseline)) of one pair of turns in one block, the sides in a random order."""
        if not self.order[name]:
            self.order[name] = list(self.rng.permutation(self.blocks))
        block = int(self.order[name].pop())
        turn = {}
        for index in self.rng.permutation(2):
            turn[index] = self.workers[index][block].ask(op="time", name=name, n=self.per_turn[name])["s"]
        for index in (0, 1):
            self.timings[name][index].extend(turn[index])
        return block, pair_log_ratio(turn[0], turn[1])

    def row(self, name: str, pairs: list[Pair], threshold: float) -> dict:
        """One benchmark of the record: medians, the ratio, its interval, verdict, every pair and timing."""
        baseline_s, candidate_s = self.timings[name]
        center, se, blocks = estimate(pairs)
        ratio, low, high = bounds(center, se, blocks)
        return {"name": name, "baseline_median_s": float(np.median(baseline_s)),
                "candidate_median_s": float(np.median(candidate_s)), "ratio": ratio, "ci_low": low, "ci_high": high,
                "pairs": len(pairs), "blocks": blocks, "se": se,
                "verdict": verdict(ratio, low, high, threshold), "pair_blocks": [b for b, _ in pairs],
                "log_ratios": [r for _, r in pairs], "baseline_s": baseline_s, "candidate_s": candidate_s}


def chosen(workers: list[WorkerProcess], only: list[str], stream) -> list[str]:
    """The benchmarks both sides have whose names contain one of `only` (all without it)."""
    names = [n for n in workers[1].benchmarks if not only or any(text in n for text in only)]
    for worker in workers:
        missing = [n for n in names if n not in worker.benchmarks]
        if missing:
            stream.write(f"backprop-bench: not on the {worker.side.role} ({worker.side.label}), "
                         f"left out: {', '.join(missing)}\n")
    shared = [n for n in names if all(n in worker.benchmarks for worker in workers)]
    if not shared:
        raise AbError("no benchmark to compare" + (f" matches {', '.join(only)}" if only else "")
                      + f"; the candidate has: {', '.join(workers[1].benchmarks) or 'none'}")
    return shared


def compare_sides(baseline: str, candidate: str | None = None, *, threshold: float = 0.05, only: list[str] = (),
                  budget: float | None = None, device: str = "cpu", baseline_python: str | None = None,
                  candidate_python: str | None = None, processes: int = PROCESSES, here: Path | None = None,
                  stream=sys.stderr) -> dict:
    """Compare `baseline` with `candidate` (default: the working tree) interleaved; the record of it."""
    start = time.monotonic()
    repo = checkout_root(here or Path.cwd())
    check_device(device)
    check_processes(processes)
    for tree in prune_stale_trees(repo):
        stream.write(f"backprop-bench: removed {tree}, left behind by an ab that did not end cleanly\n")
    with sigterm_as_interrupt(), ExitStack() as stack:
        sides = [side(stack, repo, "baseline", baseline, baseline_python),
                 side(stack, repo, "candidate", candidate, candidate_python)]
        workers: list[list[WorkerProcess]] = [[], []]

        def launch() -> tuple[WorkerProcess, ...]:  # one more block: a worker a side, importing meanwhile
            block = start_block(stack, sides, device)
            for index, worker in enumerate(block):
                workers[index].append(worker)
            return block

        # One worker a side first, to learn the benchmarks: a name that matches none ends the comparison in
        # seconds, not after every worker has imported the frameworks.
        firsts = launch()
        for worker in firsts:
            worker.ready()
        names = chosen(list(firsts), list(only), stream)
        end = start + (budget if budget is not None else SECONDS_PER_BENCHMARK * len(names))
        progress = Progress(stream, len(names))
        progress.loading(2 * processes)
        rng = np.random.default_rng()
        pairs = Pairs(workers, load_blocks(firsts, launch, names, processes), rng)
        progress.loaded(time.monotonic() - start, end - start)
        found = measure(pairs, names, lambda: end - time.monotonic(), rng, PAIRS_PER_BLOCK * processes, progress,
                        cycle=processes)
        rows = [pairs.row(name, found[name], threshold) for name in names]
        return record(sides, workers, threshold, rows)


def machine_info() -> dict:
    """The machine, in the keys of a suite run's machine_info (each side records its own versions)."""
    machine = store.this_machine()
    return {"node": machine["node"], "cpu": {"brand_raw": machine["cpu"]},
            "backprop_bench": {"python": platform.python_version(), "machine": machine}}


def record(sides: list[Side], workers: list[list[WorkerProcess]], threshold: float, rows: list[dict]) -> dict:
    """What is saved of a comparison: both sides, the machine, and every paired timing."""
    return {"backprop_bench_ab": records.AB_SCHEMA, "datetime": datetime.now(timezone.utc).isoformat(),
            "threshold": threshold,
            "machine_info": machine_info(), "forked_blocks": isinstance(workers[0][0], ForkedWorker),
            **{s.role: {**s.describe(), "versions": w[0].versions, "processes": len(w)}
               for s, w in zip(sides, workers)},
            "benchmarks": rows}


# --- the record on disk ---------------------------------------------------------------------------

def save_record(ab_record: dict, results: Path) -> Path:
    """Save as <results>/ab/NNNN_<baseline>-vs-<candidate>.json, under the next free number, never replacing one."""
    return records.save(ab_record, results / records.AB,
                        f"{ab_record['baseline']['label']}-vs-{ab_record['candidate']['label']}")


def table(ab_record: dict):
    """The comparison as a pandas table for people: medians, ratio, interval, pairs, verdict."""
    import pandas as pd

    rows = ab_record["benchmarks"]
    return pd.DataFrame({
        "benchmark": [r["name"] for r in rows],
        "baseline": [seconds_text(r["baseline_median_s"]) for r in rows],
        "candidate": [seconds_text(r["candidate_median_s"]) for r in rows],
        "ratio": [f"{r['ratio']:.3f}" for r in rows],
        "95% interval": [f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" for r in rows],
        "pairs": [r["pairs"] for r in rows],
        "verdict": [r["verdict"] for r in rows],
    })


CHANGED = ("regression", "improvement", "slower", "faster")
RATIO_NOTE = ("ratio: the paired ratio (each candidate turn's fastest training over the baseline turn's beside it; "
              "a robust geometric mean of these), not the ratio of the two medians shown")


def markdown(ab_record: dict) -> str:
    """The comparison as markdown for a CI job's summary: changed benchmarks first, the unchanged folded away."""
    from backprop_bench.formatting import markdown as markdown_table

    shown = table(ab_record)
    order = {verdict: i for i, verdict in enumerate(records.VERDICTS)}
    shown = shown.iloc[shown["verdict"].map(order).argsort(kind="stable")]
    changed, unchanged = shown[shown["verdict"].isin(CHANGED)], shown[~shown["verdict"].isin(CHANGED)]
    busy = busy_note(ab_record["benchmarks"])
    parts = [f"**backprop-bench ab**: baseline `{ab_record['baseline']['label']}`, candidate "
             f"`{ab_record['candidate']['label']}`, threshold {ab_record['threshold']:.0%}: {summary(ab_record)}.",
             *([f"> **Note**: {busy[0].upper()}{busy[1:]}."] if busy else []),
             f"### Changed ({len(changed)})", markdown_table(changed) if len(changed) else "None."]
    if len(unchanged):
        parts.append(f"<details><summary>Unchanged ({len(unchanged)}): same or inconclusive</summary>\n\n"
                     f"{markdown_table(unchanged)}\n\n</details>")
    parts.append(f"{RATIO_NOTE[0].upper()}{RATIO_NOTE[1:]}; above 1 is slower. `slower`/`faster`: a change seen but "
                 "not shown past the threshold; `inconclusive`: too noisy to tell in the budget.")
    return "\n\n".join(parts) + "\n"


def burst_share(rows: list[dict]) -> float:
    """The share of a comparison's pairs (its benchmarks' `rows`) standing more than BURST from their benchmark's
    estimate."""
    far = [abs(x - math.log(row["ratio"])) > BURST for row in rows for x in row["log_ratios"]]
    return sum(far) / len(far) if far else 0.0


def busy_note(rows: list[dict]) -> str:
    """A line saying the machine was busy, where more than BUSY_SHARE of the pairs were hit by bursts; else "".

    Bursts cost `ab` its sight more than its honesty, so a user must be told when a
    comparison saw less than usual. In the gate checks kept in docs/data (140 comparisons
    with a planted 4-7% slowdown at a 3% threshold and the default budget, 2-core AMD EPYC
    VMs, pairs read as `ab` reads them since c54d5fb), the plant was caught in 86 of 93
    comparisons with at most 5% of pairs so far off, in 20 of 25 with 5-10%, and in 14 of
    22 with more (benchmarks/gate_records.py; read by the turns' medians, as before, the
    same comparisons sorted by their own pairs: 54 of 57, 24 of 34 and 18 of 49).
    """
    share = burst_share(rows)
    if share <= BUSY_SHARE:
        return ""
    return (f"the machine was busy: {share:.0%} of the pairs stood more than {math.expm1(BURST):.0%} off their "
            f"benchmark's estimate (bursts of load; at most {BUSY_SHARE:.0%} when it is quiet), so intervals are "
            "wider and small changes go unseen: rerun when it is quiet, or with more --budget")


def summary(ab_record: dict) -> str:
    counts = {v: sum(r["verdict"] == v for r in ab_record["benchmarks"]) for v in records.VERDICTS}
    return (f"{counts['regression']} regression(s), {counts['improvement']} improvement(s), "
            f"{counts['slower'] + counts['faster']} under the threshold (slower or faster), "
            f"{counts['inconclusive']} inconclusive among {len(ab_record['benchmarks'])} benchmarks")
