"""Saved gate checks, re-read: what `ab`'s pairs and interval today, and those before them, make of the same turns.

`benchmarks/gate_check.py` keeps every comparison's record (each benchmark's trainings,
turn by turn, and its pairs' blocks) under `results/gate/<date>/aa/ab/` and
`.../planted/ab/`. This script reads every pair two ways from those trainings, as each
turn's fastest training (`ab.pair_log_ratio`, since commit c54d5fb) and as its median
(before), and recomputes every interval and verdict with `ab.interval`, with the t
interval over each block's own estimate that `ab` tried at commit 3dfe157, and with the t
interval over the blocks' medians that `ab` used until commit 23e9951. It counts, per
method: A/A intervals excluding 1 and false alarms (threshold 5%), and planted 4-7%
slowdowns flagged alone (threshold 3%). It times nothing, so it can run alongside
anything; the counts are only as new as the records, and a method chosen on these
records must be checked on new ones (run gate_check again).

Run as `python -m benchmarks.gate_records results/gate/*/`. The pairs of the gate checks
behind docs/regressions.md are packed in docs/data/gate-<date>.json.gz (each benchmark's
blocks and its pairs read both ways, rounded to 1e-7, nothing else), so a fresh clone can
recount them: `python -m benchmarks.gate_records docs/data/gate-*.json.gz`; `--pack FILE`
writes such a file from a gate_check folder. It also counts each set's A/A intervals
apart, with the pooled share's own 95% interval: whether the intervals hold their 95%
overall, and how far one set strays; and per set, how wide its intervals were and how
many of its comparisons the machine's bursts hit, to tell narrower intervals from a
quieter machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path

import numpy as np

from backprop_bench import ab
from benchmarks.gate_check import PLANTED_BENCHMARK


def t_over_blocks(per_block: np.ndarray) -> tuple[float, float, float]:
    """The ratio and its 95% interval from one log-ratio a block: their mean, a t interval over them."""
    return ab.bounds(float(np.mean(per_block)), float(np.std(per_block, ddof=1)) / math.sqrt(len(per_block)),
                     len(per_block))


def block_median_interval(pairs: list[ab.Pair]) -> tuple[float, float, float]:
    """`ab`'s interval until commit 23e9951: a t interval over the blocks' median log-ratios."""
    return t_over_blocks(ab.block_medians(pairs))


def block_estimate_interval(pairs: list[ab.Pair]) -> tuple[float, float, float]:
    """`ab`'s interval at commit 3dfe157 only: a t interval over each block's own Huber estimate. It holds its 95%
    where processes differ and pairs barely do, but a block most of whose pairs a burst threw off is off itself:
    reverted on a new gate check (docs/regressions.md)."""
    return t_over_blocks(np.array([ab.huber(log_ratios) for log_ratios in ab.blocks_of(pairs)]))


def median_pair_log_ratio(baseline: list[float], candidate: list[float]) -> float:
    """A pair as `ab` read it until commit c54d5fb: from its two turns' median trainings."""
    return math.log(np.median(candidate) / np.median(baseline))


READINGS = {"fastest": ab.pair_log_ratio, "median": median_pair_log_ratio}  # a pair, from its two turns

METHODS = {  # (the pairs, the interval over them)
    "each turn's fastest training; Huber over all pairs, jackknife over blocks (ab since c54d5fb)":
        ("fastest", ab.interval),
    "each turn's fastest training; each block's Huber estimate, t interval (3dfe157, reverted)":
        ("fastest", block_estimate_interval),
    "each turn's median; Huber over all pairs, jackknife over blocks (23e9951 until c54d5fb)": ("median", ab.interval),
    "each turn's median; blocks' medians, t interval (until 23e9951)": ("median", block_median_interval),
}
NOW = next(iter(METHODS.values()))


def read_both_ways(row: dict) -> dict[str, list[float]]:
    """A saved benchmark's pairs, from its trainings turn by turn: each reading's log(candidate / baseline)."""
    baseline, candidate = (np.reshape(row[side], (row["pairs"], -1)) for side in ("baseline_s", "candidate_s"))
    return {name: [round(read(list(b), list(c)), 7) for b, c in zip(baseline, candidate)]
            for name, read in READINGS.items()}


def pairs_of(sources: list[Path]) -> dict[str, list[dict[str, list]]]:
    """{"aa": [...], "planted": [...]}: each saved comparison as {benchmark: [blocks, {reading: log-ratios}]},
    from gate_check folders or a packed file."""
    found: dict[str, list] = {"aa": [], "planted": []}
    for source in sources:
        if source.is_file():
            for kind, comparisons in json.loads(gzip.decompress(source.read_bytes())).items():
                found[kind] += comparisons
            continue
        for kind in found:
            for path in sorted(source.glob(f"{kind}/ab/*.json")):
                found[kind].append({row["name"]: [row["pair_blocks"], read_both_ways(row)]
                                    for row in json.loads(path.read_text())["benchmarks"]})
    return found


def verdicts(comparison: dict[str, list], method, threshold: float) -> dict[str, tuple[str, bool]]:
    """Each benchmark of a comparison: (verdict, whether the interval excludes 1) under `method`."""
    reading, interval = method
    found = {}
    for name, (blocks, log_ratios) in comparison.items():
        ratio, low, high = interval(list(zip(blocks, log_ratios[reading])))
        found[name] = ab.verdict(ratio, low, high, threshold), low > 1 or high < 1
    return found


