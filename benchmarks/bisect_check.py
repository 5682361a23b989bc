"""Does `bisect` name the commit that slowed a benchmark? Throwaway histories with a planted slowdown, counted.

Each try clones this checkout into a temporary folder and adds 16 commits: one plants a
10% slowdown in the NumPy backend's biased trainings (seed-affine among the presets,
benchmarks/gate_check.py's busy wait), commit 8 breaks `import backends` and commit 9
mends it, the rest touch a text file. `backprop-bench bisect HEAD~16 HEAD` on
seed-affine's NumPy benchmark should name the planted commit (skipping commit 8) in at
most 5 minutes.

Run as `python -m benchmarks.bisect_check [--positions 2,5,10,13,16]` from a checkout
with nothing else running (the numbers are timings). The records are kept in
`results/bisect-check/<date>/`, and the tries are printed as a markdown table with the CPU
they ran on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backprop_bench import store
from benchmarks import dated
from benchmarks.gate_check import PLANTED_BENCHMARK, plant

ROOT = Path(__file__).resolve().parent.parent
COMMITS = 16
BROKEN = 8  # this commit's backends fail to import; the next one mends them
SLOWDOWN = 0.10


def commit(clone: Path, message: str) -> None:
    for args in (["add", "-A"],
                 ["-c", "user.name=check", "-c", "user.email=check@localhost", "commit", "-qm", message]):
        subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True)


def history(clone: Path, planted: int) -> str:
    """Add COMMITS commits to `clone`, the slowdown at position `planted` (1-based); the planted commit's sha."""
    numpy_backend = clone / "backends" / "numpy_backend.py"
    sha = ""
    for position in range(1, COMMITS + 1):
        if position == planted:
            plant(clone, SLOWDOWN)
            sha = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            continue
        if position == BROKEN:
            numpy_backend.write_text('raise ImportError("planted by bisect_check")\n' + numpy_backend.read_text())
        elif position == BROKEN + 1:
            numpy_backend.write_text(numpy_backend.read_text().split("\n", 1)[1])
        else:
            with open(clone / "NOTES.bisect-check", "a") as notes:
                notes.write(f"commit {position}\n")
        commit(clone, f"commit {position}" + (" (backends fail to import)" if position == BROKEN else ""))
    return sha


def one_try(planted: int, saved: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="backprop-bench-bisect-check-") as temp:
        clone = Path(temp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        sha = history(clone, planted)
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "backprop_bench.cli", "bisect", f"HEAD~{COMMITS}", "HEAD",
                               "--only", PLANTED_BENCHMARK, "--results", str(saved)],
                              cwd=clone, capture_output=True, text=True)
        wall = time.monotonic() - start
    print(done.stdout + done.stderr, file=sys.stderr)
    if done.returncode != 0:
        return {"planted": planted, "named": "(failed)", "right": False, "steps": 0, "wall_s": wall}
    record = json.loads(sorted((saved / "bisect").glob("*.json"))[-1].read_text())
    return {"planted": planted, "named": record["first_bad"]["subject"], "right": record["candidates"] == [sha],
            "steps": len(record["steps"]), "skipped": sum(step["state"] == "skip" for step in record["steps"]),
            "across": f"{record['across']['ratio']:.3f}", "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", default="2,5,10,13,16", help="planted positions, one try each (1-16)")
    args = parser.parse_args()
    folder = dated("bisect-check")
    folder.mkdir(parents=True)
    machine = store.machine_label(store.this_machine())
    tries = []
    for planted in map(int, args.positions.split(",")):
        tries.append(one_try(planted, folder))
        print(f"try {len(tries)}: {tries[-1]}", file=sys.stderr)
    (folder / "summary.json").write_text(json.dumps({"machine": machine, "tries": tries}, indent=1))
    print(f"\nbisect on {COMMITS} commits, a {SLOWDOWN:.0%} slowdown planted, commit {BROKEN} broken ({machine}):\n")
    print("| planted at | named | right | steps | skipped | ratio across | wall s |\n|---|---|---|---|---|---|---|")
    for t in tries:
        print(f"| {t['planted']} | {t['named']} | {'yes' if t['right'] else 'NO'} | {t['steps']} | "
              f"{t.get('skipped', '')} | {t.get('across', '')} | {t['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
