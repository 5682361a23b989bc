"""The one seam between the shared model and the frameworks.

A backend is built for one ModelSpec and one device, then trains in three steps,
so that a benchmark can time the middle one alone:

    load(params, data)  untimed: NumPy arrays in, framework arrays on the device out
    run(loaded)         timed:   all epochs of gradient descent; returns when the work is done
    fetch(trained)      untimed: framework arrays out, NumPy params and loss history back

`run` consumes what `load` returned (parameters are updated in place or donated),
so every training starts from a fresh `load`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
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


class Backend(ABC):
    name: ClassVar[str]
    variant: ClassVar[str]
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
