"""The shared model: spec, presets, seeded initial weights, data and loss.

Every backend trains the network described here. Weights and data are drawn
once, in NumPy, from here; no backend draws its own randomness.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np

from backprop_bench.errors import UserError

ACTIVATIONS = ("identity", "tanh", "relu", "sigmoid")
DTYPES = ("float64", "float32")
INITS = ("notebook", "xavier", "he")

Params = dict[str, np.ndarray]  # "W1", "b1", "W2", ... ; W is (fan_in, fan_out), b is (fan_out,)

# How closely a backend's trained weights and losses must match the NumPy backend's,
# per dtype. The backends do the same maths in a different order (fused
# multiply-adds, BLAS blocking, pairwise sums), so every op may differ in its last
# bit, and each epoch starts from the last one's result: the gap grows with the
# number of epochs. The largest gaps measured on the equivalence suite after 200
# epochs: float64 1.8e-13 relative (7e-17 absolute), float32 9.4e-5 relative on an
# element whose absolute gap was 3.7e-8, well inside atol. A wrong gradient, a float32
# leak into a float64 run, or a missed update is orders of magnitude outside both.
TOLERANCES = {
    "float64": {"rtol": 1e-9, "atol": 1e-12},
    "float32": {"rtol": 2e-4, "atol": 2e-6},
}


@dataclass(frozen=True)
class ModelSpec:
    """A fully connected network trained by plain gradient descent on the MSE loss.

    `layers` lists the widths from input to output, e.g. (1, 1, 1). Hidden layers
    use `activation`; the output layer is always linear.
    """

    layers: tuple[int, ...]
    bias: bool = True
    activation: str = "identity"
    lr: float = 0.01
    epochs: int = 1000
    dtype: str = "float64"
    seed: int = 42
    init: str = "notebook"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if len(self.layers) < 2:
            raise UserError(f"layers {self.layers} needs at least an input and an output width")
        if not all(isinstance(n, (int, np.integer)) and n >= 1 for n in self.layers):
            raise UserError(f"layers {self.layers}: every width must be a whole number >= 1")
        if self.activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.init not in INITS:
            raise UserError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise UserError(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"lr must be a finite number > 0, got {self.lr!r}")

    @property
    def n_layers(self) -> int:
        return len(self.layers) - 1

    def param_names(self) -> list[str]:
        """Parameter names in the order they are drawn: W1, b1, W2, b2, ..."""
        names = []
        for layer in range(1, self.n_layers + 1):
            names.append(f"W{layer}")
            if self.bias:
                names.append(f"b{layer}")
        return names

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for layer, (fan_in, fan_out) in enumerate(zip(self.layers, self.layers[1:]), start=1):
            shapes[f"W{layer}"] = (fan_in, fan_out)
            if self.bias:
                shapes[f"b{layer}"] = (fan_out,)
        return shapes

    def with_(self, **changes) -> ModelSpec:
        return replace(self, **changes)

    def describe(self) -> str:
        """A short name, e.g. '1-64-1 tanh bias float32'."""
        return "-".join(map(str, self.layers)) + f" {self.activation} {'bias' if self.bias else 'no-bias'} {self.dtype}"


@dataclass(frozen=True)
class Dataset:
    """Training data: `x` is (samples, input width), `y` is (samples, output width)."""

    x: np.ndarray
    y: np.ndarray

    def check_fits(self, spec: ModelSpec) -> None:
        for name, arr, width in (("x", self.x, spec.layers[0]), ("y", self.y, spec.layers[-1])):
            if arr.ndim != 2 or arr.shape[1] != width or arr.shape[0] < 1:
                raise UserError(
                    f"{name} has shape {arr.shape}, but layers {'-'.join(map(str, spec.layers))} "
                    f"need (samples, {width}) with samples >= 1"
                )
        if self.x.shape[0] != self.y.shape[0]:
            raise UserError(f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]}")
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.y))):
            raise UserError("x and y must hold finite numbers only")

    def as_dtype(self, dtype: str) -> Dataset:
        return Dataset(np.ascontiguousarray(self.x, dtype=dtype), np.ascontiguousarray(self.y, dtype=dtype))


@dataclass(frozen=True)
class Preset:
    """A named model and its data, e.g. the notebook's two networks."""

    name: str
    spec: ModelSpec
    data: Dataset
    about: str = field(default="")


