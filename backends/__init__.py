"""Backends by name, imported only when asked for, and `train`, which runs one training.

A framework that is not installed makes its backend unavailable with a reason;
importing this package never fails because of it.

A backend of your own is a module with VARIANTS and FRAMEWORK (see base.py and
numpy_backend.py), added to BACKENDS below, or, without touching this file, named in
the environment: BACKPROP_BENCH_BACKENDS="mine=my_package.my_backend" (several
separated by commas). The benchmarks, `compare`, `report` and `ab`'s workers all read
this registry, so they all see it.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from backprop_bench.backends.base import Backend, BackendUnavailable, Framework, TrainingDiverged, TrainResult
from backprop_bench.model import Dataset, ModelSpec, Params, check_params, init_params

__all__ = [
    "BACKENDS", "Backend", "BackendUnavailable", "Framework", "TrainResult", "TrainingDiverged",
    "available", "cases", "check_finite", "framework", "get", "train", "variants",
]

# backend name -> module; each module has VARIANTS, its variants by name, the default first,
# and FRAMEWORK, what the suite asks the framework outside a training.
BACKENDS = {
    "numpy": "backprop_bench.backends.numpy_backend",
    "torch": "backprop_bench.backends.torch_backend",
    "jax": "backprop_bench.backends.jax_backend",
}
BUILT_IN = tuple(BACKENDS)
EXTRA = "BACKPROP_BENCH_BACKENDS"  # NAME=MODULE,...: backends registered from outside this package


def _register_extra() -> None:
    """Add the environment's backends; one that is not NAME=MODULE is kept, unavailable, to say so where asked."""
    for entry in filter(None, (item.strip() for item in os.environ.get(EXTRA, "").split(","))):
        name, _, module = (part.strip() for part in entry.partition("="))
        well_formed = name and module and not any(mark in name for mark in "-[],")
        BACKENDS.setdefault(name if well_formed else entry, module if well_formed else "")


_register_extra()


def _module(name: str):
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if not BACKENDS[name]:
        raise BackendUnavailable(f"{EXTRA}: {name!r} is not NAME=MODULE (a name without '-' or '[')")
    try:
        return importlib.import_module(BACKENDS[name])
    except ImportError as err:
        fix = f"install it with: pip install -e '.[{name}]'" if name in BUILT_IN else f"registered by {EXTRA}"
        raise BackendUnavailable(f"backend {name!r} is unavailable: {err} ({fix})") from None


def variants(name: str) -> dict[str, type[Backend]]:
    """The variants of backend `name`, the default first."""
    return _module(name).VARIANTS


def framework(name: str) -> type[Framework]:
    """What backend `name`'s framework answers outside a training (see base.Framework)."""
    return _module(name).FRAMEWORK


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
