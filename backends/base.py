"""The one seam between the shared model and the frameworks.

A backend is built for one ModelSpec and one device, then trains in three steps,
so that a benchmark can time the middle one alone:

    load(params, data)  untimed: NumPy arrays in, framework arrays on the device out
    run(loaded)         timed:   all epochs of gradient descent; returns when the work is done
    fetch(trained)      untimed: framework arrays out, NumPy params and loss history back

`run` consumes what `load` returned (parameters are updated in place or donated),
so every training starts from a fresh `load`.

Beside its variants, each backend module names its `Framework`: what the suite asks a
framework outside a training (its versions and devices for a run's record, a matrix
product for the calibration, peak memory on a GPU). Nothing outside backends/ asks a
framework by name, so a new backend is one module plus one line in backends.BACKENDS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar

import numpy as np

from backprop_bench.errors import UserError
from backprop_bench.model import Dataset, ModelSpec, Params


@dataclass
class TrainResult:
    """Trained parameters and the loss at every epoch, computed before that epoch's update."""

    params: Params
    losses: np.ndarray


class BackendUnavailable(UserError):
    """The framework, variant or device asked for cannot run here; the message says why."""


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite numbers."""


class Framework:
    """What the suite asks a framework outside a training; the defaults fit a framework that has none of it."""

    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]] = ()  # its distributions, whose versions a run and an `ab` side record
    # Whether its calls can return before their work is done (a GPU's queue, JAX's asynchronous dispatch), so
    # that a `run` must wait for it: benchmarks/sync_check.py checks those. NumPy computes as it is called.
    queues_work: ClassVar[bool] = False
    cuda_stream: ClassVar[bool] = False  # whether CUDA events on torch's current stream see its work (sync_check)

    @classmethod
    def versions(cls) -> dict[str, str]:
        """Each of its installed distributions' version, read without importing the framework."""
        found = {}
        for package in cls.packages:
            try:
                found[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                pass
        return found

    @classmethod
    def machine_info(cls) -> dict:
        """What a saved run records about it: its version (under the backend's name), threads and devices."""
        return cls.versions()

    @classmethod
    def matmul(cls, device: str, a: np.ndarray, b: np.ndarray) -> Callable[[], Any] | None:
        """A call that multiplies a by b on `device` and returns when the product is done (the calibration);
        None where it has no matrix product of its own to time."""
        return None

    @classmethod
    def cuda_peak_bytes(cls, run: Callable[[], Any]) -> int:
        """Its allocator's peak on the GPU over `run`, less what was in use before."""
        raise BackendUnavailable(f"{cls.name} cannot measure its memory on cuda")


class Backend(ABC):
    name: ClassVar[str]
    variant: ClassVar[str]
    # A variant the benchmarks leave out unless asked (--with-compile): one that takes minutes to build.
    opt_in: ClassVar[bool] = False
    supports: ClassVar[tuple[str, ...]] = ("cpu",)  # devices it can use where they exist
    # Where it compiles for new shapes, if it compiles: "load" (ahead of time, untimed) or
    # "run" (on the first timed call). The benchmarks report compile time from it.
    compiles_in: ClassVar[str | None] = None
    # The variant of the same framework that trains exactly as this one does, but with
    # gradients written by hand where this one asks autograd: their ratio is what
    # autograd costs. None where there is no such twin.
    handwritten: ClassVar[str | None] = None

    def __init__(self, spec: ModelSpec, device: str = "cpu"):
        if reason := self.unavailable(device):
            raise BackendUnavailable(reason)
        self.spec = spec
        self.device = device

    @classmethod
    def devices(cls) -> list[str]:
        """The devices this backend can train on, on this machine."""
        return ["cpu"]

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        """None if this variant can train on `device` here, else the reason it cannot."""
        if device in cls.devices():
            return None
        return f"device {device!r} is not available to {cls.name} here (available: {', '.join(cls.devices())})"

    @abstractmethod
    def load(self, params: Params, data: Dataset) -> Any: ...

    @abstractmethod
    def run(self, loaded: Any) -> Any: ...

    @abstractmethod
    def fetch(self, trained: Any) -> TrainResult: ...
