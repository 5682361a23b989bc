"""Does `check` call the machine's drift a regression? Back-to-back runs of unchanged code, every pair checked.

Runs the suite N times in a row with the same code (`pytest --benchmark-only` and the
pytest arguments given after `--`), then runs `check` on every pair of those runs
(earlier as baseline) twice: on raw seconds (`--normalize none`, what `check` did
before it read times against a reference) and as it does by default (`--normalize
reference`). The code never changed, so every regression or improvement is a false
flag; `undecided` is `check` saying that only `ab` can tell.

Run as `python -m benchmarks.drift_check [--runs N] [-- PYTEST_ARGS]` from a checkout
with nothing else running (the runs are timings). The runs and a summary are kept in
`results/drift/<date>/`; the counts are printed as a markdown table with the CPU.
`--saved FOLDER` checks the runs kept in FOLDER again, timing nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

from backprop_bench import store
from benchmarks import dated

ROOT = Path(__file__).resolve().parent.parent
RULES = {"raw seconds (--normalize none)": "none", "against the reference (default)": "reference"}


def suite_run(results: Path, pytest_args: list[str]) -> None:
    """One run of the suite as a user starts it, saved under `results`."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "-q", "-p", "no:cacheprovider",
                           f"--benchmark-storage=file://{results}", *pytest_args],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"drift_check: the suite failed: {done.stdout.strip().splitlines()[-1:]}")


def verdicts(results: Path, baseline: Path, current: Path, rule: str) -> tuple[int, dict[str, int]]:
    """`check`'s exit status and its verdict counts for one pair of runs under one rule."""
    done = subprocess.run([sys.executable, "-m", "backprop_bench.cli", "check", "--baseline", str(baseline),
                           "--against", str(current), "--normalize", rule, "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 1, 3):
        sys.exit(f"drift_check: check failed: {done.stderr.strip()}")
    rows = [line.split()[-1] for line in done.stdout.splitlines() if line.endswith(("same", "regression",
                                                                                   "improvement", "undecided"))]
    return done.returncode, {verdict: rows.count(verdict) for verdict in ("regression", "improvement", "undecided",
                                                                          "same")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="back-to-back suite runs (default 6)")
    parser.add_argument("--saved", metavar="FOLDER", help="check the runs an earlier drift_check kept here again")
    parser.add_argument("pytest_args", nargs="*", help="after --: the suite's arguments, e.g. -k seed-")
    args = parser.parse_args()
    machine = store.machine_label(store.this_machine())
    if args.saved:
        folder = Path(args.saved)
        kept = json.loads((folder / "summary.json").read_text())
        args.pytest_args, machine = kept["pytest_args"], kept.get("machine", machine)
    else:
        folder = dated("drift")
        print(f"drift_check on {machine}: {args.runs} runs of pytest {' '.join(args.pytest_args)}; in {folder}",
              file=sys.stderr)
        (folder / "summary.json").parent.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps({"pytest_args": args.pytest_args}))
        for i in range(args.runs):
            suite_run(folder, args.pytest_args)
            print(f"run {i + 1} of {args.runs} saved", file=sys.stderr)
    runs = sorted(path for path in folder.rglob("*.json") if path.name != "summary.json")
    pairs = list(itertools.combinations(runs, 2))
    summary = {"machine": machine, "pytest_args": args.pytest_args, "runs": len(runs), "pairs": len(pairs)}
    for label, rule in RULES.items():
        checked = [verdicts(folder, *pair, rule) for pair in pairs]
        summary[label] = {
            "benchmarks flagged (regression or improvement)": sum(c["regression"] + c["improvement"]
                                                                  for _, c in checked),
            "pairs with a flag": sum(c["regression"] + c["improvement"] > 0 for _, c in checked),
            "pairs exiting 1 (a regression)": sum(status == 1 for status, _ in checked),
            "benchmarks undecided": sum(c["undecided"] for _, c in checked),
            "benchmarks checked": sum(sum(c.values()) for _, c in checked)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{len(runs)} back-to-back runs of unchanged code, {len(pairs)} pairs checked ({machine}; "
          f"pytest --benchmark-only {' '.join(args.pytest_args)}):\n")
    columns = list(summary[next(iter(RULES))])
    print("| check | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for label in RULES:
        print(f"| {label} | " + " | ".join(str(summary[label][c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
