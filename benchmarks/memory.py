"""Peak memory of one training beyond its data and parameters, measured in a fresh process.

On the CPU every framework allocates through the C heap, so one method serves all:
train once to warm up (compilation, caches), hand freed memory back to the OS
(malloc_trim), reset the kernel's peak-RSS mark, train again, and read how far the
resident set rose above where it started. On CUDA the frameworks' own allocator
statistics give the peak directly (each backend's Framework.cuda_peak_bytes).

Run as `python -m benchmarks.memory BACKEND VARIANT DEVICE WORKLOAD`: prints bytes.
WORKLOAD is a built-in workload's name or a `--workload` SPEC.
"""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


USAGE = "usage: python -m benchmarks.memory BACKEND VARIANT DEVICE WORKLOAD (a built-in name or a --workload SPEC)"


def measure(name: str, variant: str, device: str, source: str) -> int:
    from backprop_bench import backends
    from backprop_bench.model import init_params
    from backprop_bench.workloads import find

    workload = find(source)
    trainer = backends.get(name, variant)(workload.spec, device)
    params, data = init_params(workload.spec), workload.data
    trainer.run(trainer.load(params, data))  # warm-up: compile, fill caches
    loaded = trainer.load(params, data)
    gc.collect()
    if device == "cuda":
        return backends.framework(name).cuda_peak_bytes(lambda: trainer.run(loaded))
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM)
    before = _status_kib("VmRSS")
    trainer.run(loaded)
    return (_status_kib("VmHWM") - before) * 1024


def peak_bytes(name: str, variant: str, device: str, source: str) -> int | None:
    """The peak in a fresh process, or None where it cannot be measured (not Linux)."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory", name, variant, device, source],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed: {done.stderr.strip().splitlines()[-1:]}")
    return int(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        print(measure(*argv))
    except ValueError as err:  # an unknown backend, variant, device or workload
        print(f"benchmarks.memory: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
