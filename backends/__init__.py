"""Backends by name, imported only when asked for, and `train`, which runs one training.

A framework that is not installed makes its backend unavailable with a reason;
importing this package never fails because of it.
"""

from __future__ import annotations

import importlib

import numpy as np

from backends.base import Backend, BackendUnavailable, TrainingDiverged, TrainResult
from backprop_bench.model import Dataset, ModelSpec, Params, check_params, init_params

__all__ = [
    "BACKENDS", "Backend", "BackendUnavailable", "TrainResult", "TrainingDiverged",
    "available", "cases", "check_finite", "get", "train", "variants",
]

# backend name -> module; each module has VARIANTS, its variants by name, the default first.
BACKENDS = {
    "numpy": "backends.numpy_backend",
    "torch": "backends.torch_backend",
    "jax": "backends.jax_backend",
}


def _module(name: str):
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[name])
    except ImportError as err:
        raise BackendUnavailable(
            f"backend {name!r} is unavailable: {err} (install it with: pip install -e '.[{name}]')"
        ) from None


def variants(name: str) -> dict[str, type[Backend]]:
    """The variants of backend `name`, the default first."""
    return _module(name).VARIANTS


def get(name: str, variant: str | None = None) -> type[Backend]:
    found = variants(name)
    if variant is None:
        return next(iter(found.values()))
    if variant not in found:
        raise BackendUnavailable(f"unknown variant {variant!r} of {name}; choose one of {', '.join(found)}")
    return found[variant]


def available() -> dict[str, str | None]:
    """Every backend name mapped to None if it can run here, else the reason it cannot."""
    reasons = {}
    for name in BACKENDS:
        try:
            _module(name)
            reasons[name] = None
        except BackendUnavailable as err:
            reasons[name] = str(err)
    return reasons


def cases() -> list[tuple[str, str, str, str | None]]:
    """Every (backend, variant, device) combination, with None or the reason it cannot run here."""
    found = []
    for name in BACKENDS:
        try:
            by_variant = variants(name)
        except BackendUnavailable as err:
            found.append((name, "-", "cpu", str(err)))
            continue
        for variant, cls in by_variant.items():
            for device in cls.supports:
                found.append((name, variant, device, cls.unavailable(device)))
    return found


def check_finite(result: TrainResult) -> None:
    """Raise TrainingDiverged naming the first epoch whose loss was not finite."""
    bad = np.flatnonzero(~np.isfinite(result.losses))
    if bad.size:
        epoch = int(bad[0])
        raise TrainingDiverged(
            f"training diverged: the loss became {result.losses[epoch]} at epoch {epoch}; try a smaller lr"
        )
    for name, value in result.params.items():
        if not np.all(np.isfinite(value)):
            raise TrainingDiverged(f"training diverged: {name} became non-finite in the last update; try a smaller lr")


def train(
    spec: ModelSpec,
    data: Dataset,
    backend: str = "numpy",
    variant: str | None = None,
    device: str = "cpu",
    params: Params | None = None,
) -> TrainResult:
    """Train `spec` on `data` from `params` (default: the spec's seeded init) and check the result."""
    data.check_fits(spec)
    if params is None:
        params = init_params(spec)
    else:
        check_params(spec, params)
        params = {name: np.asarray(params[name], spec.dtype) for name in spec.param_names()}
    trainer = get(backend, variant)(spec, device)
    result = trainer.fetch(trainer.run(trainer.load(params, data.as_dtype(spec.dtype))))
    check_finite(result)
    return result
