"""Hand-written backpropagation in NumPy: the reference every other backend is checked against.

Notation, for layers l = 1..L:
    a_0 = x
    z_l = a_{l-1} W_l + b_l
    a_l = σ(z_l)  for hidden layers,   a_L = z_L  (the output layer is linear)
    L   = mean((a_L - y)^2)            over all samples and outputs
"""

from __future__ import annotations

import numpy as np

from backprop_bench.backends.base import Backend, Framework, TrainResult
from backprop_bench.model import Dataset, ModelSpec, Params, flatten, unflatten

# Each activation σ beside its derivative σ'(z). Both work in place, to keep the
# memory a training needs near its working set: σ overwrites z, which is not needed
# once a = σ(z) is known, and σ' is written in terms of a and overwrites it, as the
# backward pass has no further use for a once it has passed that layer.

def tanh(z):
    return np.tanh(z, out=z)


def d_tanh(a):          # σ'(z) = 1 - tanh²(z) = 1 - a²
    a *= a
    return np.subtract(1.0, a, out=a)


def relu(z):
    return np.maximum(z, 0.0, out=z)


def d_relu(a):          # σ'(z) = 1 if z > 0 else 0, and z > 0 exactly where a > 0
    return np.greater(a, 0.0, out=a)


def sigmoid(z):         # σ(z) = 1 / (1 + e⁻ᶻ)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def d_sigmoid(a):       # σ'(z) = σ(z)(1 - σ(z)) = a - a²
    a -= a * a
    return a


ACTIVATIONS = {
    "identity": (None, None),  # σ(z) = z, σ'(z) = 1: nothing to do
    "tanh": (tanh, d_tanh),
    "relu": (relu, d_relu),
    "sigmoid": (sigmoid, d_sigmoid),
}


def forward(x, weights, biases, activation="identity"):
    """Every layer's output [a_0 = x, a_1, ..., a_L]; a_L is the prediction."""
    sigma, _ = ACTIVATIONS[activation]
    a = [x]
    last = len(weights) - 1
    for l, W in enumerate(weights):
        z = a[-1] @ W                                      # z_l = a_{l-1} W_l
        if biases:
            z += biases[l]                                 #       + b_l
        a.append(z if l == last or sigma is None else sigma(z))
    return a


def backward(a, weights, dW, db, activation="identity"):
    """Gradients of the loss with respect to every W_l and b_l, by the chain rule, written into dW and db.

    `a` is the forward pass's list with the prediction replaced by the error a_L - y.
    The walk back takes each layer's input off that list and overwrites it, so memory
    is freed as it goes. dW and db are lists of arrays shaped like the weights and
    biases, in layer order (db is empty without biases).
    """
    _, dsigma = ACTIVATIONS[activation]
    # delta is dL/dz_l as the walk goes back; it starts at the output layer, which is linear:
    delta = a.pop()                                         # a_L - y
    delta *= 2 / delta.size                                 # dL/dz_L = dL/da_L = 2(a_L - y) / n
    for l in reversed(range(len(weights))):
        a_in = a.pop()                                      # a_{l-1}, the input of layer l
        np.matmul(a_in.T, delta, out=dW[l])                 # dL/dW_l = a_{l-1}ᵀ dL/dz_l
        if db:
            np.add.reduce(delta, axis=0, out=db[l])         # dL/db_l = Σ_samples dL/dz_l
        if l > 0:
            delta = delta @ weights[l].T                    # dL/da_{l-1} = dL/dz_l W_lᵀ
            if dsigma is not None:
                delta *= dsigma(a_in)                       # dL/dz_{l-1} = dL/da_{l-1} ⊙ σ'(z_{l-1})


def loss_and_gradients(x, y, weights, biases, dW, db, activation="identity"):
    """The loss at (weights, biases), with its gradients written into dW and db: one forward and one backward pass."""
    a = forward(x, weights, biases, activation)
    error = a[-1]
    error -= y                                              # a_L - y, in place of the prediction
    loss = np.vdot(error, error) / error.size               # L = mean((a_L - y)²)
    del error                                               # backward frees it once used
    backward(a, weights, dW, db, activation)
    return loss


class FlatParams:
    """θ, every parameter in one vector, with each W_l and b_l a view into it: an update is one operation on θ."""

    def __init__(self, spec: ModelSpec, vector: np.ndarray):
        self.vector = vector
        self.views = unflatten(spec, vector)
        self.weights = [self.views[f"W{l}"] for l in range(1, spec.n_layers + 1)]
        self.biases = [self.views[f"b{l}"] for l in range(1, spec.n_layers + 1)] if spec.bias else []


class NumpyBackend(Backend):
    name = "numpy"
    variant = "handwritten"

    def load(self, params: Params, data: Dataset):
        theta = flatten(self.spec, params)
        return FlatParams(self.spec, theta), FlatParams(self.spec, np.zeros_like(theta)), data.x, data.y

    def run(self, loaded):
        params, grads, x, y = loaded
        lr, activation = self.spec.lr, self.spec.activation
        losses = np.empty(self.spec.epochs, dtype=x.dtype)
        # A diverging run overflows; check_finite reports it with its epoch, so no warnings here.
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(self.spec.epochs):
                losses[epoch] = loss_and_gradients(x, y, params.weights, params.biases,
                                                   grads.weights, grads.biases, activation)
                params.vector -= lr * grads.vector              # θ ← θ - lr ∇θ L: every W_l and b_l at once
        return params, losses

    def fetch(self, trained) -> TrainResult:
        params, losses = trained
        return TrainResult(params.views, losses.astype(np.float64))


class Numpy(Framework):
    name = "numpy"
    packages = ("numpy",)

    @classmethod
    def machine_info(cls) -> dict:
        """NumPy's version and the BLAS that does its matrix products."""
        info = {"numpy": np.__version__}
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
        except Exception:  # older NumPy: no dict form of its config
            info["numpy_blas"] = "unknown"
        return info

    @classmethod
    def matmul(cls, device, a, b):
        return lambda: a @ b


FRAMEWORK = Numpy
VARIANTS = {"handwritten": NumpyBackend}