def counts(comparisons: dict[str, list], method) -> dict:
    aa = [verdicts(comparison, method, 0.05) for comparison in comparisons["aa"]]
    planted = [verdicts(comparison, method, 0.03) for comparison in comparisons["planted"]]
    alarms = ("regression", "improvement")
    return {
        "A/A comparisons": len(aa),
        "A/A intervals excluding 1": f"{sum(x for found in aa for _, x in found.values())} of "
                                     f"{sum(len(found) for found in aa)}",
        "A/A regression/improvement": sum(v in alarms for found in aa for v, _ in found.values()),
        "planted comparisons": len(planted),
        "planted flagged alone": sum(found[PLANTED_BENCHMARK][0] == "regression"
                                     and not any(v in alarms for name, (v, _) in found.items()
                                                 if name != PLANTED_BENCHMARK) for found in planted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path,
                        help="gate_check folders (results/gate/<date>/) or packed files (.json.gz)")
    parser.add_argument("--pack", type=Path, metavar="FILE", help="write the sources' pairs to FILE instead")
    args = parser.parse_args()
    sets = {source: pairs_of([source]) for source in args.sources}  # each read once, counted apart and together
    comparisons = {kind: [found for each in sets.values() for found in each[kind]] for kind in ("aa", "planted")}
    if args.pack:
        args.pack.write_bytes(gzip.compress(json.dumps(comparisons, separators=(",", ":")).encode(), mtime=0))
        print(f"wrote {args.pack}: {len(comparisons['aa'])} A/A and {len(comparisons['planted'])} planted comparisons")
        return
    rows = {name: counts(comparisons, method) for name, method in METHODS.items()}
    columns = list(next(iter(rows.values())))
    print("| pairs; interval | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for name, found in rows.items():
        print(f"| {name} | " + " | ".join(str(found[column]) for column in columns) + " |")
    calibration([(source, each["aa"]) for source, each in sets.items()])
    by_bursts(comparisons["planted"])
    widths([(source, each["aa"] + each["planted"]) for source, each in sets.items()])


def read_now(comparison: dict[str, list]) -> tuple[dict[str, tuple[float, float, int]], float]:
    """A comparison read with ab's pairs and interval: each benchmark's estimate (ab.estimate), and the share of its
    pairs hit by bursts (ab.burst_share)."""
    reading = NOW[0]
    estimates = {name: ab.estimate(list(zip(blocks, log_ratios[reading])))
                 for name, (blocks, log_ratios) in comparison.items()}
    return estimates, ab.burst_share([{"ratio": math.exp(estimates[name][0]), "log_ratios": log_ratios[reading]}
                                      for name, (_, log_ratios) in comparison.items()])


def by_bursts(planted: list[dict]) -> None:
    """Planted slowdowns caught (ab's pairs and interval, threshold 3%) against how busy the machine was: the share
    of each comparison's pairs hit by bursts (ab.burst_share), in the bins of ab.busy_note."""
    bins = {f"at most {ab.BUSY_SHARE:.0%}": [], f"{ab.BUSY_SHARE:.0%}-10%": [], "over 10%": []}
    for comparison in planted:
        estimates, share = read_now(comparison)
        caught = ab.verdict(*ab.bounds(*estimates[PLANTED_BENCHMARK]), 0.03) == "regression"
        bins[list(bins)[0 if share <= ab.BUSY_SHARE else 1 if share <= 0.1 else 2]].append(caught)
    if planted:
        print(f"\nplanted slowdowns caught (threshold 3%), by the share of pairs more than "
              f"{math.expm1(ab.BURST):.0%} off their benchmark's estimate (bursts of load):")
        for name, caught in bins.items():
            print(f"  {name}: {sum(caught)} of {len(caught)}")


def widths(sets: list[tuple[Path, list[dict]]]) -> None:
    """Per set: how wide its intervals were (the median over its comparisons of each one's median half-width, ab's
    pairs and interval) and how busy the machine was (comparisons with more than ab.BUSY_SHARE of their pairs hit
    by bursts): whether a set's intervals are narrow because the code measures better or the machine was quiet."""
    print(f"\nper set, all comparisons (ab's pairs and interval): the median half-width of the intervals; "
          f"comparisons with more than {ab.BUSY_SHARE:.0%} of pairs hit by bursts:")
    for source, comparisons in sets:
        halves, busy = [], 0
        for comparison in comparisons:
            estimates, share = read_now(comparison)
            halves.append(np.median([math.expm1(math.log(high / low) / 2) for _, low, high in
                                     (ab.bounds(*estimate) for estimate in estimates.values())]))
            busy += share > ab.BUSY_SHARE
        if comparisons:
            print(f"  {source}: {np.median(halves):.2%}; {busy} of {len(comparisons)} busy")


def calibration(sets: list[tuple[Path, list[dict]]]) -> None:
    """A/A intervals (ab's pairs and interval) excluding 1, per set and pooled, with the pooled share's 95%
    interval: whether the intervals hold their 95%, and how far one set of them may stray from 5% when they do."""
    from scipy.stats import binom, binomtest

    missed = total = 0
    print("\nA/A intervals excluding 1 (ab's pairs and interval, threshold 5%), per set:")
    for source, comparisons in sets:
        found = [x for comparison in comparisons for _, x in verdicts(comparison, NOW, 0.05).values()]
        if found:
            print(f"  {source}: {sum(found)} of {len(found)} ({sum(found) / len(found):.1%})")
            missed, total = missed + sum(found), total + len(found)
    if total:
        low, high = binomtest(missed, total).proportion_ci()
        print(f"  all: {missed} of {total} ({missed / total:.1%}; 95% interval of the share {low:.1%}-{high:.1%})")
        print(f"  if each interval missed 1 independently 5% of the time, a set of 240 would exceed 5% (12) with "
              f"probability {binom.sf(12, 240, 0.05):.0%}; the intervals of one comparison share its processes, so "
              "real sets stray further")


if __name__ == "__main__":
    main()
