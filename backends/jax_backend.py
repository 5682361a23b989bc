"""JAX: jax.value_and_grad, compiled with jit, on the CPU or a CUDA GPU; and the hand-written gradients.

Three variants: `jit-loop` puts all epochs inside one jitted lax.scan (the way the
JAX docs recommend for speed: one dispatch per training), and `jit-step` jits one
epoch and loops in Python (one dispatch per epoch), to show what the loop costs;
`handwritten` is jit-loop with the gradients of backends/handwritten.py in place of
jax.value_and_grad, and nothing else changed. All are compiled ahead of time
(`jit(f).lower(...).compile()`) when the data is loaded, so the timed call is the
executable alone.
"""

from __future__ import annotations

import contextlib
import os
from functools import partial

# Trap: on a GPU, JAX takes 75% of its memory when it starts. This suite runs torch
# beside JAX in one process, and measures memory in fresh processes beside that one;
# both need JAX to allocate as it goes. Set it before JAX starts; a user's setting wins.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402  (after the setting above)
import jax.numpy as jnp
import numpy as np

from backprop_bench.backends import handwritten
from backprop_bench.backends.base import Backend, Framework, TrainResult
from backprop_bench.model import Dataset, ModelSpec, Params, flatten, unflatten

# jax.nn.relu, not jnp.maximum(z, 0): the latter's gradient at exactly 0 is 0.5,
# while NumPy's and torch's relu use 0 there.
ACTIVATIONS = {"identity": None, "tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}


def forward(params: dict, x, n_layers: int, activation: str):
    sigma = ACTIVATIONS[activation]
    a = x
    for l in range(1, n_layers + 1):
        a = a @ params[f"W{l}"]
        if f"b{l}" in params:
            a = a + params[f"b{l}"]
        if sigma is not None and l < n_layers:
            a = sigma(a)
    return a


def mse(params, x, y, n_layers, activation):
    return jnp.mean(jnp.square(forward(params, x, n_layers, activation) - y))


def step(theta, x, y, spec: ModelSpec):
    """One epoch on the flat parameter vector θ: θ - lr ∇θ L, and the loss before the update.

    Why flat, as in the NumPy backend: the update is one fused op rather than one per
    parameter. On the CPU that decides the speed of small loops, because XLA compiles a
    while loop into one function only when its body touches under 1 KiB; otherwise each
    fused op of each epoch is a separate call into its runtime. With a dict of parameters,
    seed-affine's loop body has five fused ops, each reading x and y, and goes over
    (about 700 ns/epoch, against 60 flat).
    """
    loss, grad = jax.value_and_grad(lambda t: mse(unflatten(spec, t), x, y, spec.n_layers, spec.activation))(theta)
    return theta - spec.lr * grad, loss


def handwritten_step(theta, x, y, spec: ModelSpec):
    """One epoch as `step`, with the gradients of backends/handwritten.py in place of jax.value_and_grad."""
    weights, biases = handwritten.weights_and_biases(unflatten(spec, theta))
    loss, dW, db = handwritten.loss_and_gradients(jnp, x, y, weights, biases, spec.activation)
    grads = handwritten.by_name(dW, db)
    grad = jnp.concatenate([jnp.ravel(grads[name]) for name in spec.param_names()])  # ∇θ L, in θ's order
    return theta - spec.lr * grad, loss


def _device(device: str):
    return jax.devices("gpu" if device == "cuda" else "cpu")[0]


class JaxLoop(Backend):
    name = "jax"
    variant = "jit-loop"
    supports = ("cpu", "cuda")
    compiles_in = "load"
    handwritten = "handwritten"

    @classmethod
    def devices(cls) -> list[str]:
        try:
            return ["cpu", "cuda"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:  # no GPU platform in this jaxlib
            return ["cpu"]

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        self._device = _device(device)
        self._step = partial(step, spec=spec)
        self._compiled = {}  # (x shape, y shape, dtype) -> the executable `run` calls

    def train_all(self, theta, x, y):
        """Every epoch in one scan: the trained θ and the loss of each epoch."""
        return jax.lax.scan(lambda t, _: self._step(t, x, y), theta, length=self.spec.epochs)

    def initial_state(self, theta: np.ndarray):
        """What the timed function starts from: here θ alone."""
        return theta

    def timed_function(self):
        """What `run` calls once per training (jitted, parameters donated)."""
        return jax.jit(self.train_all, donate_argnums=0)

    def config(self):
        """JAX settings for this run alone, leaving every other JAX computation as it was.

        float64 needs x64 switched on (JAX is float32 otherwise); "highest" keeps
        float32 matrix products out of TF32 on GPUs, as the torch backend does.
        """
        stack = contextlib.ExitStack()
        stack.enter_context(jax.enable_x64(self.spec.dtype == "float64"))
        stack.enter_context(jax.default_matmul_precision("highest"))
        return stack

    def load(self, params: Params, data: Dataset):
        """Arrays on the device, and the function compiled ahead of time for their shapes.

        Compiling here, under config(), leaves `run` a bare call of the executable:
        no tracing, no cache lookup, no settings to switch (about 8 us per call less).
        """
        state = self.initial_state(flatten(self.spec, params))
        with self.config():
            # device_put returns before the copy is done: wait, or the timed call would.
            loaded = jax.block_until_ready(jax.device_put((state, data.x, data.y), self._device))
            key = (data.x.shape, data.y.shape, str(data.x.dtype))
            if key not in self._compiled:
                self._compiled[key] = self.timed_function().lower(*loaded).compile()
        return self._compiled[key], loaded

    def run(self, loaded):
        train, args = loaded
        return jax.block_until_ready(train(*args))

    def fetch(self, trained) -> TrainResult:
        theta, losses = trained
        return TrainResult(unflatten(self.spec, np.asarray(theta)), np.asarray(losses, dtype=np.float64))


class JaxStep(JaxLoop):
    """One jitted epoch per Python iteration: a dispatch per epoch."""

    variant = "jit-step"
    handwritten = None

    def initial_state(self, theta: np.ndarray):
        """(θ, the loss history, the epoch): the history preallocated, so memory does not grow per epoch."""
        return theta, np.zeros(self.spec.epochs, self.spec.dtype), np.int32(0)

    def step_into(self, state, x, y):
        """One epoch, its loss written into the history in place (the state is donated)."""
        theta, losses, epoch = state
        theta, loss = self._step(theta, x, y)
        return theta, losses.at[epoch].set(loss), epoch + 1

    def timed_function(self):
        return jax.jit(self.step_into, donate_argnums=0)

    def run(self, loaded):
        step_once, (state, x, y) = loaded
        for _ in range(self.spec.epochs):
            state = step_once(state, x, y)
        theta, losses, _ = jax.block_until_ready(state)
        return theta, losses


class JaxHandwritten(JaxLoop):
    """jit-loop with the gradients written by hand: every epoch in one jitted scan, no jax.grad anywhere.

    jax.numpy is the array API namespace of JAX's arrays (array_api_compat returns it
    as it is), so the shared code is traced as written.
    """

    variant = "handwritten"
    handwritten = None

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        self._step = partial(handwritten_step, spec=spec)


class Jax(Framework):
    name = "jax"
    packages = ("jax", "jaxlib")
    queues_work = True

    @classmethod
    def machine_info(cls) -> dict:
        return {"jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}

    @classmethod
    def matmul(cls, device, a, b):
        a, b = jax.device_put((a, b), _device(device))
        with jax.default_matmul_precision("highest"):  # no TF32: the same arithmetic as the training
            product = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
        return lambda: product(a, b).block_until_ready()

    @classmethod
    def cuda_peak_bytes(cls, run) -> int:
        """Since the process started (JAX cannot reset its peak); the warm-up ran the same training."""
        stats = _device("cuda").memory_stats
        before = stats()["bytes_in_use"]
        run()
        return stats()["peak_bytes_in_use"] - before


FRAMEWORK = Jax
VARIANTS = {"jit-loop": JaxLoop, "jit-step": JaxStep, "handwritten": JaxHandwritten}
