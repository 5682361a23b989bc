"""Hand-written backpropagation written once, for any array library of the Python array API standard.

The same forward and backward as the NumPy backend's (backends/numpy_backend.py), in
its notation, for layers l = 1..L:
    a_0 = x
    z_l = a_{l-1} W_l + b_l
    a_l = σ(z_l)  for hidden layers,   a_L = z_L  (the output layer is linear)
    L   = mean((a_L - y)^2)            over all samples and outputs

The one code runs on torch tensors (eagerly, under inference_mode), on JAX arrays
(traced inside jit) and on NumPy arrays. `xp` is the arrays' namespace, as
array_api_compat.array_namespace gives it, and every line uses only what the standard
defines: @, the arithmetic operators and their in-place forms, .T, and xp.tanh,
xp.exp, xp.clip, xp.astype, xp.sum. Like the NumPy backend, it writes over arrays it
made itself and has no further use for (`z += b`, `delta *= σ'`): where arrays can be
written (NumPy, torch) that spares an allocation and a pass over memory each time,
which at 4096 x 1024 is most of the difference between a hand-written training and its
matrix products; where they cannot (JAX), Python makes `x += y` mean `x = x + y`, and
XLA reuses the buffers itself. It never writes into the caller's arrays: the data and
the weights are only read.
"""

from __future__ import annotations

import math

# Each activation σ beside its derivative σ'(z), written in terms of a = σ(z): the
# forward pass keeps a, and the backward pass needs nothing else.

def tanh(xp, z):
    return xp.tanh(z)


def d_tanh(xp, a):      # σ'(z) = 1 - tanh²(z) = 1 - a², written over a
    a *= a
    a *= -1
    a += 1
    return a


def relu(xp, z):
    return xp.clip(z, min=0)


def d_relu(xp, a):      # σ'(z) = 1 if z > 0 else 0, and z > 0 exactly where a > 0
    return xp.astype(a > 0, a.dtype)


def sigmoid(xp, z):     # σ(z) = 1 / (1 + e⁻ᶻ)
    return 1 / (1 + xp.exp(-z))


def d_sigmoid(xp, a):   # σ'(z) = σ(z)(1 - σ(z)) = a - a², written over a
    a -= a * a
    return a


ACTIVATIONS = {
    "identity": (None, None),  # σ(z) = z, σ'(z) = 1: nothing to do
    "tanh": (tanh, d_tanh),
    "relu": (relu, d_relu),
    "sigmoid": (sigmoid, d_sigmoid),
}


def forward(xp, x, weights, biases, activation="identity"):
    """Every layer's output [a_0 = x, a_1, ..., a_L]; a_L is the prediction."""
    sigma, _ = ACTIVATIONS[activation]
    a = [x]
    last = len(weights) - 1
    for l, W in enumerate(weights):
        z = a[-1] @ W                                      # z_l = a_{l-1} W_l
        if biases:
            z += biases[l]                                 #       + b_l
        a.append(z if l == last or sigma is None else sigma(xp, z))  # a_l = σ(z_l)
    return a


def backward(xp, a, error, weights, has_biases, activation="identity"):
    """Gradients of the loss with respect to every W_l and b_l, by the chain rule: (dW, db), in layer order.

    `a` is the forward pass's list of layer inputs [a_0, ..., a_{L-1}] and `error` is
    a_L - y; both are written over as the walk goes back (never a_0, the data). db is
    empty without biases.
    """
    _, dsigma = ACTIVATIONS[activation]
    n_layers = len(weights)
    dW, db = [None] * n_layers, [None] * n_layers if has_biases else []
    # delta is dL/dz_l as the walk goes back; it starts at the output layer, which is linear:
    delta = error
    delta *= 2 / math.prod(error.shape)                     # dL/dz_L = dL/da_L = 2(a_L - y) / n
    for l in reversed(range(n_layers)):
        a_in = a[l]                                         # a_{l-1}, the input of layer l
        dW[l] = a_in.T @ delta                              # dL/dW_l = a_{l-1}ᵀ dL/dz_l
        if has_biases:
            db[l] = xp.sum(delta, axis=0)                   # dL/db_l = Σ_samples dL/dz_l
        if l > 0:
            delta = delta @ weights[l].T                    # dL/da_{l-1} = dL/dz_l W_lᵀ
            if dsigma is not None:
                delta *= dsigma(xp, a_in)                   # dL/dz_{l-1} = dL/da_{l-1} ⊙ σ'(z_{l-1})
    return dW, db


def loss_and_gradients(xp, x, y, weights, biases, activation="identity"):
    """The loss at (weights, biases) and its gradients (dW, db): one forward and one backward pass."""
    a = forward(xp, x, weights, biases, activation)
    error = a.pop() - y                                     # a_L - y
    loss = xp.sum(error * error) / math.prod(error.shape)   # L = mean((a_L - y)²)
    return loss, *backward(xp, a, error, weights, bool(biases), activation)


def weights_and_biases(params: dict) -> tuple[list, list]:
    """The W_l and the b_l (none without biases) of parameters by name (W1, b1, W2, ...), in layer order."""
    n_layers = sum(name.startswith("W") for name in params)
    return ([params[f"W{l}"] for l in range(1, n_layers + 1)],
            [params[f"b{l}"] for l in range(1, n_layers + 1) if f"b{l}" in params])


def by_name(dW: list, db: list) -> dict:
    """Gradients in layer order, by their parameters' names: dW_l as W{l}, db_l as b{l}."""
    return {**{f"W{l}": g for l, g in enumerate(dW, 1)}, **{f"b{l}": g for l, g in enumerate(db, 1)}}


def missing() -> str | None:
    """None if array_api_compat, which gives each framework's namespace, is installed; else what to do."""
    try:
        import array_api_compat  # noqa: F401
    except ImportError:
        return "the hand-written variants need array-api-compat: pip install array-api-compat"
    return None


def namespace(array):
    """The array API namespace of `array`'s library (array_api_compat's, for NumPy and torch; jax.numpy)."""
    from array_api_compat import array_namespace

    return array_namespace(array)
