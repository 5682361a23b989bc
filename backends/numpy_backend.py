"""Hand-written backpropagation in NumPy: the reference every other backend is checked against.

Notation, for layers l = 1..L:
    a_0 = x
    z_l = a_{l-1} W_l + b_l
    a_l = σ(z_l)  for hidden layers,   a_L = z_L  (the output layer is linear)
    L   = mean((a_L - y)^2)            over all samples and outputs
"""

from __future__ import annotations

import numpy as np

from backends.base import Backend, TrainResult
from backprop_bench.model import Dataset, Params


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# Each activation σ beside its derivative σ'(z), written in terms of a = σ(z),
# so that the backward pass needs only the activations the forward pass kept.
ACTIVATIONS = {
    "identity": (None, None),                            # σ(z) = z         σ'(z) = 1
    "tanh": (np.tanh, lambda a: 1.0 - a * a),            # σ(z) = tanh z    σ'(z) = 1 - tanh² z = 1 - a²
    "relu": (lambda z: np.maximum(z, 0.0), lambda a: a > 0),  # σ(z) = max(z, 0)  σ'(z) = 1 if z > 0 else 0
    "sigmoid": (_sigmoid, lambda a: a * (1.0 - a)),      # σ(z) = 1/(1+e⁻ᶻ) σ'(z) = σ(z)(1 - σ(z)) = a(1 - a)
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


def backward(a, y, weights, activation="identity"):
    """Gradients of the loss with respect to every W_l and b_l, by the chain rule.

    Returns (dW, db), lists in layer order. `delta` is dL/dz_l as it walks back.
    """
    _, dsigma = ACTIVATIONS[activation]
    L = len(weights)
    dW, db = [None] * L, [None] * L
    delta = 2 * (a[L] - y) / y.size                         # dL/dz_L = dL/da_L = 2(a_L - y) / n
    for l in reversed(range(L)):
        dW[l] = a[l].T @ delta                              # dL/dW_l = a_{l-1}ᵀ dL/dz_l
        db[l] = delta.sum(axis=0)                           # dL/db_l = Σ_samples dL/dz_l
        if l > 0:
            delta = delta @ weights[l].T                    # dL/da_{l-1} = dL/dz_l W_lᵀ
            if dsigma is not None:
                delta *= dsigma(a[l])                       # dL/dz_{l-1} = dL/da_{l-1} ⊙ σ'(z_{l-1})
    return dW, db


def loss_and_gradients(x, y, weights, biases, activation="identity"):
    """The loss at (weights, biases) and its gradients (dW, db): one forward and one backward pass."""
    a = forward(x, weights, biases, activation)
    error = a[-1] - y
    return np.vdot(error, error) / error.size, *backward(a, y, weights, activation)


class NumpyBackend(Backend):
    name = "numpy"
    variant = "handwritten"

    def load(self, params: Params, data: Dataset):
        weights = [params[f"W{l}"].copy() for l in range(1, self.spec.n_layers + 1)]
        biases = [params[f"b{l}"].copy() for l in range(1, self.spec.n_layers + 1)] if self.spec.bias else []
        return weights, biases, data.x, data.y

    def run(self, loaded):
        weights, biases, x, y = loaded
        lr, activation = self.spec.lr, self.spec.activation
        losses = np.empty(self.spec.epochs, dtype=x.dtype)
        # A diverging run overflows; check_finite reports it with its epoch, so no warnings here.
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(self.spec.epochs):
                losses[epoch], dW, db = loss_and_gradients(x, y, weights, biases, activation)
                for W, g in zip(weights, dW):
                    W -= lr * g                             # W ← W - lr dL/dW
                for b, g in zip(biases, db):
                    b -= lr * g                             # b ← b - lr dL/db
        return weights, biases, losses

    def fetch(self, trained) -> TrainResult:
        weights, biases, losses = trained
        params = {}
        for l, W in enumerate(weights, start=1):
            params[f"W{l}"] = W
            if biases:
                params[f"b{l}"] = biases[l - 1]
        return TrainResult(params, losses.astype(np.float64))


VARIANTS = {"handwritten": NumpyBackend}