def notebook_data(intercept: int) -> Dataset:
    """The notebook's data: x = 0..9 as a column, y = 2x + intercept (integers, as there)."""
    x = np.array([np.arange(0, 10)]).T
    return Dataset(x, 2 * x + intercept)


PRESETS = {
    "seed-linear": Preset(
        "seed-linear", ModelSpec((1, 1, 1), bias=False), notebook_data(0),
        "the notebook's y = 2x: layers 1-1-1, no bias, lr 0.01, 1000 epochs, seed 42",
    ),
    "seed-affine": Preset(
        "seed-affine", ModelSpec((1, 1, 1), bias=True), notebook_data(3),
        "the notebook's y = 2x + 3: layers 1-1-1, with bias, lr 0.01, 1000 epochs, seed 42",
    ),
}


def default_init(activation: str) -> str:
    """The init for a network of your own: He for relu (it halves the variance), Xavier otherwise.

    The notebook's init (weights x 0.01) stays the presets'; on a 3-32-32-1 relu network it
    barely learns (loss 1.03 to 1.01 in 300 epochs, against 2.68 to 0.018 with He).
    """
    return "he" if activation == "relu" else "xavier"


SPEC_KEYS = ("activation", "bias", "init", "lr", "epochs", "samples", "dtype", "name")
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def parse_spec(text: str) -> tuple[ModelSpec, int, str]:
    """A network written as widths then optional settings, e.g. '3,128,1:activation=relu:samples=1024'.

    Returns the spec, the number of synthetic samples (default 64) and a name (default
    the widths, '3-128-1'). Raises ValueError naming the part of `text` that is wrong.
    """
    widths, *settings = text.split(":")
    try:
        layers = tuple(int(width) for width in widths.split(","))
    except ValueError:
        raise UserError(f"{text!r}: the widths must read like 3,128,1, got {widths!r}") from None
    fields: dict = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if "," in value and key in SPEC_KEYS:  # samples=2048,epochs=50: a comma where a colon belongs
            raise UserError(f"{text!r}: settings are separated by ':', not ',': write "
                             f"{setting.replace(',', ':')!r} (e.g. 3,128,1:samples=2048:epochs=50)")
        if key not in SPEC_KEYS or not equals:
            raise UserError(f"{text!r}: {setting!r} is not key=value with key one of {', '.join(SPEC_KEYS)}")
        fields[key] = value
    try:
        samples = int(fields.pop("samples", 64))
        name = fields.pop("name", "-".join(map(str, layers)))
        for key, convert in (("lr", float), ("epochs", int), ("bias", lambda v: BOOLEANS[v.lower()])):
            if key in fields:
                fields[key] = convert(fields[key])
    except (KeyError, ValueError):
        raise UserError(f"{text!r}: samples and epochs take whole numbers, lr a number, "
                         f"bias true or false") from None
    if samples < 1:
        raise UserError(f"{text!r}: samples must be >= 1, got {samples}")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise UserError(f"{text!r}: a name takes letters, digits, '.', '_' and '-' only, got {name!r}")
    fields.setdefault("init", default_init(fields.get("activation", "identity")))
    spec = ModelSpec(layers, **fields)
    check_memory(spec, samples)
    return spec, samples, name


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def init_params(spec: ModelSpec) -> Params:
    """Initial weights, drawn in layer order W1, b1, W2, b2, ... from one seeded generator.

    The default 'notebook' init is the notebook's own: the legacy global-state
    generator, W = rand(fan_in, fan_out) * 0.01 and b = rand(fan_out), so seed 42
    gives the notebook's starting weights to the last bit. 'xavier' and 'he'
    scale normal draws for deeper, wider models; their biases start at zero.
    """
    rng = np.random.RandomState(spec.seed)
    params = {}
    for name, shape in spec.param_shapes().items():
        fan_in = shape[0]
        if spec.init == "notebook":
            value = rng.rand(*shape) * 0.01 if name[0] == "W" else rng.rand(*shape)
        elif name[0] == "b":
            value = np.zeros(shape)
        elif spec.init == "xavier":
            value = rng.randn(*shape) * math.sqrt(2.0 / (shape[0] + shape[1]))
        else:  # he
            value = rng.randn(*shape) * math.sqrt(2.0 / fan_in)
        params[name] = value.astype(spec.dtype)
    return params


