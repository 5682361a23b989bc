"""Does `ab` keep its promises? Repeated A/A comparisons and planted slowdowns, counted.

A/A: `ab HEAD --candidate HEAD` compares identical code, so every "95%" interval should
hold 1 in 95% of cases and no benchmark should be called a regression or improvement.
Planted: a throwaway commit on a temporary clone slows the NumPy backend's biased
trainings (seed-affine among the presets) by a known 4-7% (a busy wait of that share of
each training); `ab` at `--threshold 3%` should flag that benchmark alone.

Run as `python -m benchmarks.gate_check [--aa N] [--planted N] [--only TEXT] [--budget T]`
from a checkout with nothing else running (the numbers are timings). Each comparison's
record is kept in `results/gate/<date>/`, and the counts are printed as a markdown table
with the CPU they came from.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backprop_bench import store
from benchmarks import dated

ROOT = Path(__file__).resolve().parent.parent
PLANTED_BENCHMARK = "seed-affine[numpy-handwritten-cpu-float64]"
PLANT = '''
        if self.spec.bias:  # planted by benchmarks/gate_check.py: a known slowdown of the biased trainings
            spin_until = time.perf_counter() + SLOWDOWN * (time.perf_counter() - started)
            while time.perf_counter() < spin_until:
                pass
        return params, losses
'''


def plant(clone: Path, slowdown: float) -> None:
    """Commit, in `clone`, a NumPy backend whose biased trainings take `slowdown` longer."""
    path = clone / "backends" / "numpy_backend.py"
    code = path.read_text()
    code = code.replace("    def run(self, loaded):\n",
                        "    def run(self, loaded):\n        started = time.perf_counter()\n", 1)
    code = code.replace("\n        return params, losses\n", PLANT, 1)
    path.write_text(code + f"\n\nimport time  # noqa: E402 (planted)\n\nSLOWDOWN = {slowdown}\n")
    for args in (["add", "-A"], ["-c", "user.name=gate", "-c", "user.email=gate@localhost", "commit", "-qm",
                                 f"planted {slowdown:.0%} slowdown"]):
        subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True)


def compare(cwd: Path, baseline: str, candidate: str, threshold: str, only: str, budget: str, saved: Path) -> dict:
    """One `ab` run as a user would start it; its record, with the wall time it took."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "backprop_bench.cli", "ab", baseline, "--candidate", candidate,
                           "--threshold", threshold, "--only", only, "--format", "json", "--results", str(saved)]
                          + (["--budget", budget] if budget else []),
                          cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.exit(f"gate_check: ab failed: {done.stderr.strip().splitlines()[-1:]}")
    found = json.loads(done.stdout)
    found["wall_s"] = time.monotonic() - start
    return found


def excludes_one(row: dict) -> bool:
    return row["ci_low"] > 1 or row["ci_high"] < 1


def aa_counts(records: list[dict]) -> dict:
    rows = [row for found in records for row in found["benchmarks"]]
    return {"comparisons": len(records), "intervals": len(rows),
            "intervals excluding 1": sum(map(excludes_one, rows)),
            "regression or improvement": sum(row["verdict"] in ("regression", "improvement") for row in rows),
            "slower or faster": sum(row["verdict"] in ("slower", "faster") for row in rows),
            "comparisons with a false alarm": sum(any(r["verdict"] in ("regression", "improvement")
                                                      for r in found["benchmarks"]) for found in records),
            "wall time, median s": sorted(found["wall_s"] for found in records)[len(records) // 2],
            "wall time, max s": max(found["wall_s"] for found in records)}


def planted_counts(records: list[dict]) -> dict:
    flagged = [next(r for r in found["benchmarks"] if r["name"] == PLANTED_BENCHMARK)["verdict"] == "regression"
               for found in records]
    others = [any(r["verdict"] in ("regression", "improvement") for r in found["benchmarks"]
                  if r["name"] != PLANTED_BENCHMARK) for found in records]
    return {"comparisons": len(records), "planted flagged as regression": sum(flagged),
            "flagged alone": sum(f and not o for f, o in zip(flagged, others)),
            "another benchmark flagged": sum(others),
            "wall time, median s": sorted(found["wall_s"] for found in records)[len(records) // 2],
            "wall time, max s": max(found["wall_s"] for found in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aa", type=int, default=20, help="A/A comparisons (default 20)")
    parser.add_argument("--planted", type=int, default=20, help="comparisons with a planted slowdown (default 20)")
    parser.add_argument("--only", default="seed-", help="benchmarks compared (default seed-: the presets)")
    parser.add_argument("--budget", default="", help="ab's --budget (default ab's own)")
    args = parser.parse_args()
    folder = dated("gate")
    folder.mkdir(parents=True)
    machine = store.machine_label(store.this_machine())
    print(f"gate_check on {machine}: {args.aa} A/A, {args.planted} planted; records in {folder}", file=sys.stderr)
    aa, planted = [], []
    for i in range(args.aa):
        aa.append(compare(ROOT, "HEAD", "HEAD", "5%", args.only, args.budget, folder / "aa"))
        print(f"A/A {i + 1}: {aa_counts(aa[-1:])}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="backprop-bench-gate-") as temp:
        clone = Path(temp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        for i in range(args.planted):
            slowdown = 0.04 + 0.01 * (i % 4)  # 4, 5, 6, 7%
            if i:
                subprocess.run(["git", "-C", str(clone), "reset", "-q", "--hard", "HEAD~1"], check=True)
            plant(clone, slowdown)
            found = compare(clone, "HEAD~1", "HEAD", "3%", args.only, args.budget, folder / "planted")
            found["planted"] = slowdown
            planted.append(found)
            row = next(r for r in found["benchmarks"] if r["name"] == PLANTED_BENCHMARK)
            print(f"planted {slowdown:.0%}: {row['ratio']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
                  f"{row['verdict']}; {planted_counts(planted[-1:])}", file=sys.stderr)
    summary = {"machine": machine, "only": args.only, "budget": args.budget or "default",
               "aa": aa_counts(aa) if aa else None, "planted": planted_counts(planted) if planted else None}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    for kind in ("aa", "planted"):
        if summary[kind]:
            print(f"\n{'A/A, threshold 5%' if kind == 'aa' else 'planted 4-7%, threshold 3%'} ({machine}):\n")
            print("| " + " | ".join(summary[kind]) + " |\n|" + "---|" * len(summary[kind]))
            print("| " + " | ".join(f"{v:.0f}" if isinstance(v, float) and math.isfinite(v) else str(v)
                                    for v in summary[kind].values()) + " |")


if __name__ == "__main__":
    main()
