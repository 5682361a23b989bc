"""Reference points for the notebook presets, timed beside the backends in the same run.

`notebook`: the learner's NumPy code as written (its own forward and backward, the loss
every 100 epochs, printing left out). `c-loop`: the same network as a plain C loop,
compiled here with the system's C compiler: the floor for per-epoch overhead.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def notebook_linear(x, y, W1, W2, epochs=1000, lr=0.01):
    """The notebook's y = 2x cell, verbatim but for the print."""
    def forward(x, W1, W2):
        hidden = x @ W1
        output = hidden @ W2
        return hidden, output

    def MSE(y_true, y_pred):
        return np.mean(np.square(y_true - y_pred))

    def backward(x, y, W1, W2, H, O, lr=0.01):
        dL_dO = 2 * (O - y) / O.shape[0]
        dO_dW2 = H
        dL_dW2 = dO_dW2.T @ dL_dO
        dO_dH = W2
        dH_dW1 = x
        dL_dW1 = dH_dW1.T @ (dL_dO @ dO_dH.T)
        W2 -= lr * dL_dW2
        W1 -= lr * dL_dW1
        return W1, W2

    for epoch in range(epochs):
        H, O = forward(x, W1, W2)
        if epoch % 100 == 0:
            loss = MSE(y, O)  # noqa: F841 (the notebook's loss, kept for its cost; only its print is left out)
        W1, W2 = backward(x, y, W1, W2, H, O, lr)
    return W1, W2


def notebook_affine(x, y, W1, b1, W2, b2, epochs=1000, lr=0.01):
    """The notebook's y = 2x + 3 cell, verbatim but for the print."""
    def forward(x, W1, b1, W2, b2):
        hidden = x @ W1 + b1
        output = hidden @ W2 + b2
        return hidden, output

    def MSE(y_true, y_pred):
        return np.mean(np.square(y_true - y_pred))

    def backward(x, y, W1, b1, W2, b2, H, O, lr=0.01):
        dL_dO = 2 * (O - y) / O.shape[0]
        dL_db2 = np.sum(dL_dO)
        dO_dW2 = H
        dL_dW2 = dO_dW2.T @ dL_dO
        dO_dH = W2
        dL_dH = dL_dO @ dO_dH.T
        dL_db1 = np.sum(dL_dH)
        dH_dW1 = x
        dL_dW1 = dH_dW1.T @ (dL_dH)
        b2 -= lr * dL_db2
        W2 -= lr * dL_dW2
        b1 -= lr * dL_db1
        W1 -= lr * dL_dW1
        return W1, b1, W2, b2

    for epoch in range(epochs):
        H, O = forward(x, W1, b1, W2, b2)
        if epoch % 100 == 0:
            loss = MSE(y, O)  # noqa: F841 (the notebook's loss, kept for its cost; only its print is left out)
        W1, b1, W2, b2 = backward(x, y, W1, b1, W2, b2, H, O, lr)
    return W1, b1, W2, b2


def compile_c_loop():
    """The C loop's `train`, compiled with -O2; None when there is no C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    source = Path(__file__).with_name("loop.c")
    # Once loaded, the library stays mapped in this process: its file can go at once.
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as folder:
        library = Path(folder) / "loop.so"
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
        train = ctypes.CDLL(str(library)).train
    double_p = ctypes.POINTER(ctypes.c_double)
    train.argtypes = [double_p, double_p, ctypes.c_int, ctypes.c_int, ctypes.c_double, ctypes.c_int,
                      double_p, double_p]
    return train