def check_params(spec: ModelSpec, params: Params) -> None:
    """Raise ValueError unless `params` holds exactly the spec's parameters, each of its shape."""
    shapes = spec.param_shapes()
    if set(params) != set(shapes):
        raise UserError(f"params have {sorted(params)}, but the spec needs {sorted(shapes)}")
    for name, shape in shapes.items():
        if np.shape(params[name]) != shape:
            raise UserError(f"{name} has shape {np.shape(params[name])}, but the spec needs {shape}")


def flatten(spec: ModelSpec, params: Params) -> np.ndarray:
    """Every parameter in one vector θ, in the spec's order W1, b1, W2, b2, ..."""
    return np.concatenate([np.ravel(params[name]) for name in spec.param_names()])


def unflatten(spec: ModelSpec, theta) -> dict:
    """The parameters by name, sliced in order out of θ: views for a NumPy θ, traced slices for JAX."""
    params, start = {}, 0
    for name, shape in spec.param_shapes().items():
        size = math.prod(shape)
        params[name] = theta[start:start + size].reshape(shape)
        start += size
    return params


def synthetic_data(spec: ModelSpec, samples: int, seed: int | None = None) -> Dataset:
    """A seeded regression task that fits `spec`: x ~ N(0, 1), y = tanh(x A) B + c.

    The target is smooth and bounded whatever the widths, so every activation can
    learn it and large models stay numerically tame.
    """
    if not isinstance(samples, (int, np.integer)) or samples < 1:
        raise UserError(f"samples must be a whole number >= 1, got {samples!r}")
    rng = np.random.default_rng(spec.seed if seed is None else seed)
    n_in, n_out = spec.layers[0], spec.layers[-1]
    x = rng.standard_normal((samples, n_in))
    a = rng.standard_normal((n_in, n_out)) / math.sqrt(n_in)
    b = rng.standard_normal((n_out, n_out)) / math.sqrt(n_out)
    y = np.tanh(x @ a) @ b + rng.standard_normal(n_out) * 0.1
    return Dataset(x.astype(spec.dtype), y.astype(spec.dtype))


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The loss every backend minimizes: the mean of the squared error over all elements."""
    return float(np.mean(np.square(y_true - y_pred)))


def working_set_bytes(spec: ModelSpec, samples: int) -> int:
    """Parameters, their gradients, and every layer's activations for one epoch."""
    params = sum(fan_in * fan_out + (fan_out if spec.bias else 0)
                 for fan_in, fan_out in zip(spec.layers, spec.layers[1:]))
    activations = samples * sum(spec.layers[1:])
    return (2 * params + activations) * np.dtype(spec.dtype).itemsize


def training_bytes(spec: ModelSpec, samples: int) -> int:
    """The least memory one training needs: its working set, the data and the loss history.

    The data and the losses count twice, as drawn or fetched (float64) and in the spec's
    dtype. The frameworks need more than this (autograd keeps extra buffers): it is a
    floor, to refuse early what cannot fit, not a prediction.
    """
    itemsize = np.dtype(spec.dtype).itemsize
    per_row = (spec.layers[0] + spec.layers[-1]) * (8 + itemsize)
    return working_set_bytes(spec, samples) + samples * per_row + spec.epochs * (8 + itemsize)


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(spec: ModelSpec, samples: int) -> None:
    """Raise ValueError, before anything is allocated, if the training cannot fit in this machine's memory."""
    needed, have = training_bytes(spec, samples), machine_memory_bytes()
    if needed > have:
        raise UserError(
            f"layers {'-'.join(map(str, spec.layers))} on {samples} samples for {spec.epochs} epochs "
            f"need at least {needed / 1e9:.3g} GB, more than this machine's {have / 1e9:.3g} GB; "
            f"use fewer samples, narrower layers or fewer epochs"
        )


def epoch_flops(spec: ModelSpec, samples: int) -> int:
    """Floating-point operations of one epoch's matrix products (forward and backward).

    Each layer's forward product is 2*n*fan_in*fan_out; the backward takes one
    product for dL/dW and, for every layer but the first, one for dL/da_prev.
    Element-wise work (activations, loss, update) is left out: it is small next to
    the products in the compute-bound workloads this number is meant for.
    """
    total = 0
    for layer, (fan_in, fan_out) in enumerate(zip(spec.layers, spec.layers[1:])):
        products = 2 if layer == 0 else 3
        total += products * 2 * samples * fan_in * fan_out
    return total
