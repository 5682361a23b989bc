"""One training set up for timing: the one way the benchmarks, `train` and `ab` time a training.

Every timed training starts from fresh initial parameters already on the device
(`fresh`, untimed) and the timed call (`run`) returns only when the device's work is
done. The clock is `time.perf_counter`, pytest-benchmark's default timer, read around
the call alone. The first training of a process is timed apart: it includes
compilation and the frameworks' first-call set-up.

It uses nothing but the backend seam (`backends.get`, `load`/`run`/`fetch`), so it
also times the backends of another checkout of the project placed first on sys.path.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from backprop_bench import backends
from backprop_bench.model import TOLERANCES, Dataset, ModelSpec, init_params


@dataclass(frozen=True)
class BenchmarkId:
    """What a training benchmark is: a workload trained by one backend's variant, on a device, in a dtype.

    Built once where a benchmark is made (the suite, `ab`'s workers), saved field by field
    in its extra_info, and read back from there: the name is for display and is never
    parsed. A reference (the C loop, the notebook) is backend "reference", its variant
    naming which one.
    """

    workload: str
    backend: str
    variant: str
    device: str
    dtype: str

    @property
    def case(self) -> str:
        """numpy-handwritten-cpu: a column of the comparison grid."""
        return f"{self.backend}-{self.variant}-{self.device}"

    @property
    def label(self) -> str:
        """numpy-handwritten-cpu-float64: a row of `compare`'s table for its workload."""
        return f"{self.case}-{self.dtype}"

    @property
    def name(self) -> str:
        """seed-linear[numpy-handwritten-cpu-float64], as pytest-benchmark and `ab` show it."""
        return f"{self.workload}[{self.label}]"

    def fields(self) -> dict[str, str]:
        return asdict(self)


class Training:
    """`spec` trained on `data` by one backend, variant and device, from the spec's seeded init."""

    def __init__(self, spec: ModelSpec, data: Dataset, backend: str, variant: str | None = None,
                 device: str = "cpu"):
        data.check_fits(spec)
        self.spec = spec
        self.data = data.as_dtype(spec.dtype)
        self.params = init_params(spec)
        self.trainer = backends.get(backend, variant)(spec, device)

    def fresh(self) -> Any:
        """The untimed set-up of one training: initial parameters and data on the device."""
        return self.trainer.load(self.params, self.data)

    def run(self, loaded: Any) -> Any:
        """The timed call: every epoch, returning when the work is done."""
        return self.trainer.run(loaded)

    def time_setup(self) -> float:
        """Seconds of one untimed set-up; the first includes compiling where a backend compiles on load (JAX)."""
        start = time.perf_counter()
        self.fresh()
        return time.perf_counter() - start

    def time_first(self) -> tuple[float, Any]:
        """Seconds from nothing to the first trained result, set-up included: compiling counts wherever
        a backend does it (JAX on load, torch.compile on the call). Meaningful for a process's first training."""
        start = time.perf_counter()
        trained = self.run(self.fresh())
        return time.perf_counter() - start, trained

    def time_once(self) -> tuple[float, Any]:
        """Seconds of one training from fresh parameters (set-up not timed), and what it trained."""
        loaded = self.fresh()
        start = time.perf_counter()
        trained = self.run(loaded)
        return time.perf_counter() - start, trained

    def fetch(self, trained: Any) -> backends.TrainResult:
        """What a training produced, as NumPy, unchecked: a diverged one's losses up to the failure too."""
        return self.trainer.fetch(trained)

    def result(self, trained: Any) -> backends.TrainResult:
        """What a training produced, as NumPy, checked to be finite."""
        result = self.fetch(trained)
        backends.check_finite(result)
        return result

    def check_against(self, result: backends.TrainResult, expected: backends.TrainResult, what: str) -> None:
        """Raise AssertionError unless `result` holds `expected`'s parameters within the dtype's tolerance."""
        for param in expected.params:
            np.testing.assert_allclose(result.params[param], expected.params[param], **TOLERANCES[self.spec.dtype],
                                       err_msg=f"{what}: {param} differs from the NumPy backend's")
