"""`backprop-bench train` prints the notebook's report, or one JSON object."""

import json

import numpy as np
import pytest

from backprop_bench.cli import main
from backprop_bench.model import init_params, preset
from tests.golden import PRINTOUT


def train(capsys, *args):
    assert main(["train", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["seed-linear", "seed-affine"])
def test_printout_is_the_notebooks(capsys, backend, name):
    backend_name, variant, device = backend
    out = train(capsys, "--model", name, "--backend", backend_name, "--variant", variant, "--device", device)
    for printed, expected in zip(out.splitlines(), PRINTOUT[name].splitlines(), strict=True):
        if " | b" in expected:  # biases print all 17 digits; see test_notebook for why only 13 must agree
            (w, b), (w_expected, b_expected) = printed.split(" | "), expected.split(" | ")
            assert w == w_expected
            assert float(b.split(": ")[1]) == pytest.approx(float(b_expected.split(": ")[1]), rel=1e-13)
        else:
            assert printed == expected


def test_json_has_every_field(capsys, backend):
    backend_name, variant, device = backend
    out = train(capsys, "--model", "seed-affine", "--backend", backend_name, "--variant", variant,
                "--device", device, "--epochs", "5", "--json")
    report = json.loads(out)
    assert (report["backend"], report["variant"], report["device"], report["dtype"]) == (
        backend_name, variant, device, "float64")
    assert list(report["params"]) == ["W1", "b1", "W2", "b2"]
    assert np.shape(report["params"]["W1"]) == (1, 1) and np.shape(report["params"]["b1"]) == (1,)
    spec = preset("seed-affine").spec.with_(epochs=5)
    assert report["params_init"] == {k: v.tolist() for k, v in init_params(spec).items()}
    assert len(report["losses"]) == 5 and report["losses"][0] == pytest.approx(162.8282, abs=5e-5)


def test_custom_layers_and_user_data(capsys, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    np.savez(tmp_path / "d.npz", x=x, y=x @ np.ones((3, 2)))
    report = json.loads(train(capsys, "--layers", "3,8,2", "--activation", "tanh", "--init", "xavier",
                              "--data", str(tmp_path / "d.npz"), "--epochs", "300", "--lr", "0.05",
                              "--dtype", "float32", "--json"))
    assert report["dtype"] == "float32" and np.shape(report["params"]["W2"]) == (8, 2)
    assert report["losses"][-1] < 0.1 * report["losses"][0]


def test_log_every_and_synthetic_samples(capsys):
    out = train(capsys, "--layers", "2,4,1", "--samples", "7", "--epochs", "30", "--log-every", "10")
    assert [line.split(",")[0] for line in out.splitlines() if line.startswith("Epoch")] == [
        "Epoch 0", "Epoch 10", "Epoch 20"]
    assert "W2:" in out and "Prediction:" in out and "y True:" in out


def test_backends_lists_every_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("numpy: variants handwritten; devices cpu")
    assert "torch:" in out and "jax:" in out
