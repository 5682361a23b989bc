"""The hand-written NumPy backward against central finite differences and independent autodiff."""

import numpy as np
import pytest

from backprop_bench.backends.numpy_backend import FlatParams, loss_and_gradients
from backprop_bench.model import flatten, init_params, synthetic_data
from tests.conftest import check_close
from tests.test_equivalence import SPECS, spec_id


def numpy_gradients(spec, params, data):
    """The NumPy backend's loss and gradients as one dict: W1, b1, ... in the spec's order."""
    theta = flatten(spec, params)
    flat, grads = FlatParams(spec, theta), FlatParams(spec, np.zeros_like(theta))
    loss = loss_and_gradients(data.x, data.y, flat.weights, flat.biases, grads.weights, grads.biases, spec.activation)
    return loss, grads.views


def reference_loss(act, params, x, y, n_layers):
    """The network and its MSE written again, apart from every backend, for torch or JAX arrays."""
    a = x
    for l in range(1, n_layers + 1):
        a = a @ params[f"W{l}"]
        if f"b{l}" in params:
            a = a + params[f"b{l}"]
        if l < n_layers:
            a = act(a)
    return ((a - y) ** 2).mean()


def setup(spec):
    spec = spec.with_(dtype="float64")
    params = init_params(spec)
    # Nudge the weights off the init so relu units sit away from their kink at 0.
    params = {k: v + 0.1 * np.random.default_rng(1).standard_normal(v.shape) for k, v in params.items()}
    return spec, params, synthetic_data(spec, samples=16)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_backward_matches_central_differences(spec):
    spec, params, data = setup(spec)
    _, grads = numpy_gradients(spec, params, data)
    h = 1e-6  # central differences: truncation error ~h² and rounding ~eps/h, both near 1e-10 here
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name][index] = value[index] + h
            plus, _ = numpy_gradients(spec, shifted, data)
            shifted[name][index] = value[index] - h
            minus, _ = numpy_gradients(spec, shifted, data)
            numeric[index] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


# Autodiff and the hand-written backward do the same float64 products in other
# orders: they agree to a few ulps of the largest gradient entry.
AUTODIFF_TOL = {"rtol": 1e-10, "atol": 1e-13}


def torch_on(device: str):
    """torch, with `device` checked usable, else the test skips saying why."""
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA GPU here")
    return torch


def jax_device(device: str):
    """The JAX device for `device`, else the test skips saying why."""
    jax = pytest.importorskip("jax")
    try:
        return jax.devices("gpu" if device == "cuda" else "cpu")[0]
    except RuntimeError:
        pytest.skip("jax sees no CUDA GPU here")


DEVICES = ["cpu", "cuda"]


def torch_autograd(spec, params, data, device):
    """torch autograd's loss and gradients of the network written apart (reference_loss), and its inputs."""
    torch = torch_on(device)
    acts = {"identity": lambda a: a, "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
    params_torch = {k: torch.tensor(v, device=device, requires_grad=True) for k, v in params.items()}
    x, y = (torch.tensor(a, device=device) for a in (data.x, data.y))
    loss = reference_loss(acts[spec.activation], params_torch, x, y, spec.n_layers)
    loss.backward()
    grads = {name: p.grad.cpu().numpy() for name, p in params_torch.items()}
    return loss.item(), grads, ({k: p.detach() for k, p in params_torch.items()}, x, y)


def jax_autodiff(spec, params, data, device):
    """jax.value_and_grad's loss and gradients of the same network, and its inputs on the device (float64)."""
    target = jax_device(device)
    import jax

    jnp = jax.numpy
    acts = {"identity": lambda a: a, "tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}
    x, y, on_device = jax.device_put((data.x, data.y, params), target)
    loss, grads = jax.value_and_grad(lambda p: reference_loss(acts[spec.activation], p, x, y, spec.n_layers))(on_device)
    assert grads["W1"].dtype == np.float64
    return float(loss), {name: np.asarray(g) for name, g in grads.items()}, (on_device, x, y)


def check_gradients(found, expected, case: str, what: str = "gradients: autodiff"):
    """Two (loss, gradients by name) pairs agree: the loss to 1e-12, the gradients to AUTODIFF_TOL."""
    check_close(found[0], expected[0], {"rtol": 1e-12, "atol": 0.0}, "gradients: loss", case, "float64")
    for name in expected[1]:
        check_close(found[1][name], expected[1][name], AUTODIFF_TOL, what, case, "float64", name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_backward_matches_torch_autograd(spec, device):
    spec, params, data = setup(spec)
    loss, grads, _ = torch_autograd(spec, params, data, device)
    check_gradients(numpy_gradients(spec, params, data), (loss, grads), f"torch-{device}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_backward_matches_jax_grad(spec, device):
    jax = pytest.importorskip("jax")
    spec, params, data = setup(spec)
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        loss, grads, _ = jax_autodiff(spec, params, data, device)
    check_gradients(numpy_gradients(spec, params, data), (loss, grads), f"jax-{device}")


# --- the hand-written gradients written once (backends/handwritten.py), on each library's arrays --------

def shared_gradients(spec, params, x, y):
    """backends/handwritten.py's loss and gradients on arrays of any library, as one dict of NumPy arrays."""
    from backprop_bench.backends import handwritten

    weights, biases = handwritten.weights_and_biases(params)
    loss, dW, db = handwritten.loss_and_gradients(handwritten.namespace(x), x, y, weights, biases, spec.activation)
    grads = handwritten.by_name(dW, db)
    return float(loss), {name: np.asarray(g.cpu() if hasattr(g, "cpu") else g) for name, g in grads.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_shared_backward_on_torch_matches_torch_autograd(spec, device):
    pytest.importorskip("array_api_compat")
    spec, params, data = setup(spec)
    loss, grads, inputs = torch_autograd(spec, params, data, device)
    import torch

    with torch.inference_mode():  # as the torch-handwritten variant runs it: nothing recorded
        found = shared_gradients(spec, *inputs)
    check_gradients(found, (loss, grads), f"torch-{device}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_shared_backward_on_jax_matches_jax_grad(spec, device):
    jax = pytest.importorskip("jax")
    spec, params, data = setup(spec)
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        loss, grads, inputs = jax_autodiff(spec, params, data, device)
        found = shared_gradients(spec, *inputs)
    check_gradients(found, (loss, grads), f"jax-{device}")


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_shared_backward_on_numpy_matches_the_numpy_backend(spec):
    pytest.importorskip("array_api_compat")
    spec, params, data = setup(spec)
    # the same products in the same order; only the loss's sum is another reduction
    check_gradients(shared_gradients(spec, params, data.x, data.y), numpy_gradients(spec, params, data),
                    "shared-numpy", "gradients: shared")
