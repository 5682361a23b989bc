"""The worker of `backprop-bench ab`: one side's code, timing single trainings on request.

Run as `python ab_worker.py ROOT DEVICE` with the side's interpreter, or as `python ab_worker.py
--block DEVICE CHILDREN` to fork a block's two workers from one interpreter (see block). ROOT's backends, model and
workloads come first on sys.path (`backprop_bench.backends` and `backprop_bench.workloads`,
or the top-level `backends` and `benchmarks/workloads.py` of a commit from before they
were installed with the package). The stopwatch is the `Training` of the timing.py beside
this file, loaded by file path so that it binds to ROOT's backends: both sides are timed
by the same code, the way the suite times them, and a baseline older than timing.py can
still be compared. Requests and replies are JSON lines on stdin and the original stdout;
whatever the frameworks print goes to stderr.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import signal
import sys
import traceback
from importlib import metadata
from pathlib import Path

TIMING = Path(__file__).resolve().with_name("timing.py")
WARM_S = 0.1  # a first training this long is its own warm-up (see Server.load)


LEGACY_PACKAGES = ("numpy", "torch", "jax", "jaxlib")  # a side from before base.Framework named its packages


def side_modules(root: Path):
    """ROOT's backend registry and workloads module, wherever that commit keeps them."""
    if (root / "backprop_bench" / "backends").exists():
        from backprop_bench import backends, workloads
    else:  # older commits: a top-level `backends` (timing.py finds it where it now lives), workloads in benchmarks/
        import backends
        import backprop_bench
        from benchmarks import workloads

        sys.modules["backprop_bench.backends"] = backprop_bench.backends = backends
    return backends, workloads


def versions(backends) -> dict:
    """The interpreter's and the frameworks' versions, read without importing the frameworks."""
    if hasattr(backends, "framework"):
        packages = [package for name, reason in backends.available().items() if reason is None
                    for package in backends.framework(name).packages]
    else:
        packages = LEGACY_PACKAGES
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def _load_timing():
    spec = importlib.util.spec_from_file_location("backprop_bench_ab_timing", TIMING)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where its dataclass (BenchmarkId) looks its module up
    spec.loader.exec_module(module)
    return module


def suite(backends, workloads, timing, device: str) -> dict:
    """The suite's default training benchmarks on `device` that can run here: name -> (workload, case)."""
    found = {}
    for workload in workloads.workloads("default"):
        for name, variant, case_device, reason in backends.cases():
            # an opt-in variant (torch compile, minutes of compiling) is left out, as in the suite
            if reason is None and case_device == device and not _opt_in(backends.get(name, variant)):
                identity = timing.BenchmarkId(workload.name, name, variant, device, workload.spec.dtype)
                found[identity.name] = (workload, (name, variant, device))
    return found


def _opt_in(backend) -> bool:
    return getattr(backend, "opt_in", backend.variant == "compile")  # before Backend.opt_in: torch's compile


class Server:
    """Answers requests: `load` a benchmark (warmed up and checked), `time` n trainings of it."""

    def __init__(self, root: Path, device: str):
        self.backends, workloads = side_modules(root)
        self.timing = _load_timing()
        self.benchmarks = suite(self.backends, workloads, self.timing, device)
        self.trainings = {}
        self.references = {}

    def load(self, name: str, check: bool = True) -> dict:
        """Build the training, warm it up untimed by `ab` (compilation, first-call set-up), and check it against
        the NumPy backend's result where asked (one worker of a side checks for all: they run the same code).

        The warm-up is two trainings, or one where the first lasts WARM_S: a long training's
        own epochs warm it (mlp-4096x1024's second training here was within 6% of its first),
        and second ones were most of the whole suite's start-up.
        """
        workload, (backend, variant, device) = self.benchmarks[name]
        training = self.timing.Training(workload.spec, workload.data, backend, variant, device)
        warm_s, trained = training.time_once()  # compiling, where a backend compiles on load, is not in warm_s
        if warm_s < WARM_S:
            warm_s, trained = training.time_once()
        if check:
            if workload.name not in self.references:  # the NumPy backend's result, once per workload
                self.references[workload.name] = self.backends.train(workload.spec, workload.data, "numpy")
            training.check_against(training.result(trained), self.references[workload.name], name)
        self.trainings[name] = training
        return {"warm_s": warm_s}

    def time(self, name: str, n: int) -> dict:
        return {"s": [self.trainings[name].time_once()[0] for _ in range(n)]}

    def answer(self, request: dict) -> dict:
        try:
            if request["op"] == "load":
                return self.load(request["name"], request.get("check", True))
            return self.time(request["name"], request["n"])
        except (AssertionError, ValueError) as err:  # a wrong result, a diverged training, a backend refusing
            return {"error": str(err).strip().splitlines()[0]}


def end_with_parent() -> None:
    """On Linux, die when the parent does: a parent killed outright must not leave a stopped worker behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker still ends at the end of its input once running
        pass


def main(root: str, device: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends us
    end_with_parent()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # framework chatter must not corrupt the replies
    sys.path[0] = root  # instead of this file's folder
    worker = Server(Path(root), device)
    replies.write(json.dumps({"benchmarks": list(worker.benchmarks), "versions": versions(worker.backends)}) + "\n")
    for line in sys.stdin:
        replies.write(json.dumps(worker.answer(json.loads(line))) + "\n")


def block(device: str, children: str) -> None:
    """Fork a block's two workers from this interpreter before either side's code is imported, print their pids
    (a JSON list), and hold them until our stdin ends.

    Where a process lands in memory (address-space layout randomization) and Python's
    hash seed are drawn anew at each start, and together they set much of how fast the
    same code runs (benchmarks/process_spread.py --kinds; docs/regressions.md). Two
    workers forked from one interpreter inherit its draws, and the same imports in the
    same order then land at the same addresses, so the draws cancel in their ratio while
    each block still draws its own (see ab.BlockParent).

    CHILDREN is a JSON list of {"root": ROOT, "fds": [stdin, stdout, stderr]}, file
    descriptors passed to us. We never wait for a worker: one that ended stays a
    zombie, so its pid is not reused while `ab` may still signal it, until we end.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent()
    children = json.loads(children)
    passed = [fd for child in children for fd in child["fds"]]
    pids = []
    for child in children:
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                for target, fd in enumerate(child["fds"]):
                    os.dup2(fd, target)
                for fd in passed:
                    os.close(fd)
                os.chdir(child["root"])
                main(child["root"], device)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)  # never return into the loop: the other fork is the parent's
        pids.append(pid)
    for fd in passed:
        os.close(fd)
    print(json.dumps(pids), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    if sys.argv[1] == "--block":
        block(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
