"""The workloads the benchmarks time: the notebook's two presets, a size sweep, and your own (--workload)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from backprop_bench.errors import UserError
from backprop_bench.model import (
    Dataset,
    ModelSpec,
    epoch_flops,
    parse_spec,
    preset,
    synthetic_data,
    working_set_bytes,
)


@dataclass(frozen=True)
class Workload:
    name: str
    spec: ModelSpec
    samples: int | None = None  # None: the preset's own data
    memory: bool = False         # peak memory is measured too
    source: str = ""             # what rebuilds it in a fresh process (benchmarks.memory): its name or its SPEC
    gpu_only: bool = False       # timed on cuda devices only: too large for a CPU

    @cached_property
    def data(self) -> Dataset:
        if self.samples is None:
            return preset(self.name).data.as_dtype(self.spec.dtype)
        return synthetic_data(self.spec, self.samples)

    @property
    def n_samples(self) -> int:
        return self.data.x.shape[0]

    @property
    def flops_per_epoch(self) -> int:
        return epoch_flops(self.spec, self.n_samples)

    def group(self, spec: ModelSpec) -> str:
        """The benchmark table this workload's results go in, e.g. 'seed-affine: 1-1-1 identity bias ...'."""
        return f"{self.name}: {spec.describe()}, {self.n_samples} samples, {spec.epochs} epochs"

    def working_set_bytes(self) -> int:
        return working_set_bytes(self.spec, self.n_samples)


def mlp(samples: int, layers: tuple[int, ...], epochs: int, gpu_only: bool = False) -> Workload:
    """A size-sweep workload, named by samples x widest layer: float32 tanh with biases, Xavier init."""
    spec = ModelSpec(layers, activation="tanh", init="xavier", lr=0.01, epochs=epochs, dtype="float32", seed=0)
    name = f"mlp-{samples}x{max(layers)}"
    return Workload(name, spec, samples, memory=True, source=name, gpu_only=gpu_only)


def custom(text: str, memory: bool = False) -> Workload:
    """A workload from a SPEC such as '3,128,128,1:activation=relu:samples=1024' (see model.parse_spec)."""
    spec, samples, name = parse_spec(text)
    return Workload(name, spec, samples, memory=memory, source=text)


PRESET_WORKLOADS = [Workload(name, preset(name).spec) for name in ("seed-linear", "seed-affine")]

SWEEP = [
    mlp(256, (16, 64, 64, 1), epochs=200),            # per-call overhead still dominates
    mlp(1024, (64, 256, 256, 16), epochs=50),
    mlp(4096, (512, 1024, 1024, 512), epochs=4),      # compute-bound: the matrix products dominate
]
FULL_SWEEP = SWEEP + [
    mlp(8192, (1024, 2048, 2048, 1024), epochs=2),
]
# For a GPU the CPU sweep's largest is small: an H100 does its 4096 x 1024 x 1024 product
# in well under a millisecond, where launches still count. These take tens of
# milliseconds an epoch in float32 without TF32 (about 50 TFLOP/s on an H100), so the
# matrix products dominate; and, from the NumPy reference each is checked against, a
# few seconds each on a many-core CPU.
GPU_SWEEP = [
    mlp(16384, (512, 2048, 2048, 512), epochs=5, gpu_only=True),     # 0.6 TFLOP an epoch
    mlp(16384, (1024, 4096, 4096, 1024), epochs=3, gpu_only=True),   # 2.3 TFLOP an epoch
]
COMPUTE_BOUND = SWEEP[-1]
GPU_COMPUTE_BOUND = GPU_SWEEP[-1]

SWEEPS = {"default": SWEEP, "full": FULL_SWEEP, "gpu": SWEEP + GPU_SWEEP}


def workloads(sweep: str) -> list[Workload]:
    return PRESET_WORKLOADS + SWEEPS[sweep]



def find(source: str) -> Workload:
    """A built-in workload by name, else one built from a SPEC."""
    builtin = {w.name: w for w in PRESET_WORKLOADS + FULL_SWEEP + GPU_SWEEP}
    if source in builtin:
        return builtin[source]
    try:
        return custom(source)
    except ValueError as err:
        raise UserError(f"{source!r} is neither a built-in workload ({', '.join(builtin)}) "
                        f"nor a good SPEC: {err}") from None
