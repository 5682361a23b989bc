"""A fourth backend that lives in the tests alone: the shared hand-written gradients on NumPy arrays.

tests/test_extension.py registers it through the environment
(BACKPROP_BENCH_BACKENDS=xp=extra_backend, with tests/ on PYTHONPATH) and checks that the
suite, `compare`, `report` and `ab` all take it up without any other file changed. It is
what a new backend needs and no more: VARIANTS and a FRAMEWORK.
"""

from __future__ import annotations

import numpy as np

from backprop_bench.backends import handwritten
from backprop_bench.backends.base import Backend, Framework, TrainResult
from backprop_bench.model import Dataset, Params


class XpHandwritten(Backend):
    name = "xp"
    variant = "handwritten"

    def load(self, params: Params, data: Dataset):
        return {name: value.copy() for name, value in params.items()}, data.x, data.y

    def run(self, loaded):
        params, x, y = loaded
        weights, biases = handwritten.weights_and_biases(params)
        losses = np.empty(self.spec.epochs)
        for epoch in range(self.spec.epochs):
            losses[epoch], dW, db = handwritten.loss_and_gradients(np, x, y, weights, biases, self.spec.activation)
            for param, grad in zip(weights + biases, dW + db):
                param -= self.spec.lr * grad
        return params, losses

    def fetch(self, trained) -> TrainResult:
        params, losses = trained
        return TrainResult(params, losses)


class Xp(Framework):
    name = "xp"
    packages = ("numpy", "array-api-compat")

    @classmethod
    def matmul(cls, device, a, b):
        return lambda: np.matmul(a, b)


FRAMEWORK = Xp
VARIANTS = {"handwritten": XpHandwritten}
