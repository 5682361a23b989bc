"""How fast is `backprop-bench report` with a long history? `python -m benchmarks.page_speed [RUNS]`

Writes RUNS (default 100) saved runs of one machine into a temporary results folder,
times the command that writes their page (a fresh process: imports included), then the
page's load in headless Chromium until every figure is drawn, three times each.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.browser import DRAWN, chromium
from tests.runs import full_run


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        results, output = Path(folder) / "results", Path(folder) / "page.html"
        for number in range(1, count + 1):
            full_run(results, number, when=f"2026-{1 + number // 28:02d}-{1 + number % 28:02d}T10:00:00", rounds=100)
        command = [sys.executable, "-m", "backprop_bench.cli", "report", "--results", str(results),
                   "--output", str(output), "--force"]
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            print(f"report of {count} runs written in {time.perf_counter() - start:.2f} s")
        print(f"page size: {output.stat().st_size / 1e6:.2f} MB")
        with chromium(Path(folder) / "profile") as (tab, errors, _):
            for _ in range(3):
                start = time.perf_counter()
                tab.goto(output.as_uri(), wait_until="load")
                tab.wait_for_function(DRAWN)
                print(f"loaded and drawn in headless Chromium in {time.perf_counter() - start:.2f} s")
    if errors:
        sys.exit(f"the page logged errors: {errors}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
