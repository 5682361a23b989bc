"""The workloads the benchmarks time: the notebook's two presets and a size sweep."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from backprop_bench.model import Dataset, ModelSpec, epoch_flops, preset, synthetic_data


@dataclass(frozen=True)
class Workload:
    name: str
    spec: ModelSpec
    samples: int | None = None  # None: the preset's own data
    sweep: bool = False          # part of the size sweep: memory is measured too
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
        """Parameters, their gradients, and every layer's activations for one epoch."""
        spec, itemsize = self.spec, 4 if self.spec.dtype == "float32" else 8
        params = sum(fan_in * fan_out + (fan_out if spec.bias else 0)
                     for fan_in, fan_out in zip(spec.layers, spec.layers[1:]))
        activations = self.n_samples * sum(spec.layers[1:])
        return (2 * params + activations) * itemsize


def mlp(samples: int, layers: tuple[int, ...], epochs: int, gpu_only: bool = False) -> Workload:
    """A size-sweep workload, named by samples x widest layer: float32 tanh with biases, Xavier init."""
    spec = ModelSpec(layers, activation="tanh", init="xavier", lr=0.01, epochs=epochs, dtype="float32", seed=0)
    return Workload(f"mlp-{samples}x{max(layers)}", spec, samples, sweep=True, gpu_only=gpu_only)


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


def sweep_workload(name: str) -> Workload:
    """The size-sweep workload called `name`, from any sweep."""
    return next(w for w in FULL_SWEEP + GPU_SWEEP if w.name == name)
